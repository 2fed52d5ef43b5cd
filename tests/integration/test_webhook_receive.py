"""POST /webhooks/payments: every delivery is verified over its raw body before anything is
parsed; only a verified event reaches the payment-events queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from tests.support import Resources
from tests.webhooks_support import InProcess, drain, event_body, jwt_headers, secrets_of, standard_headers, webhook_request


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> dict:
    resources = Resources(moto_endpoint)
    secret, jwt_doc = secrets_of(resources)
    return {
        "resources": resources,
        "receive": InProcess(resources, "WebhookReceiveFunction"),
        "secret": secret,
        "jwt_key": jwt_doc[jwt_doc["active_kid"]],
        "kid": jwt_doc["active_kid"],
    }


@pytest.fixture
def receive(world: dict):
    drain(world["resources"], "PaymentEventsQueue")
    return world["receive"]


def queued(world: dict) -> list[dict]:
    return drain(world["resources"], "PaymentEventsQueue")


def assert_rejected(response: dict, world: dict, status: int = 401) -> dict:
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "application/problem+json"
    assert queued(world) == []
    return json.loads(response["body"])


# ------------------------------------------------------------------ accepted
def test_a_standard_webhooks_delivery_is_queued_unchanged_with_its_correlation_id(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_1")
    request = webhook_request(body, {**standard_headers(world["secret"], body), "x-correlation-id": "cid-webhook-1"})

    response = receive(request)

    assert response["statusCode"] == 202
    assert json.loads(response["body"])["id"] == json.loads(body)["id"]
    [message] = queued(world)
    assert json.loads(message["Body"]) == json.loads(body)
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "cid-webhook-1"


def test_a_jwt_signed_delivery_is_queued(world: dict, receive) -> None:
    body = event_body("payout.processing", "po_2")

    response = receive(webhook_request(body, jwt_headers(world["jwt_key"], body, kid=world["kid"])))

    assert response["statusCode"] == 202
    assert [json.loads(m["Body"])["id"] for m in queued(world)] == [json.loads(body)["id"]]


def test_any_v1_entry_matching_any_secret_passes(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_3")
    good = standard_headers(world["secret"], body)
    wrong = standard_headers("not-the-secret", body)["webhook-signature"]
    headers = {**good, "webhook-signature": f"v2,abc {wrong} {good['webhook-signature']}"}

    assert receive(webhook_request(body, headers))["statusCode"] == 202
    assert len(queued(world)) == 1


def test_a_delivery_signed_with_the_previous_secret_still_passes_during_rotation(world: dict, receive) -> None:
    resources = world["resources"]
    sm = resources.client("secretsmanager")
    sm.put_secret_value(
        SecretId=resources.ref("WebhookSecrets"), SecretString=json.dumps({"current": "new-secret", "previous": world["secret"]})
    )
    try:
        old, new = event_body("payout.paid", "po_4"), event_body("payout.paid", "po_5")

        assert receive(webhook_request(old, standard_headers(world["secret"], old)))["statusCode"] == 202
        assert receive(webhook_request(new, standard_headers("new-secret", new)))["statusCode"] == 202
        assert len(queued(world)) == 2
    finally:
        sm.put_secret_value(SecretId=resources.ref("WebhookSecrets"), SecretString=json.dumps({"current": world["secret"], "previous": ""}))


def test_the_same_valid_event_delivered_twice_is_accepted_twice(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_6")
    headers = standard_headers(world["secret"], body)

    first, second = receive(webhook_request(body, headers)), receive(webhook_request(body, headers))

    assert (first["statusCode"], second["statusCode"]) == (202, 202)
    assert len(queued(world)) == 2  # the worker deduplicates by event id


def test_an_unknown_event_type_is_accepted(world: dict, receive) -> None:
    body = json.dumps({"id": "evt_unknown_type", "type": "payout.teleported", "created_at": "2026-11-22T16:00:00Z", "data": {}}).encode()

    assert receive(webhook_request(body, standard_headers(world["secret"], body)))["statusCode"] == 202
    assert len(queued(world)) == 1


# ------------------------------------------------------------------ Standard Webhooks attacks
def test_a_wrong_secret_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_7")
    problem = assert_rejected(receive(webhook_request(body, standard_headers("guessed-secret", body))), world)
    assert problem["reason"] == "bad_signature"


def test_a_body_changed_after_signing_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.failed", "po_8", failure_reason="insufficient funds")
    headers = standard_headers(world["secret"], body)
    tampered = body.replace(b"payout.failed", b"payout.paid")

    assert_rejected(receive(webhook_request(tampered, headers)), world)


def test_a_signature_made_for_another_id_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_9")
    headers = standard_headers(world["secret"], body, webhook_id="evt_other")
    headers["webhook-id"] = json.loads(body)["id"]

    assert_rejected(receive(webhook_request(body, headers)), world)


def test_a_signature_made_for_another_timestamp_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_10")
    headers = standard_headers(world["secret"], body, timestamp=int(time.time()) - 60)
    headers["webhook-timestamp"] = str(int(time.time()))

    assert_rejected(receive(webhook_request(body, headers)), world)


def test_a_validly_signed_id_that_is_not_the_events_id_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_11")

    problem = assert_rejected(receive(webhook_request(body, standard_headers(world["secret"], body, webhook_id="evt_replayed"))), world)
    assert problem["reason"] == "id_mismatch"


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86400], ids=["just-stale", "hour-old", "just-future", "day-ahead"])
def test_timestamps_more_than_five_minutes_away_are_rejected(world: dict, receive, offset: int) -> None:
    body = event_body("payout.paid", "po_12")

    problem = assert_rejected(
        receive(webhook_request(body, standard_headers(world["secret"], body, timestamp=int(time.time()) + offset))), world
    )
    assert problem["reason"] == "stale_timestamp"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature", "all"])
def test_missing_signature_headers_are_rejected(world: dict, receive, missing: str) -> None:
    body = event_body("payout.paid", "po_13")
    headers = standard_headers(world["secret"], body)
    headers = {} if missing == "all" else {k: v for k, v in headers.items() if k != missing}

    problem = assert_rejected(receive(webhook_request(body, headers)), world)
    assert problem["reason"] == "missing_headers"


@pytest.mark.parametrize("version", ["v0", "v2", "v1a", "V1"])
def test_a_correct_hmac_under_any_other_version_is_ignored(world: dict, receive, version: str) -> None:
    body = event_body("payout.paid", "po_14")
    headers = standard_headers(world["secret"], body)
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", f"{version},", 1)

    problem = assert_rejected(receive(webhook_request(body, headers)), world)
    assert problem["reason"] == "unsupported_version"


def test_a_non_numeric_timestamp_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_15")
    headers = standard_headers(world["secret"], body)
    headers["webhook-timestamp"] = "2026-11-22T16:00:00Z"

    assert_rejected(receive(webhook_request(body, headers)), world)


# ------------------------------------------------------------------ JWT attacks
def _claims(body: bytes, **changes) -> dict:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 300, "jti": json.loads(body)["id"], "body_sha256": hashlib.sha256(body).hexdigest(), **changes}
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_jwt_with_alg_none_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_20")
    token = jwt.encode(_claims(body), None, algorithm="none", headers={"kid": world["kid"]})

    problem = assert_rejected(receive(webhook_request(body, _bearer(token))), world)
    assert problem["reason"] == "jwt_algorithm"


def test_a_jwt_with_another_hmac_algorithm_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_21")
    token = jwt.encode(_claims(body), world["jwt_key"], algorithm="HS512", headers={"kid": world["kid"]})

    assert_rejected(receive(webhook_request(body, _bearer(token))), world)


def test_a_jwt_signed_with_a_wrong_key_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_22")
    token = jwt.encode(_claims(body), "a-key-the-attacker-made-up-0123456789", algorithm="HS256", headers={"kid": world["kid"]})

    problem = assert_rejected(receive(webhook_request(body, _bearer(token))), world)
    assert problem["reason"] == "bad_signature"


def test_a_jwt_naming_an_unknown_key_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_23")

    problem = assert_rejected(receive(webhook_request(body, jwt_headers(world["jwt_key"], body, kid="k-unknown"))), world)
    assert problem["reason"] == "jwt_unknown_key"


def test_an_expired_jwt_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_24")
    now = int(time.time())
    token = jwt.encode(_claims(body, iat=now - 120, exp=now - 1), world["jwt_key"], algorithm="HS256", headers={"kid": world["kid"]})

    problem = assert_rejected(receive(webhook_request(body, _bearer(token))), world)
    assert problem["reason"] == "jwt_expired"


@pytest.mark.parametrize("offset", [-301, 301], ids=["stale", "future"])
def test_a_jwt_issued_more_than_five_minutes_away_is_rejected(world: dict, receive, offset: int) -> None:
    body = event_body("payout.paid", "po_25")
    now = int(time.time())
    token = jwt.encode(_claims(body, iat=now + offset, exp=now + 3600), world["jwt_key"], algorithm="HS256", headers={"kid": world["kid"]})

    problem = assert_rejected(receive(webhook_request(body, _bearer(token))), world)
    assert problem["reason"] == "stale_timestamp"


@pytest.mark.parametrize("claim", ["body_sha256", "iat", "exp", "jti"])
def test_a_jwt_missing_a_required_claim_is_rejected(world: dict, receive, claim: str) -> None:
    body = event_body("payout.paid", "po_26")
    token = jwt.encode(_claims(body, **{claim: None}), world["jwt_key"], algorithm="HS256", headers={"kid": world["kid"]})

    problem = assert_rejected(receive(webhook_request(body, _bearer(token))), world)
    assert problem["reason"] == "jwt_missing_claim"


def test_a_jwt_carrying_the_hash_of_another_body_is_rejected(world: dict, receive) -> None:
    signed_body = event_body("payout.failed", "po_27", failure_reason="closed account")
    sent_body = signed_body.replace(b"payout.failed", b"payout.paid")
    token = jwt.encode(
        _claims(sent_body, body_sha256=hashlib.sha256(signed_body).hexdigest()),
        world["jwt_key"],
        algorithm="HS256",
        headers={"kid": world["kid"]},
    )

    problem = assert_rejected(receive(webhook_request(sent_body, _bearer(token))), world)
    assert problem["reason"] == "body_mismatch"


def test_a_jwt_whose_jti_is_not_the_event_id_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_28")

    problem = assert_rejected(
        receive(webhook_request(body, jwt_headers(world["jwt_key"], body, kid=world["kid"], event_id="evt_other"))), world
    )
    assert problem["reason"] == "id_mismatch"


def test_a_malformed_bearer_token_is_rejected(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_29")

    assert_rejected(receive(webhook_request(body, _bearer("not.a.jwt"))), world)


# ------------------------------------------------------------------ bad bodies
def test_malformed_json_with_a_valid_signature_is_a_400(world: dict, receive) -> None:
    body = b'{"id": "evt_broken", "type": "payout.paid",'

    problem = assert_rejected(receive(webhook_request(body, standard_headers(world["secret"], body, webhook_id="evt_broken"))), world, 400)
    assert problem["type"].endswith("validation-error")


@pytest.mark.parametrize(
    "document",
    [
        {"id": "evt_no_time", "type": "payout.paid", "data": {"payout_id": "po_1"}},
        {"id": "evt_no_payout", "type": "payout.paid", "created_at": "2026-11-22T16:00:00Z", "data": {}},
        {"id": "evt_bad_time", "type": "payout.paid", "created_at": "yesterday", "data": {"payout_id": "po_1"}},
    ],
    ids=["no-created_at", "no-payout_id", "bad-created_at"],
)
def test_a_validly_signed_event_of_the_wrong_shape_is_a_400(world: dict, receive, document: dict) -> None:
    body = json.dumps(document).encode()

    assert_rejected(receive(webhook_request(body, standard_headers(world["secret"], body))), world, 400)


def test_a_base64_encoded_body_is_verified_over_its_decoded_bytes(world: dict, receive) -> None:
    body = event_body("payout.paid", "po_30")
    request = webhook_request(body, standard_headers(world["secret"], body))
    request["body"], request["isBase64Encoded"] = base64.b64encode(body).decode(), True

    assert receive(request)["statusCode"] == 202
    assert len(queued(world)) == 1


def test_each_rejection_publishes_a_metric_named_by_its_reason(world: dict, receive, capsys: pytest.CaptureFixture[str]) -> None:
    body = event_body("payout.paid", "po_31")
    receive(webhook_request(body, standard_headers(world["secret"], body, timestamp=int(time.time()) - 1000)))
    receive(webhook_request(body, standard_headers("wrong", body)))

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"WebhookRejected"' in line]

    assert sorted(m["reason"] for m in emitted) == ["bad_signature", "stale_timestamp"]
    assert all(m["WebhookRejected"] == [1.0] or m["WebhookRejected"] == 1.0 for m in emitted)


def test_the_hmac_is_computed_over_id_timestamp_and_raw_body(world: dict, receive) -> None:
    # Given a signature computed by hand, as the Standard Webhooks spec describes it
    body = event_body("payout.paid", "po_32")
    event_id, timestamp = json.loads(body)["id"], str(int(time.time()))
    digest = hmac.new(world["secret"].encode(), f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {"webhook-id": event_id, "webhook-timestamp": timestamp, "webhook-signature": "v1," + base64.b64encode(digest).decode()}

    assert receive(webhook_request(body, headers))["statusCode"] == 202
    assert len(queued(world)) == 1
