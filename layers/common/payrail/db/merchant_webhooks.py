"""Merchant webhooks in the one table: endpoints, their secrets, events, delivery tasks and attempts.

Items written here and nowhere else (keys in :mod:`payrail.db.keys`):

* the **endpoint** (``WHEP#``): URL, subscribed types, status and, while every attempt fails, when
  the failing began (``failing_since``); indexed by owner on gsi1;
* its **secrets** (``WHSECRET#``): the current one and, for a day after a rotation, the previous
  one, each KMS-encrypted with the endpoint id as encryption context;
* the **event** (``WHEVT#``): the body sent, kept so a redelivery sends the same bytes;
* the **task** of one (event, endpoint) pair (``WHTASK#``), created once (``attribute_not_exists``)
  whatever retries the fan-out makes; its ``generation`` counts redeliveries, and an attempt
  starts only while the pair is not settled for the message's generation, in the same
  conditional update that counts the attempt;
* one **attempt** per try (``WHDLV#``), newest first under the endpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from payrail.db import ConditionFailed, Item, TransactionCancelled, decode_cursor, encode_cursor, keys, table

ENDPOINTS_INDEX = "gsi1"

EndpointStatus = Literal["enabled", "disabled"]


class StoredEndpoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    user_id: str
    url: str
    events: list[str]
    description: str = ""
    status: EndpointStatus = "enabled"
    disabled_reason: str | None = None
    failing_since: int | None = None
    created_at: str
    updated_at: str


class StoredSecrets(BaseModel):
    """An endpoint's secrets, still encrypted (``payrail.kms``, context ``endpoint_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    current: str
    previous: str | None = None
    previous_until: int | None = None


class StoredEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    user_id: str
    type: str
    body: str
    created_at: str


class StoredAttempt(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None = None
    duration_ms: int
    response_excerpt: str = ""
    error: str | None = None
    outcome: Literal["delivered", "failed"]
    next_attempt_at: str | None = None
    created_at: str


def _endpoint(item: Item) -> StoredEndpoint:
    return StoredEndpoint.model_validate(item)


# -------------------------------------------------------------------- endpoints
def create_endpoint(endpoint: Mapping[str, Any], secret_ciphertext: str) -> None:
    """The endpoint and its first secret, in one transaction."""
    db = table()
    item = {
        **keys.webhook_endpoint(endpoint["id"]),
        "gsi1pk": keys.user_webhook_endpoints_index(endpoint["user_id"]),
        "gsi1sk": f"{endpoint['created_at']}#{endpoint['id']}",
        **endpoint,
    }
    secret = {**keys.webhook_secret(endpoint["id"]), "current": secret_ciphertext}
    db.transact_write([db.put_action(item, "attribute_not_exists(pk)"), db.put_action(secret, "attribute_not_exists(pk)")])


def get_endpoint(endpoint_id: str) -> StoredEndpoint | None:
    item = table().get(keys.webhook_endpoint(endpoint_id))
    return _endpoint(item) if item else None


def list_endpoints(user_id: str, limit: int, cursor: str | None) -> tuple[list[StoredEndpoint], str | None]:
    index_pk = keys.user_webhook_endpoints_index(user_id)
    start = decode_cursor(cursor, gsi1pk=index_pk)
    page = table().query("gsi1pk = :pk", {":pk": index_pk}, index=ENDPOINTS_INDEX, limit=limit, start_key=start, newest_first=True)
    return [_endpoint(item) for item in page.items], encode_cursor(page.last_key)


def endpoints_of(user_id: str) -> Iterator[StoredEndpoint]:
    """Every endpoint of ``user_id`` (the fan-out's read), page by page."""
    index_pk = keys.user_webhook_endpoints_index(user_id)
    start = None
    while True:
        page = table().query("gsi1pk = :pk", {":pk": index_pk}, index=ENDPOINTS_INDEX, start_key=start)
        yield from (_endpoint(item) for item in page.items)
        if not page.last_key:
            return
        start = page.last_key


def update_endpoint(endpoint_id: str, user_id: str, changes: Mapping[str, Any], now: str) -> StoredEndpoint | None:
    """Apply ``changes`` (url, events, description, status) to the user's endpoint; None when it
    is not theirs or gone. Enabling clears the reason it was disabled and its failing streak."""
    sets = ["updated_at = :now"]
    values: dict[str, Any] = {":now": now, ":user": user_id}
    names: dict[str, str] = {}
    for index, (name, value) in enumerate(sorted(changes.items())):
        names[f"#f{index}"] = name
        values[f":v{index}"] = value
        sets.append(f"#f{index} = :v{index}")
    update = "SET " + ", ".join(sets)
    if changes.get("status") == "enabled":
        update += " REMOVE disabled_reason, failing_since"
    try:
        item = table().update(
            keys.webhook_endpoint(endpoint_id), update, "attribute_exists(pk) AND user_id = :user", names=names or None, values=values
        )
    except ConditionFailed:
        return None
    return _endpoint(item) if item else None


def delete_endpoint(endpoint_id: str, user_id: str) -> bool:
    """Delete the user's endpoint and its secrets together; False when it is not theirs or gone."""
    db = table()
    try:
        db.transact_write(
            [
                db.delete_action(keys.webhook_endpoint(endpoint_id), "attribute_exists(pk) AND user_id = :user", values={":user": user_id}),
                db.delete_action(keys.webhook_secret(endpoint_id)),
            ]
        )
    except TransactionCancelled:
        return False
    return True


def note_failure(endpoint_id: str, now: int) -> StoredEndpoint | None:
    """Start the endpoint's failing streak at ``now`` unless one is running; the endpoint after."""
    try:
        item = table().update(
            keys.webhook_endpoint(endpoint_id),
            "SET failing_since = if_not_exists(failing_since, :now)",
            "attribute_exists(pk)",
            values={":now": now},
        )
    except ConditionFailed:
        return None
    return _endpoint(item) if item else None


def note_success(endpoint_id: str) -> None:
    """End the endpoint's failing streak (only written when there is one)."""
    with contextlib.suppress(ConditionFailed):
        table().update(keys.webhook_endpoint(endpoint_id), "REMOVE failing_since", "attribute_exists(failing_since)", returns="NONE")


def disable_failing(endpoint_id: str, failing_before: int, reason: str, now: str) -> bool:
    """Disable the endpoint if it is enabled and has failed every attempt since before
    ``failing_before``: True for the one caller that disabled it."""
    try:
        table().update(
            keys.webhook_endpoint(endpoint_id),
            "SET #status = :disabled, disabled_reason = :reason, updated_at = :now",
            "#status = :enabled AND failing_since <= :cutoff",
            names={"#status": "status"},
            values={":disabled": "disabled", ":enabled": "enabled", ":reason": reason, ":now": now, ":cutoff": failing_before},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


# -------------------------------------------------------------------- secrets
def get_secrets(endpoint_id: str) -> StoredSecrets | None:
    item = table().get(keys.webhook_secret(endpoint_id))
    return StoredSecrets.model_validate(item) if item else None


def rotate_secret(endpoint_id: str, new_ciphertext: str, previous_until: int) -> bool:
    """The new secret becomes current and the current one previous until ``previous_until``, in
    one update (the old ciphertext moves inside DynamoDB, unread). False when the endpoint is gone."""
    try:
        table().update(
            keys.webhook_secret(endpoint_id),
            "SET #previous = #current, previous_until = :until, #current = :new",
            "attribute_exists(pk)",
            names={"#previous": "previous", "#current": "current"},  # CURRENT is a reserved word
            values={":until": previous_until, ":new": new_ciphertext},
            returns="NONE",
        )
    except ConditionFailed:
        return False
    return True


# -------------------------------------------------------------------- events
def record_event(event: Mapping[str, Any], expires_at: int) -> None:
    """Keep the event for redeliveries; recording it again (a retried fan-out) changes nothing."""
    with contextlib.suppress(ConditionFailed):
        table().put({**keys.merchant_event(event["id"]), **event, "expires_at": expires_at}, "attribute_not_exists(pk)")


def get_event(event_id: str) -> StoredEvent | None:
    item = table().get(keys.merchant_event(event_id))
    return StoredEvent.model_validate(item) if item else None


# -------------------------------------------------------------------- delivery tasks
def create_task(endpoint_id: str, event_id: str, user_id: str, now: str, expires_at: int) -> str | None:
    """The (event, endpoint) pair's task, created once: None when new, else the stored status."""
    task = {
        **keys.delivery_task(endpoint_id, event_id),
        "user_id": user_id,
        "status": "pending",
        "generation": 0,
        "created_at": now,
        "expires_at": expires_at,
    }
    try:
        table().put(task, "attribute_not_exists(pk)", return_on_failure=True)
    except ConditionFailed as existing:
        return str((existing.item or {}).get("status", "pending"))
    return None


def begin_attempt(endpoint_id: str, event_id: str, generation: int) -> int | None:
    """Count one more attempt of the pair, unless it is already settled (delivered, or failed
    for good) for ``generation``: the attempt's number, or None to drop the message."""
    try:
        item = table().update(
            keys.delivery_task(endpoint_id, event_id),
            "ADD attempts :one",
            "attribute_exists(pk) AND NOT (#status IN (:delivered, :failed) AND settled_generation >= :generation)",
            names={"#status": "status"},
            values={":one": 1, ":delivered": "delivered", ":failed": "failed", ":generation": generation},
        )
    except ConditionFailed:
        return None
    return int((item or {}).get("attempts", 1))


def finish_attempt(
    endpoint_id: str,
    event_id: str,
    attempt: Mapping[str, Any],
    task_status: Literal["pending", "delivered", "failed"] | None,
    generation: int,
) -> None:
    """Record the attempt and the pair's status after it, in one transaction (``task_status``
    None: the status stays as it was, as after a failed redelivery, which leaves any retries of
    the original delivery running)."""
    db = table()
    record = {**keys.delivery_attempt(endpoint_id, attempt["created_at"], attempt["id"]), **attempt}
    if task_status is None:
        db.put(record, "attribute_not_exists(pk)")
        return
    update = "SET #status = :status"
    values: dict[str, Any] = {":status": task_status}
    if task_status != "pending":
        update += ", settled_generation = :generation"
        values[":generation"] = generation
    db.transact_write(
        [
            db.put_action(record, "attribute_not_exists(pk)"),
            db.update_action(keys.delivery_task(endpoint_id, event_id), update, "attribute_exists(pk)", {"#status": "status"}, values),
        ]
    )


def request_redelivery(endpoint_id: str, event_id: str, user_id: str, now: str, expires_at: int) -> int:
    """One more delivery of the pair: its next generation (the task is made if it had none, an
    event sent before the endpoint subscribed to its type)."""
    item = table().update(
        keys.delivery_task(endpoint_id, event_id),
        "SET generation = if_not_exists(generation, :zero) + :one, user_id = :user, created_at = if_not_exists(created_at, :now),"
        " expires_at = :expires, #status = if_not_exists(#status, :pending)",
        names={"#status": "status"},
        values={":zero": 0, ":one": 1, ":user": user_id, ":now": now, ":expires": expires_at, ":pending": "pending"},
    )
    return int((item or {})["generation"])


def list_attempts(endpoint_id: str, limit: int, cursor: str | None) -> tuple[list[StoredAttempt], str | None]:
    """The endpoint's delivery attempts, newest first."""
    partition = keys.delivery_attempts(endpoint_id)
    start = decode_cursor(cursor, index=None, pk=partition)
    page = table().query("pk = :pk", {":pk": partition}, limit=limit, start_key=start, newest_first=True)
    return [StoredAttempt.model_validate(item) for item in page.items], encode_cursor(page.last_key)
