from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from devstack import iam
from devstack.moto_dynamodb import adapt_moto_dynamodb
from devstack.moto_overheads import trim_moto_overheads
from devstack.stack import free_port
from tests.support import Resources, function_environment_of, load_function

# What every function gets from the template's Globals, for code imported outside a function.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "payrail")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Payrail")

# Every AWS call a function loaded in-process makes is authorised against its role (tests.support).
iam.install()
iam.carry_identity_into_thread_pools()


# ``make test`` runs the suite on pytest-xdist workers, a file per worker at a time, handed out in
# collection order: the files that take longest go first, so that none of them starts last and
# leaves the other workers idle while it runs. Within a file the order stays as written.
LONGEST_FIRST = (
    "tests/e2e/test_chaos.py",
    "tests/e2e/console/",
    "tests/integration/test_merchant_webhooks.py",
    "tests/integration/test_payout_worker.py",
    "tests/e2e/test_sample_events.py",
    "tests/integration/test_balances.py",
    "tests/e2e/test_merchant_webhooks_e2e.py",
    "tests/e2e/test_payouts_hardening.py",
    "tests/e2e/test_api_fuzz.py",
    "tests/integration/test_payouts_api.py",
    "tests/integration/test_devstack_runtime.py",
    "tests/e2e/test_payment_webhooks.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((index for index, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With DEVSTACK_IAM_USAGE set (make test), what the in-process roles used, for the coverage check."""
    folder = os.environ.get("DEVSTACK_IAM_USAGE")
    if folder:
        iam.write_usage(Path(folder), "inprocess", iam.ledger_records())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the whole run; every test that uses it starts from a reset."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    adapt_moto_dynamodb()
    trim_moto_overheads()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def resources(moto_endpoint: str) -> Resources:
    """template.yaml's resources, created fresh in moto from the template itself."""
    return Resources(moto_endpoint)


@pytest.fixture
def handler_of(resources: Resources):
    """Load a function in-process with exactly its template environment: handler_of("HealthFunction")."""
    stack = []

    def load(logical_id: str):
        context = function_environment_of(resources, logical_id)
        context.__enter__()
        stack.append(context)
        return load_function(resources, logical_id).lambda_handler

    yield load
    for context in reversed(stack):
        context.__exit__(None, None, None)
