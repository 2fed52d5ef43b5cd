"""The running local stack, started once for the end-to-end tests and driven over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from devstack.running import RunningStack
from scenarios import payouts

__all__ = ["RunningStack"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture
def api(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


@pytest.fixture
def fund(stack: RunningStack) -> Callable[..., list[str]]:
    """``fund(auth)`` funds the signed-in user through the sandbox provider's funding webhook, end
    to end (``fund(auth, {"UGX": 10**9})`` in other currencies), before any payout of theirs."""

    def run(auth: dict[str, str], amounts: dict[str, int] | None = None) -> list[str]:
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            return payouts.fund(client, auth, amounts)

    return run
