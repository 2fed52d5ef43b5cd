"""DynamoDB's write isolation, which moto lacks.

moto runs a TransactWriteItems by deep-copying each table it touches and, when a condition fails,
restoring the copy: every write another thread committed in between is erased. DynamoDB never
does that (transactions are serializable against every other write), and the product's
invariants rely on it, e.g. concurrent creates with one Idempotency-Key. The local runtime and
the tests therefore serialise moto's DynamoDB writes; reads stay concurrent.
"""

from __future__ import annotations

import functools
import threading
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
