"""Property: no cursor a client can send makes a list answer anything but 200 or a 400 problem
(issue 19: a cursor holding only the caller's gsi1pk reached DynamoDB and came back as a 500)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.payouts_support import VALID_BODY, call, funded_token, http_event
from tests.support import Resources

USER = "user-cursor-fuzz"
KEY_NAMES = st.sampled_from(["pk", "sk", "gsi1pk", "gsi1sk", "extra", ""])
PARTITIONS = st.sampled_from([f"USER#{USER}#PAYOUTS", f"USER#{USER}#TXNS", "USER#other#PAYOUTS", ""])
SCALARS = st.one_of(st.text(max_size=40), PARTITIONS, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8
)


def _encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CURSORS = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_-]{1,120}\Z"),  # anything the route's pattern lets through
    st.dictionaries(KEY_NAMES, st.one_of(PARTITIONS, st.text(max_size=30), SCALARS), max_size=6).map(_encoded),
    st.fixed_dictionaries(  # exactly the key shape, the caller's partition, random values
        {"pk": st.text(max_size=30), "sk": st.text(max_size=30), "gsi1pk": PARTITIONS, "gsi1sk": st.text(max_size=30)}
    ).map(_encoded),
    JSON.map(_encoded),
)


def _seed_transactions(resources: Resources) -> None:
    """Two of USER's bank transactions, as the sync worker stores them (moto only walks a start key
    over a partition that holds items)."""
    for n in (1, 2):
        resources.client("dynamodb").put_item(
            TableName=resources.ref("Table"),
            Item={
                "pk": {"S": "CONN#conn_fuzz"},
                "sk": {"S": f"TXN#t{n}"},
                "gsi1pk": {"S": f"USER#{USER}#TXNS"},
                "gsi1sk": {"S": f"2026-11-0{n}#conn_fuzz#t{n}"},
                "transaction_id": {"S": f"t{n}"},
                "connection_id": {"S": "conn_fuzz"},
                "user_id": {"S": USER},
                "content_hash": {"S": "x"},
                "amount": {"N": "100"},
            },
        )


@pytest.fixture(params=[("PayoutsApiFunction", "/payouts"), ("BankApiFunction", "/bank/transactions")], ids=lambda p: p[1])
def listing(request: pytest.FixtureRequest, handler_of, resources: Resources) -> tuple[Any, str, str]:
    """One list route's function loaded in-process, with two of USER's items to list; its path and a token."""
    logical_id, path = request.param
    token = funded_token(resources, USER)
    handler = handler_of(logical_id)
    if path == "/payouts":
        for n in (1, 2):
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"fuzz-{n}"}
            assert call(handler, http_event("POST", "/payouts", body=VALID_BODY, headers=headers))[0] == 201
    else:
        _seed_transactions(resources)
    return handler, path, token


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cursor=CURSORS)
def test_no_cursor_gives_a_500(listing: tuple[Any, str, str], cursor: str) -> None:
    handler, path, token = listing
    status, headers, body = call(handler, http_event("GET", path, query={"cursor": cursor}, headers={"Authorization": f"Bearer {token}"}))
    assert status in (200, 400), (path, cursor, status, body)
    if status == 400:
        assert headers["content-type"] == "application/problem+json"
        assert body["errors"][0]["field"] == "cursor"
