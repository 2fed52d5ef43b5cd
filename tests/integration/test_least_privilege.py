"""The policies in template.yaml are exactly as wide as the code: a permission taken away from a
copy of the template makes the function's call fail as AWS fails it, naming what is missing; the
consumers' roles cannot touch another queue; and the sealed bank tokens open for the sync worker
only. (Too wide is the coverage check's job: ``python -m devstack.iam_coverage``, run by make test.)"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import iam
from devstack.template import load_yaml
from tests.bank_support import BankWorld, binding_cookie
from tests.payouts_support import VALID_BODY, call, funded_token, http_event
from tests.support import TEMPLATE, Resources, function_environment_of, load_function


def _without(function: str, sid: str) -> dict[str, Any]:
    """template.yaml with one statement (by Sid) taken out of ``function``'s policies."""
    document = copy.deepcopy(load_yaml(TEMPLATE))
    policies = document["Resources"][function]["Properties"]["Policies"]
    statements = [s for policy in policies for s in policy.get("Statement", [])]
    assert any(s.get("Sid") == sid for s in statements), f"{function} has no statement {sid}"
    for policy in policies:
        if "Statement" in policy:
            policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != sid]
    return document


def _narrowed(moto_endpoint: str, function: str, sid: str) -> Resources:
    return Resources(moto_endpoint, document=_without(function, sid), source=f"template.yaml without {function}.{sid}")


def _denials(resources: Resources, function: str) -> list[dict[str, Any]]:
    return list(iam.LEDGERS.get(resources.identities[function]).denied)


def _table_arn(resources: Resources) -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{resources.ref('Table')}"


def test_without_its_create_statement_the_payouts_api_is_denied_the_put_and_answers_500(moto_endpoint: str) -> None:
    # Given PayoutsApiFunction's role without the statement that lets POST /payouts put its items
    resources = _narrowed(moto_endpoint, "PayoutsApiFunction", "CreatePayout")
    token = funded_token(resources, "user-" + uuid.uuid4().hex[:6])
    with function_environment_of(resources, "PayoutsApiFunction"):
        api = load_function(resources, "PayoutsApiFunction").lambda_handler
        # When a payout is created
        status, headers, body = call(
            api,
            http_event("POST", "/payouts", body=VALID_BODY, headers={"authorization": f"Bearer {token}", "idempotency-key": "k-1"}),
        )
    # Then the function's normal dependency failure answers, and the denial names the action and table
    assert status == 500, body
    assert headers["content-type"] == "application/problem+json"
    (denied, *_) = _denials(resources, "PayoutsApiFunction")
    assert (denied["action"], denied["resource"]) == ("dynamodb:PutItem", _table_arn(resources))
    assert "is not authorized to perform: dynamodb:PutItem" in denied["message"]


@pytest.fixture
def narrowed_bank(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[BankWorld]:
    function, sid = request.param
    world = BankWorld(moto_endpoint, resources=_narrowed(moto_endpoint, function, sid))
    yield world
    world.close()


def _linked(world: BankWorld) -> str:
    suffix = uuid.uuid4().hex[:8]
    return str(world.link(f"user-{suffix}", f"login-{suffix}")["id"])


@pytest.mark.parametrize("narrowed_bank", [("BankSyncWorkerFunction", "Tokens")], indirect=True)
def test_without_its_tokens_statement_the_sync_worker_cannot_read_the_tokens_and_the_record_fails(narrowed_bank: BankWorld) -> None:
    # Given a linked connection and a sync worker whose role lost the CONNTOKENS# statement
    connection_id = _linked(narrowed_bank)
    # When the worker syncs it
    answer = narrowed_bank.sync(connection_id)
    # Then the record fails (SQS will retry it, then dead-letter it) and the denial is the token read
    assert len(answer["batchItemFailures"]) == 1
    denied = _denials(narrowed_bank.resources, "BankSyncWorkerFunction")
    assert [(d["action"], d["resource"]) for d in denied] == [("dynamodb:GetItem", _table_arn(narrowed_bank.resources))]
    # And the lease is released for the next attempt
    assert "lease_owner" not in narrowed_bank.connection(connection_id)


@pytest.mark.parametrize("narrowed_bank", [("BankApiFunction", "SealTokens")], indirect=True)
def test_without_kms_the_bank_callback_is_denied_the_data_key_and_links_nothing(narrowed_bank: BankWorld) -> None:
    # Given BankApiFunction's role without kms:GenerateDataKey
    suffix = uuid.uuid4().hex[:8]
    user_id = f"user-{suffix}"
    start = narrowed_bank.http.get("/bank/connect", params={"login_hint": f"login-{suffix}"}, headers=narrowed_bank.auth(user_id))
    at_bank = narrowed_bank.http.get(start.headers["location"])
    binding = binding_cookie(start)
    # When the bank sends the user back
    back = narrowed_bank.http.get(
        at_bank.headers["location"], headers={"Accept": "application/json", "Cookie": f"__Secure-payrail_oauth={binding}"}
    )
    # Then the callback fails with a 500 (a policy bug, not an outage to retry), naming the denied KMS call, and links nothing
    assert back.status_code == 500, back.text
    denied = _denials(narrowed_bank.resources, "BankApiFunction")
    assert [d["action"] for d in denied] == ["kms:GenerateDataKey"]
    assert denied[0]["resource"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    listed = narrowed_bank.http.get("/bank/connections", headers=narrowed_bank.auth(user_id)).json()
    assert listed["items"] == []


# ------------------------------------------------------------------ what the roles can never do
@pytest.fixture(scope="module")
def roles(moto_endpoint: str) -> dict[str, iam.Identity]:
    return Resources(moto_endpoint).identities


def _allowed(identity: iam.Identity, action: str, resource: str, **context: tuple[str, ...]) -> bool:
    return iam.evaluate(identity.policies, iam.Request(action, resource, {k.replace("__", ":"): v for k, v in context.items()})).allowed


QUEUES = {
    "PayoutWorkerFunction": "PayoutsQueue",
    "PaymentEventsWorkerFunction": "PaymentEventsQueue",
    "BankSyncWorkerFunction": "BankSyncQueue",
    "SandboxWebhookSenderFunction": "SandboxWebhooksQueue",
}


@pytest.mark.parametrize("consumer", sorted(QUEUES))
def test_each_sqs_consumer_receives_and_deletes_on_its_own_queue_only(roles: dict[str, iam.Identity], consumer: str) -> None:
    # SAM's AWSLambdaSQSQueueExecutionRole grants receive/delete on every queue; our Deny narrows it.
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:{}"
    identity = roles[consumer]
    own = f"payrail-local-{QUEUES[consumer]}"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert _allowed(identity, action, queue_arn.format(own))
        for other in set(QUEUES.values()) - {QUEUES[consumer]}:
            assert not _allowed(identity, action, queue_arn.format(f"payrail-local-{other}")), (consumer, action, other)


def test_no_role_can_scan_and_only_the_sync_worker_can_read_or_open_bank_tokens(roles: dict[str, iam.Identity]) -> None:
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/payrail-local-Table"
    tokens_key = "CONNTOKENS#conn_1"
    for name, identity in roles.items():
        assert not _allowed(identity, "dynamodb:Scan", table), name
        reads_tokens = _allowed(identity, "dynamodb:GetItem", table, dynamodb__leadingkeys=(tokens_key,))
        assert reads_tokens == (name == "BankSyncWorkerFunction"), name


def test_the_sandbox_touches_no_product_item(roles: dict[str, iam.Identity]) -> None:
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/payrail-local-Table"
    sandbox = roles["SandboxFunction"]
    assert _allowed(sandbox, "dynamodb:GetItem", table, dynamodb__leadingkeys=("SANDBOX#payments#p1",))
    for product in ("PAYOUT#p1", "CONN#c1", "CONNTOKENS#c1", "SESSION#s1", "USER#u1", "IDEM#u1#k"):
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert not _allowed(sandbox, action, table, dynamodb__leadingkeys=(product,)), (action, product)
