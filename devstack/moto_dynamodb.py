"""The local runtime's adaptations of moto's DynamoDB, all of them, in this one module.

1. Write isolation, which moto lacks. moto runs a TransactWriteItems by deep-copying each table it
   touches and, when a condition fails, restoring the copy: every write another thread committed
   in between is erased. DynamoDB never does that (transactions are serializable against every
   other write), and the product's invariants rely on it, e.g. concurrent creates with one
   Idempotency-Key. The local runtime and the tests therefore serialise moto's DynamoDB writes;
   reads stay concurrent.

2. Cheap transaction backups: the copy a transaction restores on failure holds deep copies of
   only the items the transaction can change (see ``_TransactionSnapshots``).

3. Queries in time proportional to the page. moto answers every Query, of the table or of an
   index, by collecting and sorting every item of the table, then walking the partition up to the
   page: a page costs more as the table and the partition grow, which DynamoDB's never does. The
   runtime keeps, per table and per index, each partition's keys sorted in moto's own order,
   updated under the write lock by every write (by the keys it touched); a Query then hands moto's
   own ``Table.query`` only the stretch of the partition its page can come from: past the
   ExclusiveStartKey and inside the key condition's range, ``Limit`` items and the one after
   (whose presence makes moto return a LastEvaluatedKey). moto then does everything else as it
   always does (the key condition, ScanIndexForward, Limit, FilterExpression after the limit,
   projection, ScannedCount, LastEvaluatedKey), so the answers are moto's own;
   tests/integration/test_moto_queries.py compares them with unadapted moto's on random tables,
   writes and queries. Whatever the index does not cover (several key attributes, the legacy
   QueryFilter, an ExclusiveStartKey missing key attributes, pages near moto's 1 MB limit, mixed
   key types) goes to moto's full walk unchanged.

4. Streams as DynamoDB writes them (``_faithful_streams``). moto appends a stream record for
   every write, including the writes of a transaction that is then cancelled (its items are put
   back, its records stay) and writes that change nothing; DynamoDB writes a transaction's records
   only when it commits, and none for a PutItem or UpdateItem that leaves the item as it was. So
   a transaction's records are held back until it commits (a reader never sees a record of a
   cancelled one, even half-way), a MODIFY whose images are equal is not written, an UpdateItem
   that creates its item writes one INSERT (moto writes the bare key's first), and every
   appended record wakes the local stream pollers (``wait_for_stream_records``), which is what
   lets them deliver a write in milliseconds without hammering GetRecords. moto also keeps every
   shard iterator it ever handed out (each GetRecords hands out one more); DynamoDB expires them
   after 15 minutes, and so does this adaptation. moto expires no item by TTL, so there are no
   TTL deletions (and no ``userIdentity`` records) locally.

5. Item values answered as they are stored. moto's server turns every answer into JSON with a
   generic serializer that, for each attribute value of each item, tries each of the ten members of
   DynamoDB's ``AttributeValue`` shape through a chain of name aliases: a Query of ten payouts spent
   ~55 ms there, 95% of its time in moto, and a stream's GetRecords of a thousand records far more.
   moto hands the serializer items already in DynamoDB's wire form (``{"S": ...}``, ``{"M": {...}}``),
   so ``_direct_attribute_values`` writes such a value as the serializer would (strings as strings,
   binaries base64-encoded, sets and nested maps and lists member by member) and leaves anything
   else to it; tests/integration/test_moto_serializer.py compares the two on random items.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import functools
import inspect
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
# Everything else that changes a backend's tables, or their indexes, without naming item keys: the
# adapted indexes of its tables are dropped and built again at their next query.
_OTHER_CHANGES = (
    "create_table",
    "delete_table",
    "update_table",
    "update_table_global_indexes",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "restore_table_from_backup",
    "restore_table_to_point_in_time",
    "import_table",
)
_lock = threading.RLock()


def adapt_moto_dynamodb() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent): every adaptation above."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES + _OTHER_CHANGES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_payrail_isolated", False):
            continue
        touched = _TOUCHED_KEYS.get(name)
        signature = inspect.signature(original)

        def isolated(
            self: Any, *args: Any, _original: Any = original, _touched: Any = touched, _signature: Any = signature, **kwargs: Any
        ) -> Any:
            with _lock:
                try:
                    return _original(self, *args, **kwargs)
                finally:
                    try:
                        keys = None if _touched is None else _touched(_signature.bind(self, *args, **kwargs).arguments)
                    except (TypeError, KeyError, AttributeError, StopIteration):
                        keys = None  # a call moto refused as malformed: keep nothing it may have left
                    if keys is None:
                        _forget_indexes(self)
                    else:
                        _reindex(self, keys)

        functools.update_wrapper(isolated, original)
        isolated._payrail_isolated = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, isolated)
    _cheap_transaction_backups()
    _indexed_queries()
    _faithful_streams()
    _direct_attribute_values()


# ==================================================================== transaction backups
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
        snapshot = copy.copy(value)  # shares the table's query index, see _reindex
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
            _held_records[:] = [[]]
            committed = False
            try:
                result = original(self, transact_items)
                committed = True
                return result
            finally:
                models.copy = copy
                held, _held_records[:] = _held_records[0], []
                if committed:
                    _append_records(held)

    functools.update_wrapper(transact_write_items, original)
    transact_write_items._payrail_snapshots = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# ==================================================================== query indexes
_INDEX_ATTRIBUTE = "_payrail_query_index"
# moto refuses items over ~405 KB; a window whose items come within that of moto's 1 MB page
# limit goes to the full walk, where an item past the window could still end the page.
_MAX_ITEM_BYTES = 450_000
_RESULT_SIZE_LIMIT = 1_000_000
_OPERATORS = {"=": "=", "EQ": "=", "<": "<", "LT": "<", "<=": "<=", "LE": "<=", ">": ">", "GT": ">", ">=": ">=", "GE": ">="}
_OPERATORS |= {"BETWEEN": "BETWEEN", "BEGINS_WITH": "BEGINS_WITH"}
# How many items the adapted queries handed to moto's own query, in all (tests read it).
handed_to_moto = 0

ItemKey = tuple[Any, Any]  # (hash DynamoType, range DynamoType or None)
Entry = tuple[tuple[Any, ...], ItemKey]


def _item_keys(table_key: str, key_field: str) -> Any:
    def keys(arguments: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(arguments[table_key], arguments[key_field])]

    return keys


def _transaction_keys(arguments: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    keys = []
    for action in arguments["transact_items"]:
        _, operation = next(iter(action.items()))
        keys.append((operation.get("TableName", ""), operation.get("Key") or operation.get("Item") or {}))
    return keys


_TOUCHED_KEYS: dict[str, Any] = {
    "put_item": _item_keys("table_name", "item_attrs"),
    "update_item": _item_keys("table_name", "key"),
    "delete_item": _item_keys("table_name", "key"),
    "transact_write_items": _transaction_keys,
    "batch_write_item": lambda _: [],  # moto's is a stub: its responses write item by item
}


class _Sorted:
    """One table's or one index's partitions: for each partition value, the keys of the items in
    it, in the order moto's query sorts them (by ``sort_attributes``). An entry's sort key holds
    the attributes' plain values, which compare as moto's ``DynamoType`` does when their types
    are the same; a partition whose items differ in a key attribute's type is left to moto."""

    def __init__(self, partition_attribute: str, sort_attributes: list[str], required: list[str]) -> None:
        self.partition_attribute = partition_attribute
        self.sort_attributes = sort_attributes
        self.required = required  # the attributes an item needs to be in the index
        self.partitions: dict[Any, list[Entry]] = {}
        self.types: dict[Any, tuple[str, ...]] = {}  # each partition's key attribute types
        self.placed: dict[ItemKey, tuple[Any, tuple[Any, ...]]] = {}
        self.unsorted: set[Any] = set()  # partitions whose keys do not compare (mixed types): moto's walk

    def place(self, key: ItemKey, item: Any) -> None:
        old = self.placed.pop(key, None)
        if old is not None and old[0] not in self.unsorted:
            entries = self.partitions[old[0]]
            position = bisect.bisect_left(entries, old[1], key=_sort_key)
            if position < len(entries) and entries[position][1] == key:
                del entries[position]
            else:
                self._unsort(old[0])
            if not entries:
                self.partitions.pop(old[0], None)
                self.types.pop(old[0], None)
        if item is None or any(item.attrs.get(name) is None for name in self.required):
            return
        partition = item.attrs[self.partition_attribute]
        values = [item.attrs[name] for name in self.sort_attributes]
        sort = tuple(value.cast_value for value in values)
        self.placed[key] = (partition, sort)
        if partition in self.unsorted:
            return
        types = tuple(value.type for value in values)
        if self.types.setdefault(partition, types) != types:
            self._unsort(partition)
            return
        try:
            bisect.insort(self.partitions.setdefault(partition, []), (sort, key), key=_sort_key)
        except TypeError:
            self._unsort(partition)

    def _unsort(self, partition: Any) -> None:
        self.unsorted.add(partition)
        self.partitions.pop(partition, None)
        self.types.pop(partition, None)


def _sort_key(entry: Entry) -> tuple[Any, ...]:
    return entry[0]


class _TableIndex:
    """The sorted partitions of one table and of those of its indexes that were queried."""

    def __init__(self, table: Any) -> None:
        self.items = table.items
        self.schema = _schema_of(table)
        self.sorted: dict[str | None, _Sorted] = {}

    def get(self, table: Any, index_name: str | None, layout: _Sorted) -> _Sorted:
        if index_name not in self.sorted:
            for key, item in _all_items(table):
                layout.place(key, item)
            self.sorted[index_name] = layout
        return self.sorted[index_name]

    def reindex(self, table: Any, key: ItemKey) -> None:
        if not self.sorted:
            return
        item = _lookup(table, key)
        for layout in self.sorted.values():
            layout.place(key, item)


def _schema_of(table: Any) -> tuple[Any, ...]:
    return (
        table.hash_key_attr,
        table.range_key_attr,
        tuple((index.name, repr(index.schema)) for index in table.all_indexes()),
    )


def _all_items(table: Any) -> Iterator[tuple[ItemKey, Any]]:
    for hash_key, stored in table.items.items():
        if table.has_range_key:
            for range_key, item in stored.items():
                yield (hash_key, range_key), item
        else:
            yield (hash_key, None), stored


def _lookup(table: Any, key: ItemKey) -> Any:
    hash_key, range_key = key
    stored = table.items.get(hash_key)
    if stored is None:
        return None
    return stored.get(range_key) if table.has_range_key else stored


def _index_of(table: Any) -> _TableIndex:
    """The table's index, built afresh when its items were replaced other than by a write this
    module saw (a restore) or its indexes changed."""
    index = table.__dict__.get(_INDEX_ATTRIBUTE)
    if index is None or index.items is not table.items or index.schema != _schema_of(table):
        index = _TableIndex(table)
        table.__dict__[_INDEX_ATTRIBUTE] = index
    return index


def _reindex(backend: Any, keys: list[tuple[str, dict[str, Any]]]) -> None:
    """After a write, under the lock: the keys it touched, placed again from the table as it is.
    A cancelled transaction put back a copy of the table (sharing this index, see
    _TransactionSnapshots) whose other items are those the index holds, so it carries over."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    for table_name, raw_key in keys:
        table = backend.tables.get(table_name)
        index = table.__dict__.get(_INDEX_ATTRIBUTE) if table is not None else None
        if index is None or table.hash_key_attr not in raw_key:
            continue
        index.items = table.items
        if table.has_range_key and table.range_key_attr not in raw_key:
            continue
        try:
            key = (DynamoType(raw_key[table.hash_key_attr]), DynamoType(raw_key[table.range_key_attr]) if table.has_range_key else None)
        except (TypeError, KeyError, AttributeError, IndexError):
            continue  # not a key moto could have written
        index.reindex(table, key)


def _forget_indexes(backend: Any) -> None:
    for table in list(backend.tables.values()):
        table.__dict__.pop(_INDEX_ATTRIBUTE, None)


class _Switch:
    """One adaptation, switched off while any block holding ``off()`` runs, in any thread of the
    process (moto's server answers in threads of its own): how the tests compare an adaptation with
    moto's own behaviour. Truthy while it is off."""

    def __init__(self) -> None:
        self._blocks = 0

    def __bool__(self) -> bool:
        return self._blocks > 0

    @contextlib.contextmanager
    def off(self) -> Iterator[None]:
        self._blocks += 1
        try:
            yield
        finally:
            self._blocks -= 1


_unadapted = _Switch()


def unadapted_queries() -> contextlib.AbstractContextManager[None]:
    """moto's own query walk for every query while this block runs."""
    return _unadapted.off()


class _Window:
    """A table as moto's query sees it: every attribute and method the table's, but only the
    items the page can come from."""

    def __init__(self, table: Any, items: list[Any]) -> None:
        self._table = table
        self._items = items

    def all_items(self) -> list[Any]:
        return list(self._items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _indexed_queries() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query
    if getattr(original, "_payrail_indexed", False):
        return

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
        window = None if _unadapted else _window(self, arguments)
        if window is None:
            return original(self, *args, **kwargs)
        global handed_to_moto
        handed_to_moto += len(window)
        return original(_Window(self, window), *args, **kwargs)  # type: ignore[arg-type]

    _QUERY_SIGNATURE = inspect.signature(original)
    functools.update_wrapper(query, original)
    query._payrail_indexed = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


def _layout(table: Any, index_name: str | None) -> tuple[_Sorted, str | None] | None:
    """How moto sorts this query's candidates, and the attribute a key condition's range is on;
    None where the index does not follow moto (several key attributes, unknown index)."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    if index_name is None:
        if not table.has_range_key:
            return None
        attributes = table._generate_attr_to_sort_by([table.hash_key_attr], [table.range_key_attr])
        return _Sorted(table.hash_key_attr, attributes, [table.hash_key_attr]), table.range_key_attr
    index = {i.name: i for i in table.all_indexes()}.get(index_name)
    if index is None:
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) > 1:
        return None
    if ranges:
        range_attributes: list[str | None] = [ranges[0], table.range_key_attr]
    elif isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
        range_attributes = [table.range_key_attr, table.range_key_attr]
    else:
        range_attributes = [table.hash_key_attr, table.range_key_attr]
    attributes = table._generate_attr_to_sort_by([hashes[0], table.hash_key_attr], range_attributes)
    return _Sorted(hashes[0], attributes, [hashes[0], *ranges]), (ranges[0] if ranges else None)


def _window(table: Any, arguments: dict[str, Any]) -> list[Any] | None:
    """The items, in the partition's order, that moto's query needs to answer this page exactly;
    None: let moto walk the whole table as it does."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hashes = arguments.get("hash_key_conditions") or []
    ranges = arguments.get("range_key_conditions") or []
    index_name = arguments.get("index_name")
    limit = arguments.get("limit")
    if arguments.get("filter_kwargs") or len(hashes) != 1 or len(ranges) > 1 or (limit is not None and limit < 1):
        return None
    if index_name is None and not table.has_range_key:
        return None  # a hash-only table: at most one item, and moto finds it quickly enough
    with _lock:
        index = _index_of(table)
        layout = _layout(table, index_name)
        if layout is None:
            return None
        fresh, range_attribute = layout
        if arguments.get("consistent_read") and index_name is not None and index_name in [i.name for i in table.global_indexes or []]:
            return None  # moto refuses it
        (hash_name, partition), comparison = hashes[0], arguments.get("range_comparison")
        if hash_name != fresh.partition_attribute:
            return None
        if ranges and (ranges[0][0] != range_attribute or _OPERATORS.get(ranges[0][1]) is None):
            return None
        if comparison and not ranges:
            return None
        sorted_ = index.get(table, index_name, fresh)
        if partition in sorted_.unsorted:
            return None
        entries = sorted_.partitions.get(partition, [])
        types = sorted_.types.get(partition)
        forward = arguments.get("scan_index_forward") is not False
        try:
            low, high = _range_bounds(entries, types, ranges[0] if ranges else None)
            start_key = arguments.get("exclusive_start_key")
            if start_key is not None:
                if any(name not in start_key for name in sorted_.sort_attributes):
                    return None
                values = [DynamoType(start_key[name]) for name in sorted_.sort_attributes]
                if types is not None and tuple(value.type for value in values) != types:
                    return None
                start = tuple(value.cast_value for value in values)
                if forward:
                    low = max(low, bisect.bisect_right(entries, start, key=_sort_key))
                else:
                    high = min(high, bisect.bisect_left(entries, start, key=_sort_key))
        except (TypeError, AttributeError, KeyError, IndexError):
            return None  # values moto compares differently (or refuses): its own walk decides
        if forward:
            low = min(low, len(entries))
            end = high if limit is None else min(high, low + limit)
            chosen = entries[low : end + 1]
        else:
            high = max(high, 0)
            begin = low if limit is None else max(low, high - limit)
            chosen = entries[max(begin - 1, 0) : high]
        items = [_lookup(table, key) for _, key in chosen]
        if any(item is None for item in items):
            table.__dict__.pop(_INDEX_ATTRIBUTE, None)  # out of step with the table: never guess
            return None
    if sum(item.size() for item in items) > _RESULT_SIZE_LIMIT - _MAX_ITEM_BYTES:
        return None
    return items


def _range_bounds(entries: list[Entry], types: tuple[str, ...] | None, condition: tuple[str, str, list[Any]] | None) -> tuple[int, int]:
    """The stretch [low, high) of a partition whose range attribute meets the key condition: the
    range attribute leads each entry's sort key after the partition's, so it is contiguous."""
    if condition is None or not entries:
        return 0, len(entries)
    assert types is not None
    _, operator, values = condition
    operator = _OPERATORS[operator]
    if any(value.type != types[1] for value in values):
        raise TypeError("a key condition on another type than the items'")  # moto's own walk decides

    def first(value: Any, after: bool) -> int:
        search = bisect.bisect_right if after else bisect.bisect_left
        return search(entries, value, key=lambda entry: entry[0][1])

    plain = [value.cast_value for value in values]
    if operator == "=":
        return first(plain[0], False), first(plain[0], True)
    if operator == "<":
        return 0, first(plain[0], False)
    if operator == "<=":
        return 0, first(plain[0], True)
    if operator == ">":
        return first(plain[0], True), len(entries)
    if operator == ">=":
        return first(plain[0], False), len(entries)
    if operator == "BETWEEN":
        low, high = first(plain[0], False), first(plain[1], True)
        return low, max(low, high)
    prefix = plain[0]
    if types[1] != "S":
        raise TypeError("begins_with is indexed on strings only")
    if not prefix:
        return 0, len(entries)
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        raise TypeError("no string follows this prefix")
    return first(prefix, False), first(prefix[:-1] + chr(last + 1), False)


# ==================================================================== streams
# While a transaction runs (under the write lock): the stream records it wrote, as (shard,
# record), appended to their shards only if it commits.
_held_records: list[list[tuple[Any, Any]]] = []
# While an UpdateItem runs (under the write lock): the last record it wrote, which it emits.
_updating: list[tuple[Any, Any] | None] = []
_stream_written = threading.Condition()
_stream_records = 0  # records appended to any shard in this process, ever
ITERATOR_LIFETIME_SECONDS = 15 * 60  # "A shard iterator expires 15 minutes after it is returned"


def stream_records_written() -> int:
    """How many stream records have been appended so far (to pass to wait_for_stream_records)."""
    return _stream_records


def wait_for_stream_records(seen: int, timeout: float) -> bool:
    """Wait until a stream record is appended after ``seen`` were (or ``timeout`` passes)."""
    with _stream_written:
        return _stream_written.wait_for(lambda: _stream_records != seen, timeout)


def _append_records(records: list[tuple[Any, Any]]) -> None:
    global _stream_records
    if not records:
        return
    for shard, record in records:
        shard.items.append(record)
    with _stream_written:
        _stream_records += len(records)
        _stream_written.notify_all()


def _emit(shard: Any, record: Any) -> None:
    if _held_records:
        _held_records[0].append((shard, record))
    else:
        _append_records([(shard, record)])


def _faithful_streams() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    original_add = StreamShard.add
    if getattr(original_add, "_payrail_streams", False):
        return

    def add(self: Any, old: Any, new: Any) -> None:
        if self.table.lambda_event_source_mappings:
            original_add(self, old, new)  # moto's own Lambda, which the runtime does not use
            return
        if old is not None and new is not None and old.to_json() == new.to_json():
            return  # "no stream record is written for a write that changes nothing"
        event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        held = _held_records[0] if _held_records else None
        pending = sum(1 for shard, _ in held if shard is self) if held is not None else 0
        sequence = self.starting_sequence_number + len(self.items) + pending
        record = StreamRecord(self.table, self.table.stream_specification["StreamViewType"], event_name, old, new, sequence)
        if _updating:
            _updating[-1] = (self, record)  # an update's last record is its only one
        else:
            _emit(self, record)

    add._payrail_streams = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]

    # moto's UpdateItem of an item that does not exist yet puts the bare key first, then updates
    # it: two INSERT records for one write. DynamoDB writes one, the item as the update left it.
    original_update = DynamoDBBackend.update_item

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            _updating.append(None)
            try:
                result = original_update(self, *args, **kwargs)
            finally:
                last = _updating.pop()
            if last is not None:
                _emit(*last)
            return result

    functools.update_wrapper(update_item, original_update)
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]

    def shard_iterators(self: Any) -> dict[str, Any]:
        if "_payrail_iterators" not in self.__dict__:  # a backend made before the adaptation
            self.__dict__["_payrail_iterators"] = _ExpiringIterators(self.__dict__.pop("shard_iterators", {}))
        iterators: dict[str, Any] = self.__dict__["_payrail_iterators"]
        return iterators

    def set_shard_iterators(self: Any, value: dict[str, Any]) -> None:
        self.__dict__["_payrail_iterators"] = _ExpiringIterators(value)

    DynamoDBStreamsBackend.shard_iterators = property(shard_iterators, set_shard_iterators)  # type: ignore[assignment]


class _ExpiringIterators(dict[str, Any]):
    """moto's shard iterators by id, each dropped 15 minutes after it was handed out (reading an
    expired one fails as moto fails an unknown one)."""

    def __init__(self, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self._issued: list[tuple[float, str]] = []
        self._guard = threading.Lock()

    def __setitem__(self, key: str, value: Any) -> None:
        now = time.monotonic()
        with self._guard:
            super().__setitem__(key, value)
            self._issued.append((now, key))
            expired = 0
            while expired < len(self._issued) and now - self._issued[expired][0] > ITERATOR_LIFETIME_SECONDS:
                self.pop(self._issued[expired][1], None)
                expired += 1
            del self._issued[:expired]


# ==================================================================== attribute values
_SERVICES_WITH_ITEMS = ("dynamodb", "dynamodbstreams")
_STRING_TAGS = ("S", "N")
_STRING_SET_TAGS = ("SS", "NS")
_FLAG_TAGS = ("BOOL", "NULL")


class _NotWire(Exception):
    """A value not in DynamoDB's wire form: moto's serializer answers it."""


def _wire_value(value: Any, encode: Callable[[str | bytes], str]) -> dict[str, Any]:
    """One attribute value as moto's JSON serializer writes it, for a value in wire form.

    What the serializer does, member by member of ``AttributeValue``: a member whose value is None
    is left out; S and N are written with ``str``; B is base64-encoded (``encode``, the
    serializer's own); SS and NS member by member with ``str``, BS with ``encode``; BOOL and NULL
    as they are; M and L recurse. A key that is no member, or a type the serializer would coerce
    differently, raises ``_NotWire``."""
    if type(value) is not dict:
        raise _NotWire
    answer: dict[str, Any] = {}
    for tag, member in value.items():
        if member is None:
            continue
        if tag in _STRING_TAGS and type(member) is str:
            answer[tag] = member
        elif tag == "B" and type(member) in (str, bytes):
            answer[tag] = encode(member)
        elif tag in _STRING_SET_TAGS and type(member) is list and all(type(x) is str for x in member):
            answer[tag] = list(member)
        elif tag == "BS" and type(member) is list and all(type(x) in (str, bytes) for x in member):
            answer[tag] = [encode(x) for x in member]
        elif tag in _FLAG_TAGS and type(member) is bool:
            answer[tag] = member
        elif tag == "M" and type(member) is dict and "" not in member:
            answer[tag] = {name: _wire_value(inner, encode) for name, inner in member.items()}
        elif tag == "L" and type(member) is list:
            answer[tag] = [_wire_value(inner, encode) for inner in member]
        else:
            raise _NotWire
    return answer


_moto_serializer = _Switch()
written_directly = 0  # attribute values written by the adaptation (the tests read it)


def moto_serializer() -> contextlib.AbstractContextManager[None]:
    """moto's own serializer for every attribute value while this block runs."""
    return _moto_serializer.off()


def _direct_attribute_values() -> None:
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure
    if getattr(original, "_payrail_direct", False):
        return

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        global written_directly
        if (
            key
            and shape.name == "AttributeValue"
            and not _moto_serializer
            and self.operation_model.service_model.service_name in _SERVICES_WITH_ITEMS
            and not getattr(self._value_picker, "response_transformers", None)
        ):
            try:
                serialized[self.get_serialized_name(shape, key)] = _wire_value(value, self._base64)
                written_directly += 1
                return
            except _NotWire:
                pass
        original(self, serialized, value, shape, key)

    functools.update_wrapper(serialize_structure, original)
    serialize_structure._payrail_direct = True  # type: ignore[attr-defined]
    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
