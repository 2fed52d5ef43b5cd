"""Merchant webhooks end to end in-process on moto, each function with its IAM role: endpoints
registered through the API, payouts made with POST /payouts, the table's real stream handed to
the fan-out, the delivery queue to the worker, and a receiver on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from payrail import kms
from payrail.db import keys
from payrail.webhooks.merchant_events import EVENT_TYPES
from standardwebhooks import Webhook, WebhookVerificationError

from tests.merchant_webhooks_support import Pipeline, delivery_messages, items_with_prefix
from tests.payouts_support import all_items, call, http_event
from tests.support import Resources, function_environment_of
from tests.webhooks_support import Recorder

# Every wait of the retry schedule 1 s, so a test sees four attempts in seconds.
SCHEDULE = "0,1,1,1"


@pytest.fixture
def resources(moto_endpoint: str, request: pytest.FixtureRequest) -> Resources:
    overrides = {"WebhookRetrySchedule": SCHEDULE}
    if "disabled_after_failing" in request.node.name:
        overrides["WebhookDisableAfterSeconds"] = "2"  # give up on an endpoint after 2 s of failures
    return Resources(moto_endpoint, overrides=overrides)


@pytest.fixture
def pipeline(resources: Resources) -> Pipeline:
    return Pipeline(resources)


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.stop()


def deliver_until_quiet(pipeline: Pipeline, rounds: int = 12) -> None:
    """Run the worker on every message as it becomes visible (retries are delayed by the schedule)."""
    quiet = 0
    while quiet < 3 and rounds > 0:
        rounds -= 1
        quiet = 0 if pipeline.deliver() else quiet + 1
        time.sleep(0.6)


def received_events(receiver: Recorder) -> list[dict[str, Any]]:
    return [json.loads(post["body"]) for post in receiver.posts()]


def test_a_receiver_gets_every_state_of_a_payout_signed_and_in_version_order(pipeline: Pipeline, receiver: Recorder, resources) -> None:
    # Given an endpoint registered by user-1 (its secret shown once)
    endpoint = pipeline.register("user-1", receiver.url + "/hooks")
    secret = endpoint["secret"]
    # When a payout is created and moves to paid through the payouts' own status writes
    payout = pipeline.payout()
    with function_environment_of(resources, "PaymentEventsWorkerFunction"):
        from payrail.db import payouts as store
        from payrail.domain.payout_status import PayoutStatus

        for target in (PayoutStatus.SUBMITTED, PayoutStatus.PROCESSING, PayoutStatus.PAID):
            stored = store.get(payout["id"])
            assert stored is not None
            from payrail.db import table

            table().transact_write(store.transition_actions(stored, target, "2026-01-01T00:00:00.000000Z"))
    assert pipeline.stream() == {"batchItemFailures": []}
    pipeline.deliver()
    # Then the receiver got created, submitted, processing, paid: one each, versions 1 to 4
    events = received_events(receiver)
    assert [e["type"] for e in sorted(events, key=lambda e: e["data"]["object"]["version"])] == [
        "payout.created",
        "payout.submitted",
        "payout.processing",
        "payout.paid",
    ]
    assert sorted(e["data"]["object"]["version"] for e in events) == [1, 2, 3, 4]
    # Each one is signed per Standard Webhooks with the endpoint's secret, and names us
    for post in receiver.posts():
        headers = post["headers"]
        # The official Standard Webhooks library is the receiver here: it parses what it verified
        assert Webhook(secret).verify(post["body"], headers)["id"] == headers["webhook-id"] == json.loads(post["body"])["id"]
        assert headers["user-agent"].startswith("Payrail-Webhooks/")
        assert headers["content-type"] == "application/json"
    # And its object is the payout as GET /payouts/{id} shows it, with its version
    status, _, shown = call(
        lambda event, _c: pipeline.payouts_api(event),
        http_event(
            "GET",
            f"/payouts/{payout['id']}",
            headers={"authorization": f"Bearer {pipeline.token('user-1')}"},
            route="/payouts/{payout_id}",
            path_parameters={"payout_id": payout["id"]},
        ),
    )
    assert status == 200
    paid = next(e for e in events if e["type"] == "payout.paid")
    assert paid["data"]["object"] == {**shown, "version": 4}


def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt(pipeline: Pipeline, receiver: Recorder) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    receiver.codes = [500, 503, 404]
    pipeline.payout()
    pipeline.stream()
    deliver_until_quiet(pipeline)
    posts = receiver.posts()
    assert len(posts) == 4
    assert len({post["headers"]["webhook-id"] for post in posts}) == 1  # one event, four attempts
    status, page = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
    assert status == 200
    attempts = page["items"]
    assert [a["attempt"] for a in attempts] == [4, 3, 2, 1]  # newest first
    assert [(a["outcome"], a["status_code"]) for a in attempts] == [("delivered", 202), ("failed", 404), ("failed", 503), ("failed", 500)]
    assert attempts[0]["next_attempt_at"] is None
    assert all(a["next_attempt_at"] for a in attempts[1:])
    assert {a["event_type"] for a in attempts} == {"payout.created"}
    assert all(a["error"] is None and a["duration_ms"] >= 0 for a in attempts)  # each answered; its status says how


def test_a_duplicate_message_of_a_delivered_pair_delivers_nothing_and_redeliver_delivers_once_more(
    pipeline: Pipeline, receiver: Recorder, resources: Resources
) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    pipeline.payout()
    pipeline.stream()
    [message] = delivery_messages(resources)
    pipeline.worker(_sqs([message]))
    pipeline.worker(_sqs([message]))  # SQS delivering it again
    assert len(receiver.posts()) == 1
    event_id = receiver.posts()[0]["headers"]["webhook-id"]
    # When the client asks for a redelivery
    status, answer = pipeline.api("user-1", "POST", f"/webhook-endpoints/{endpoint['id']}/events/{event_id}/redeliver")
    assert status == 202
    assert answer == {"event_id": event_id, "endpoint_id": endpoint["id"], "status": "queued"}
    pipeline.deliver()
    # Then one more delivery of the same event, byte for byte
    posts = receiver.posts()
    assert len(posts) == 2
    assert posts[1]["body"] == posts[0]["body"]
    assert posts[1]["headers"]["webhook-id"] == event_id
    _, page = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
    assert [a["attempt"] for a in page["items"]] == [2, 1]
    # Another user cannot redeliver it, nor to their own endpoint
    other = pipeline.register("user-2", receiver.url + "/other")
    assert pipeline.api("user-2", "POST", f"/webhook-endpoints/{endpoint['id']}/events/{event_id}/redeliver")[0] == 404
    assert pipeline.api("user-2", "POST", f"/webhook-endpoints/{other['id']}/events/{event_id}/redeliver")[0] == 404


def _sqs(messages: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.merchant_webhooks_support import as_sqs_event

    return as_sqs_event(messages)


def test_a_disabled_endpoint_gets_nothing(pipeline: Pipeline, receiver: Recorder) -> None:
    enabled = pipeline.register("user-1", receiver.url + "/on")
    disabled = pipeline.register("user-1", receiver.url + "/off")
    status, changed = pipeline.api("user-1", "PATCH", f"/webhook-endpoints/{disabled['id']}", {"status": "disabled"})
    assert (status, changed["status"]) == (200, "disabled")
    pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    assert [post["path"] for post in receiver.posts()] == ["/on"]
    assert enabled["id"] != disabled["id"]


def test_a_message_for_an_endpoint_disabled_after_its_fan_out_delivers_nothing(pipeline: Pipeline, receiver: Recorder) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks")
    pipeline.payout()
    pipeline.stream()
    pipeline.api("user-1", "PATCH", f"/webhook-endpoints/{endpoint['id']}", {"status": "disabled"})
    pipeline.deliver()
    assert receiver.posts() == []


def test_during_a_rotation_both_secrets_sign_and_either_verifies(pipeline: Pipeline, receiver: Recorder) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks")
    status, rotated = pipeline.api("user-1", "POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert status == 200
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != endpoint["secret"]
    pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    [post] = receiver.posts()
    assert len(post["headers"]["webhook-signature"].split(" ")) == 2
    # The official library, given either secret alone, verifies; given another, it refuses
    for secret in (endpoint["secret"], rotated["secret"]):
        assert Webhook(secret).verify(post["body"], post["headers"])["id"] == post["headers"]["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(post["body"], post["headers"])


def test_a_warm_worker_decrypts_each_secret_once_and_a_rotation_is_never_served_from_its_cache(
    pipeline: Pipeline, receiver: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    decrypted: list[str] = []
    real_decrypt = kms.decrypt

    def counting_decrypt(ciphertext: str, context: Any) -> bytes:
        decrypted.append(ciphertext)
        return real_decrypt(ciphertext, context)

    monkeypatch.setattr(kms, "decrypt", counting_decrypt)
    endpoint = pipeline.register("user-1", receiver.url + "/hooks")
    # Three events to one endpoint: one KMS call, each delivery signed with the secret
    for _ in range(3):
        pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    assert len(receiver.posts()) == 3
    assert len(decrypted) == 1
    for post in receiver.posts():
        assert Webhook(endpoint["secret"]).verify(post["body"], post["headers"])["id"] == post["headers"]["webhook-id"]
    # After a rotation the new ciphertext is decrypted (the old one, now previous, is still cached)
    # and the next delivery carries both signatures
    status, rotated = pipeline.api("user-1", "POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert status == 200
    pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    assert len(decrypted) == 2
    assert decrypted[1] != decrypted[0]
    latest = receiver.posts()[-1]
    assert len(latest["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(rotated["secret"]).verify(latest["body"], latest["headers"])
    # Once the cached plaintext is older than its bound, KMS is asked again
    from payrail.webhooks import delivery

    for key, (_until, plaintext) in list(delivery._secrets.items()):
        delivery._secrets[key] = (time.time() - 1, plaintext)
    pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    assert len(decrypted) == 4  # current and previous, both decrypted afresh
    assert len(receiver.posts()) == 5


def test_an_endpoint_failing_every_attempt_long_enough_is_disabled_after_failing_and_patch_re_enables_it(
    pipeline: Pipeline, receiver: Recorder
) -> None:
    # Given an endpoint that answers 500 to everything, and 2 s as the time to give up on it
    endpoint = pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    receiver.codes = [500] * 20
    pipeline.payout()
    pipeline.stream()
    deliver_until_quiet(pipeline)
    # Then once it had failed for 2 s it was disabled, saying why, and no attempt followed
    status, shown = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}")
    assert status == 200
    assert shown["status"] == "disabled"
    assert "failed" in shown["disabled_reason"]
    _, page = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
    outcomes = [a["outcome"] for a in page["items"]]
    assert 2 <= len(outcomes) <= 4  # the first failure starts the 2 s; a later one ends it
    assert set(outcomes) == {"failed"}
    assert len(receiver.posts()) == len(outcomes)
    # When the owner re-enables it, the reason is gone and new events reach it again
    status, again = pipeline.api("user-1", "PATCH", f"/webhook-endpoints/{endpoint['id']}", {"status": "enabled"})
    assert (status, again["status"], again["disabled_reason"]) == (200, "enabled", None)
    receiver.codes = []
    pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    assert receiver.posts()[-1]["headers"]["webhook-id"] != receiver.posts()[0]["headers"]["webhook-id"]
    assert len(receiver.posts()) == len(outcomes) + 1


def test_after_the_last_scheduled_attempt_fails_the_pair_is_failed_and_not_tried_again(
    pipeline: Pipeline, receiver: Recorder, resources: Resources
) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    receiver.codes = [500] * 4
    pipeline.payout()
    pipeline.stream()
    deliver_until_quiet(pipeline)
    _, page = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
    assert [(a["attempt"], a["outcome"]) for a in page["items"]] == [(4, "failed"), (3, "failed"), (2, "failed"), (1, "failed")]
    assert page["items"][0]["next_attempt_at"] is None
    [task] = items_with_prefix(resources, "WHTASK#")
    assert task["status"] == "failed"
    assert delivery_messages(resources) == []
    assert len(receiver.posts()) == 4
    # The endpoint stays enabled: it has not failed for five days
    assert pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}")[1]["status"] == "enabled"


def test_thirty_concurrent_creates_give_exactly_thirty_payout_created_events(pipeline: Pipeline, receiver: Recorder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    with pipeline.payouts_api.environment(), ThreadPoolExecutor(max_workers=10) as pool:
        token = pipeline.token("user-1")
        from tests.merchant_webhooks_support import create_payout

        payouts = list(pool.map(lambda _: create_payout(lambda e, _c: pipeline.payouts_api.raw(e), token), range(30)))
    assert pipeline.stream() == {"batchItemFailures": []}
    pipeline.deliver()
    events = received_events(receiver)
    assert len(events) == 30
    assert {e["data"]["object"]["id"] for e in events} == {p["id"] for p in payouts}
    assert {e["type"] for e in events} == {"payout.created"}


# -------------------------------------------------------------------- the endpoints API
def test_an_endpoint_is_registered_with_its_secret_shown_once_and_stored_encrypted(pipeline: Pipeline, resources: Resources) -> None:
    endpoint = pipeline.register("user-1", "http://127.0.0.1:9/hooks")
    assert endpoint["id"].startswith("we_")
    assert endpoint["status"] == "enabled"
    assert endpoint["events"] == list(EVENT_TYPES)
    assert endpoint["secret"].startswith("whsec_")
    status, shown = pipeline.api("user-1", "GET", f"/webhook-endpoints/{endpoint['id']}")
    assert status == 200
    assert "secret" not in shown
    status, listed = pipeline.api("user-1", "GET", "/webhook-endpoints")
    assert [item["id"] for item in listed["items"]] == [endpoint["id"]]
    assert "secret" not in listed["items"][0]
    # The table holds no plaintext secret; the stored ciphertext opens only for this endpoint
    assert endpoint["secret"] not in json.dumps(all_items(resources))
    [stored] = items_with_prefix(resources, "WHSECRET#")
    with function_environment_of(resources, "WebhookDeliveryWorkerFunction"):
        assert kms.decrypt(stored["current"], {"endpoint_id": endpoint["id"]}).decode() == endpoint["secret"]
        with pytest.raises(Exception):  # noqa: B017, PT011 - KMS refuses another endpoint's context
            kms.decrypt(stored["current"], {"endpoint_id": "we_other"})


def test_another_users_endpoint_is_a_404_everywhere(pipeline: Pipeline) -> None:
    endpoint = pipeline.register("user-1", "http://127.0.0.1:9/hooks")
    base = f"/webhook-endpoints/{endpoint['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"description": "mine now"}),
        ("DELETE", base, None),
        ("POST", base + "/rotate-secret", None),
        ("GET", base + "/deliveries", None),
    ]:
        status, problem = pipeline.api("user-2", method, path, body)
        assert status == 404, (method, path)
        assert problem["status"] == 404
    assert pipeline.api("user-2", "GET", "/webhook-endpoints")[1]["items"] == []
    assert pipeline.api("user-1", "GET", base)[1]["description"] == ""


def test_unknown_event_types_are_a_400_listing_the_valid_ones(pipeline: Pipeline) -> None:
    status, problem = pipeline.api("user-1", "POST", "/webhook-endpoints", {"url": "http://127.0.0.1:9/x", "events": ["payout.exploded"]})
    assert status == 400
    assert problem["type"].endswith("validation-error")
    for valid in EVENT_TYPES:
        assert valid in json.dumps(problem)
    assert pipeline.api("user-1", "GET", "/webhook-endpoints")[1]["items"] == []


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "http://169.254.169.254/latest/meta-data/", "not a url", "http://user:pw@127.0.0.1/x"]
)
def test_a_url_the_egress_rules_refuse_is_a_400_with_the_reason_even_on_dev(pipeline: Pipeline, url: str) -> None:
    status, problem = pipeline.api("user-1", "POST", "/webhook-endpoints", {"url": url})
    assert status == 400
    assert problem["detail"].startswith("This URL cannot receive webhooks: ")
    assert len(problem["detail"]) > len("This URL cannot receive webhooks: ")


def test_outside_dev_only_public_https_urls_are_accepted(resources: Resources) -> None:
    from payrail.errors import ValidationFailed
    from payrail.settings import WebhookEndpointsApiSettings
    from payrail.webhooks.endpoints import EndpointRequest, create_endpoint

    settings = resources.settings("WebhookEndpointsApiFunction", WebhookEndpointsApiSettings, webhook_allow_private_urls=False)
    for url in (
        "http://127.0.0.1:8080/x",
        "https://127.0.0.1/x",
        "https://10.0.0.7/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://2130706433/x",
    ):
        with pytest.raises(ValidationFailed) as refused:
            create_endpoint(settings, "user-1", EndpointRequest(url=url))
        assert refused.value.errors[0]["field"] == "url"


def test_patch_changes_fields_and_delete_removes_the_endpoint_and_its_secret(pipeline: Pipeline, resources: Resources) -> None:
    endpoint = pipeline.register("user-1", "http://127.0.0.1:9/hooks")
    path = f"/webhook-endpoints/{endpoint['id']}"
    status, changed = pipeline.api("user-1", "PATCH", path, {"events": ["payout.paid", "payout.paid"], "description": "ops"})
    assert status == 200
    assert (changed["events"], changed["description"]) == (["payout.paid"], "ops")
    assert pipeline.api("user-1", "PATCH", path, {"url": "http://169.254.169.254/"})[0] == 400
    assert pipeline.api("user-1", "PATCH", path, {"status": "paused"})[0] == 400
    assert pipeline.api("user-1", "DELETE", path) == (204, None)
    assert pipeline.api("user-1", "GET", path)[0] == 404
    assert pipeline.api("user-1", "DELETE", path)[0] == 404
    assert items_with_prefix(resources, "WHSECRET#") == []
    assert items_with_prefix(resources, "WHEP#") == []


def test_deliveries_page_newest_first_with_a_cursor(pipeline: Pipeline, receiver: Recorder) -> None:
    endpoint = pipeline.register("user-1", receiver.url + "/hooks", events=["payout.created"])
    for _ in range(3):
        pipeline.payout()
    pipeline.stream()
    pipeline.deliver()
    path = f"/webhook-endpoints/{endpoint['id']}/deliveries"
    status, first = pipeline.api("user-1", "GET", path, query={"limit": "2"})
    assert status == 200
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    _, second = pipeline.api("user-1", "GET", path, query={"limit": "2", "cursor": first["next_cursor"]})
    seen = [a["created_at"] for a in first["items"] + second["items"]]
    assert len(seen) == 3
    assert seen == sorted(seen, reverse=True)
    assert pipeline.api("user-1", "GET", path, query={"cursor": "bm90LWEtY3Vyc29y"})[0] == 400
    assert keys.delivery_attempts(endpoint["id"]).startswith("WHDLV#")
