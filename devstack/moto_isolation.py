"""DynamoDB's write isolation, which moto lacks.

moto runs a TransactWriteItems by deep-copying each table it touches and, when a condition fails,
restoring the copy: every write another thread committed in between is erased. DynamoDB never
does that (transactions are serializable against every other write), and the product's
invariants rely on it, e.g. concurrent creates with one Idempotency-Key. The local runtime and
the tests therefore serialise moto's DynamoDB writes; reads stay concurrent.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import defaultdict
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_lock = threading.RLock()


def isolate_dynamodb_writes() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_payrail_isolated", False):
            continue

        def isolated(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _lock:
                return _original(self, *args, **kwargs)

        functools.update_wrapper(isolated, original)
        isolated._payrail_isolated = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, isolated)
    _cheap_transaction_backups()


class _TransactionSnapshots:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend during one transaction.

    moto backs up a table before a transaction by deep-copying all of it, once per action: on a
    table of thousands of items that costs more than everything else a request does, and grows
    with the table. Because the lock above already keeps every other write out, a backup needs
    only the table's item containers plus deep copies of the items this transaction can change
    in place; every other item is untouched until the transaction ends."""

    def __init__(self, transact_items: list[dict[str, Any]]) -> None:
        self._keys: dict[str, list[dict[str, Any]]] = {}
        for action in transact_items:
            _, operation = next(iter(action.items()))
            key = operation.get("Key") or operation.get("Item") or {}
            self._keys.setdefault(operation.get("TableName", ""), []).append(key)
        self._snapshots: dict[int, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType
        from moto.dynamodb.models.table import Table

        if not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) in self._snapshots:
            return self._snapshots[id(value)]
        snapshot = copy.copy(value)
        snapshot.items = defaultdict(dict)
        for hash_key, stored in value.items.items():
            snapshot.items[hash_key] = dict(stored) if value.has_range_key else stored
        for key in self._keys.get(value.name, []):
            if value.hash_key_attr not in key:
                continue
            hash_key = DynamoType(key[value.hash_key_attr])
            if value.has_range_key:
                range_key = DynamoType(key[value.range_key_attr]) if value.range_key_attr in key else None
                if range_key is not None and range_key in value.items.get(hash_key, {}):
                    snapshot.items[hash_key][range_key] = copy.deepcopy(value.items[hash_key][range_key])
            elif hash_key in value.items:
                snapshot.items[hash_key] = copy.deepcopy(value.items[hash_key])
        self._snapshots[id(value)] = snapshot
        return snapshot


def _cheap_transaction_backups() -> None:
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_payrail_snapshots", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with _lock:
            models.copy = _TransactionSnapshots(transact_items)  # type: ignore[assignment]
            try:
                return original(self, transact_items)
            finally:
                models.copy = copy

    functools.update_wrapper(transact_write_items, original)
    transact_write_items._payrail_snapshots = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
