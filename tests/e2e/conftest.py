"""The running local stack, started once for the end-to-end tests and driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devstack.running import RunningStack

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
