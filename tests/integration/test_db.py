"""The data-access module: conditions, transactions and error translation, on the template's table."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from payrail.db import ConditionFailed, Table, TransactionCancelled, decode_cursor, encode_cursor
from payrail.errors import DependencyFailure, ValidationFailed

from tests.support import Resources


@pytest.fixture
def table(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Table:
    resources.point_at(monkeypatch)
    return Table(resources.ref("Table"))


def test_a_failed_condition_returns_the_stored_item(table: Table) -> None:
    table.put({"pk": "A", "sk": "1", "amount": 12550})
    with pytest.raises(ConditionFailed) as failure:
        table.put({"pk": "A", "sk": "1", "amount": 1}, condition="attribute_not_exists(pk)", return_on_failure=True)
    assert failure.value.item == {"pk": "A", "sk": "1", "amount": 12550}
    assert table.get({"pk": "A", "sk": "1"}) == {"pk": "A", "sk": "1", "amount": 12550}


def test_numbers_come_back_as_ints_and_floats_are_refused(table: Table) -> None:
    table.put({"pk": "A", "sk": "2", "amount": 10**15})
    assert table.get({"pk": "A", "sk": "2"})["amount"] == 10**15
    assert isinstance(table.get({"pk": "A", "sk": "2"})["amount"], int)
    with pytest.raises(TypeError):
        table.put({"pk": "A", "sk": "3", "amount": 1.5})


def test_a_cancelled_transaction_names_the_failing_action_and_writes_nothing(table: Table) -> None:
    table.put({"pk": "KEY", "sk": "1", "payout": "first"})
    with pytest.raises(TransactionCancelled) as failure:
        table.transact_write(
            [
                table.put_action(
                    {"pk": "KEY", "sk": "1", "payout": "second"}, condition="attribute_not_exists(pk)", return_on_failure=True
                ),
                table.put_action({"pk": "PAYOUT", "sk": "2"}),
            ]
        )
    assert failure.value.reason(0).code == "ConditionalCheckFailed"
    assert failure.value.reason(0).item == {"pk": "KEY", "sk": "1", "payout": "first"}
    assert table.get({"pk": "PAYOUT", "sk": "2"}) is None


def test_a_transaction_conflict_is_retried(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given DynamoDB cancels the first attempt because a concurrent transaction touched the item
    real = table._client.transact_write_items
    calls = []

    def conflicting_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(table._client, "transact_write_items", conflicting_once)
    # When the transaction is written
    table.transact_write([table.put_action({"pk": "T", "sk": "1"}, condition="attribute_not_exists(pk)")])
    # Then it was retried and applied once
    assert len(calls) == 2
    assert table.get({"pk": "T", "sk": "1"}) == {"pk": "T", "sk": "1"}


def test_a_persistent_conflict_becomes_a_retryable_dependency_failure(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_conflicting(**_):
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(table._client, "transact_write_items", always_conflicting)
    with pytest.raises(DependencyFailure):
        table.transact_write([table.put_action({"pk": "T", "sk": "2"})])


def test_throttling_becomes_a_dependency_failure(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    def throttled(**_):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "GetItem")

    monkeypatch.setattr(table._client, "get_item", throttled)
    with pytest.raises(DependencyFailure):
        table.get({"pk": "A", "sk": "1"})


def test_batches_write_and_read_more_than_one_request_worth(table: Table) -> None:
    items = [{"pk": "B", "sk": f"{i:04d}", "n": i} for i in range(130)]
    table.batch_write(puts=items)
    found = table.batch_get([{"pk": "B", "sk": f"{i:04d}"} for i in range(130)] + [{"pk": "B", "sk": "missing"}])
    assert sorted(item["n"] for item in found) == list(range(130))
    table.batch_write(deletes=[{"pk": "B", "sk": f"{i:04d}"} for i in range(130)])
    assert table.query("pk = :pk", {":pk": "B"}).items == []


def test_cursors_round_trip_and_refuse_another_partition() -> None:
    key = {"gsi1pk": "USER#1", "gsi1sk": "2026-11-22T10:00:00Z", "pk": "PAYOUT#9", "sk": "PAYOUT"}
    cursor = encode_cursor(key)
    assert cursor
    assert decode_cursor(cursor, gsi1pk="USER#1") == key
    with pytest.raises(ValidationFailed):
        decode_cursor(cursor, gsi1pk="USER#2")
    for junk in ("!!!", "bm90IGpzb24", encode_cursor({"a": "b"})[:-2] + "zz"):
        with pytest.raises(ValidationFailed):
            decode_cursor(junk, gsi1pk="USER#1")


def test_a_cancelled_transaction_undoes_an_update_made_before_the_failing_condition(table: Table) -> None:
    # Given a counter and an item that already exists
    table.put({"pk": "COUNTER", "sk": "1", "count": 5})
    table.put({"pk": "TAKEN", "sk": "1"})
    # When a transaction increments the counter and then fails on the existing item
    with pytest.raises(TransactionCancelled):
        table.transact_write(
            [
                table.update_action({"pk": "COUNTER", "sk": "1"}, "ADD #count :one", names={"#count": "count"}, values={":one": 1}),
                table.put_action({"pk": "TAKEN", "sk": "1", "again": True}, condition="attribute_not_exists(pk)"),
            ]
        )
    # Then the increment was rolled back and the existing item is untouched
    assert table.get({"pk": "COUNTER", "sk": "1"}) == {"pk": "COUNTER", "sk": "1", "count": 5}
    assert table.get({"pk": "TAKEN", "sk": "1"}) == {"pk": "TAKEN", "sk": "1"}
