"""The one module that talks to DynamoDB.

It builds the client once, (de)serialises items, writes with condition expressions and
transactions, and turns ``ClientError`` codes into the project's own errors in one place.
Entity modules beside it (``payrail.db.<entity>``) know the key layout of their items; nothing
above this package builds a key string or imports boto3's DynamoDB types.

Numbers come back as ``int`` when they are whole (money is always whole minor units) and the
serialiser refuses floats, so money can never pass through one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from payrail import aws, retry
from payrail.errors import Conflict, DependencyFailure, ValidationFailed

Item = dict[str, Any]
Key = dict[str, str]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
    }
)
TRANSACTION_CONFLICT_ATTEMPTS = 4


class ConditionFailed(Conflict):
    """A single write's condition failed; ``item`` is the stored item when it was asked for."""

    def __init__(self, item: Item | None = None) -> None:
        super().__init__("The item's condition was not met.")
        self.item = item


@dataclass
class CancellationReason:
    code: str
    item: Item | None = None


class TransactionCancelled(Conflict):
    """A transaction failed a condition; ``reasons`` line up with the transaction's actions."""

    def __init__(self, reasons: list[CancellationReason]) -> None:
        super().__init__("The transaction's conditions were not met.")
        self.reasons = reasons

    def reason(self, index: int) -> CancellationReason:
        return self.reasons[index] if index < len(self.reasons) else CancellationReason("None")


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, Binary):
        return bytes(value)  # type: ignore[call-overload]  # Binary has __bytes__; the stubs miss it
    return value


def deserialize(item: Mapping[str, Any]) -> Item:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _translate(error: ClientError | BotoCoreError) -> Exception:
    if isinstance(error, BotoCoreError):
        return DependencyFailure(f"DynamoDB is unreachable: {type(error).__name__}")
    code = error.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        stored: Any = error.response.get("Item")
        return ConditionFailed(deserialize(stored) if stored else None)
    if code in _RETRYABLE_CODES:
        return DependencyFailure(f"DynamoDB answered {code}")
    return error


@dataclass
class Page:
    items: list[Item]
    last_key: Key | None = None


@dataclass
class Write:
    """One action of a transaction, built by the entity modules with the helpers below."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


class Table:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def _client(self) -> Any:
        return aws.client("dynamodb")  # made once per process (payrail.aws)

    # ---------------------------------------------------------------- expressions
    def _expression(self, params: dict[str, Any], names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if values:
            params["ExpressionAttributeValues"] = serialize(values)
        return params

    def put_action(
        self,
        item: Mapping[str, Any],
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        return_on_failure: bool = False,
    ) -> Write:
        params: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        if condition:
            params["ConditionExpression"] = condition
        if return_on_failure:
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return Write("Put", self._expression(params, names, values))

    def update_action(
        self,
        key: Key,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        return_on_failure: bool = False,
    ) -> Write:
        params: dict[str, Any] = {"TableName": self.name, "Key": serialize(key), "UpdateExpression": update}
        if condition:
            params["ConditionExpression"] = condition
        if return_on_failure:
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return Write("Update", self._expression(params, names, values))

    def delete_action(
        self,
        key: Key,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Write:
        params: dict[str, Any] = {"TableName": self.name, "Key": serialize(key)}
        if condition:
            params["ConditionExpression"] = condition
        return Write("Delete", self._expression(params, names, values))

    def check_action(
        self, key: Key, condition: str, names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None
    ) -> Write:
        params: dict[str, Any] = {"TableName": self.name, "Key": serialize(key), "ConditionExpression": condition}
        return Write("ConditionCheck", self._expression(params, names, values))

    # ---------------------------------------------------------------- single items
    def get(self, key: Key, consistent: bool = True) -> Item | None:
        try:
            answer = self._client.get_item(TableName=self.name, Key=serialize(key), ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as error:
            raise _translate(error) from error
        return deserialize(answer["Item"]) if "Item" in answer else None

    def run(self, action: Write, returns: str | None = None) -> Item | None:
        """Run one prepared Put, Update or Delete action on its own (outside a transaction)."""
        call = {"Put": self._client.put_item, "Update": self._client.update_item, "Delete": self._client.delete_item}[action.kind]
        params = dict(action.params)
        if returns:
            params["ReturnValues"] = returns
        try:
            answer = call(**params)
        except (ClientError, BotoCoreError) as error:
            raise _translate(error) from error
        attributes = answer.get("Attributes")
        return deserialize(attributes) if attributes else None

    def put(
        self,
        item: Mapping[str, Any],
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        return_on_failure: bool = False,
    ) -> None:
        self.run(self.put_action(item, condition, names, values, return_on_failure))

    def update(
        self,
        key: Key,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        returns: str = "ALL_NEW",
        return_on_failure: bool = False,
    ) -> Item | None:
        return self.run(self.update_action(key, update, condition, names, values, return_on_failure), returns)

    def delete(
        self,
        key: Key,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        returns: str = "ALL_OLD",
    ) -> Item | None:
        return self.run(self.delete_action(key, condition, names, values), returns)

    # ---------------------------------------------------------------- many items
    def query(
        self,
        key_condition: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
        index: str | None = None,
        limit: int | None = None,
        start_key: Key | None = None,
        newest_first: bool = False,
        filter_expression: str | None = None,
        consistent: bool = False,
    ) -> Page:
        params: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": key_condition, "ScanIndexForward": not newest_first}
        if index:
            params["IndexName"] = index
        elif consistent:
            params["ConsistentRead"] = True
        if limit:
            params["Limit"] = limit
        if start_key:
            params["ExclusiveStartKey"] = serialize(start_key)
        if filter_expression:
            params["FilterExpression"] = filter_expression
        try:
            answer = self._client.query(**self._expression(params, names, values))
        except (ClientError, BotoCoreError) as error:
            raise _translate(error) from error
        last = answer.get("LastEvaluatedKey")
        return Page([deserialize(i) for i in answer.get("Items", [])], deserialize(last) if last else None)

    def transact_write(self, actions: Sequence[Write], conflict_attempts: int = TRANSACTION_CONFLICT_ATTEMPTS) -> None:
        """All or nothing. A ``TransactionConflict`` with a concurrent writer is retried with jitter,
        ``conflict_attempts`` tries in all; a failed condition raises :class:`TransactionCancelled`
        with the stored items it asked for."""
        request = [{action.kind: action.params} for action in actions]
        for attempt in range(1, conflict_attempts + 1):
            try:
                self._client.transact_write_items(TransactItems=request)
                return
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise _translate(error) from error
                reasons = [
                    CancellationReason(r.get("Code", "None"), deserialize(r["Item"]) if r.get("Item") else None)
                    for r in error.response.get("CancellationReasons", [])
                ]
                codes = {r.code for r in reasons}
                if "ConditionalCheckFailed" in codes:
                    raise TransactionCancelled(reasons) from error
                if codes & {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"} and attempt < conflict_attempts:
                    time.sleep(retry.backoff(attempt, 0.02, 1.0))
                    continue
                raise DependencyFailure(f"DynamoDB cancelled the transaction: {sorted(codes)}") from error
            except BotoCoreError as error:
                raise _translate(error) from error

    def batch_get(self, keys: Iterable[Key], attempts: int = 6) -> list[Item]:
        """Every item that exists among ``keys`` (100 per request, unprocessed keys retried)."""
        wanted = [serialize(k) for k in keys]
        found: list[Item] = []
        for start in range(0, len(wanted), 100):
            pending: list[dict[str, Any]] = wanted[start : start + 100]
            for attempt in range(attempts):
                if not pending:
                    break
                try:
                    answer = self._client.batch_get_item(RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}})
                except (ClientError, BotoCoreError) as error:
                    raise _translate(error) from error
                found.extend(deserialize(i) for i in answer.get("Responses", {}).get(self.name, []))
                pending = answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if pending:
                    time.sleep(retry.backoff(attempt, 0.05, 2.0))
            if pending:
                raise DependencyFailure("DynamoDB left keys unprocessed")
        return found

    def batch_write(self, puts: Iterable[Mapping[str, Any]] = (), deletes: Iterable[Key] = (), attempts: int = 6) -> None:
        """Unconditional puts and deletes, 25 per request, unprocessed items retried."""
        requests = [{"PutRequest": {"Item": serialize(i)}} for i in puts] + [{"DeleteRequest": {"Key": serialize(k)}} for k in deletes]
        for start in range(0, len(requests), 25):
            pending = requests[start : start + 25]
            for attempt in range(attempts):
                if not pending:
                    break
                try:
                    answer = self._client.batch_write_item(RequestItems={self.name: pending})
                except (ClientError, BotoCoreError) as error:
                    raise _translate(error) from error
                pending = answer.get("UnprocessedItems", {}).get(self.name, [])
                if pending:
                    time.sleep(retry.backoff(attempt, 0.05, 2.0))
            if pending:
                raise DependencyFailure("DynamoDB left items unprocessed")

    def describe(self) -> dict[str, Any]:
        try:
            return dict(self._client.describe_table(TableName=self.name)["Table"])
        except (ClientError, BotoCoreError) as error:
            raise _translate(error) from error


_tables: dict[str, Table] = {}
_tables_lock = threading.Lock()


def table() -> Table:
    """The function's table: the one its template environment names in ``TABLE_NAME``.

    The table is infrastructure the function is bound to, like the endpoint its clients call, so
    it is read where the clients are made rather than passed down with the settings; a handle is
    kept per name, so a process that runs another function's environment (a test) gets that one."""
    name = os.environ["TABLE_NAME"]
    handle = _tables.get(name)
    if handle is None:
        with _tables_lock:
            handle = _tables.setdefault(name, Table(name))
    return handle


def table_status() -> str:
    """The table's status as DynamoDB reports it (``ACTIVE`` when it serves)."""
    return str(table().describe().get("TableStatus", "UNKNOWN"))


# -------------------------------------------------------------------- cursors
# The attributes of a LastEvaluatedKey, per index queried: the index's keys and the table's.
# A cursor is exactly one of these keys, as encode_cursor wrote it; DynamoDB refuses an
# ExclusiveStartKey missing any of them (or holding an empty one) with a ValidationException,
# which is the service's error, not the client's, so nothing else reaches it.
TABLE_KEY = ("pk", "sk")
INDEX_KEYS: dict[str | None, tuple[str, ...]] = {None: TABLE_KEY, "gsi1": (*TABLE_KEY, "gsi1pk", "gsi1sk")}
MAX_KEY_VALUE_LENGTH = 1024  # DynamoDB's limit for a sort key (a partition key's is 2048)


def encode_cursor(last_key: Key | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, index: str | None = "gsi1", **pinned: str) -> Key | None:
    """The key behind an opaque cursor for a query of ``index``, or ValidationFailed.

    The cursor must hold exactly the key attributes of ``index`` (INDEX_KEYS), each a non-empty
    string, and ``pinned`` attributes must have the given values (the caller's partition), so a
    crafted cursor can neither start a query in another partition nor reach DynamoDB malformed."""
    if not cursor:
        return None
    invalid = ValidationFailed(
        "The cursor is not valid.",
        errors=[{"in": "query", "field": "cursor", "message": "Use a next_cursor this list returned", "type": "cursor"}],
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as error:
        raise invalid from error
    expected = set(INDEX_KEYS[index])
    if not isinstance(key, dict) or set(key) != expected or not set(pinned) <= expected:
        raise invalid
    if not all(isinstance(value, str) and 0 < len(value.encode()) <= MAX_KEY_VALUE_LENGTH for value in key.values()):
        raise invalid
    if any(key[name] != value for name, value in pinned.items()):
        raise invalid
    return key
