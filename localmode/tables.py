"""DynamoDB's tables, locally, at about DynamoDB's cost: a Query on an index reads the partition
it names from where it resumes, and an answer of items is written as the JSON it already is.

moto answers each index Query by sorting every item of the table and walking them from the
first, so one page of a table of 100,000 items costs a second and a listing that scales on
DynamoDB cannot be told from one that does not. Here each index of a table that was queried
is kept as sorted partitions, brought up to date by every write of an item, and a Query that
selects one partition by equality hands moto only the items its page can hold (one more, to
tell whether there are more); moto applies the start key, limit, filter and projection to
those as it would to all. What is answered is unchanged; only how much is read.

moto writes each answer by walking the service's model for every attribute of every item
(about 2.5 ms an item: a page of 100 jobs took 250 ms of the API's CPU); the answers of item
reads and writes are plain JSON already, and are written as such: the same document. Before
that, moto turns its items into plain values with a function that asks each value, down to
every string, what it might be (half the cost of a 100-item page); its items are only ever
strings, numbers and the like inside lists and maps, and are turned by type here. And it
searched every JSON answer for an XML request id: DynamoDB answers JSON only.

The partitions are kept under `atomic_requests()`'s lock, which every request holds whole.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import GlobalSecondaryIndex, Table
from moto.dynamodb.models.utilities import dynamo_to_dict
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.utilities.aws_headers import gen_amzn_requestid_long
from sortedcontainers import SortedDict

SortKey = tuple[Any, ...]
ItemKey = tuple[Any, ...]

# Backend calls that change items of a known key, and where they take the table and the key.
_KEYED_WRITES = {"put_item": "item_attrs", "update_item": "key", "delete_item": "key"}
# Backend calls that may change any item or a table's shape: every index is read anew after.
_BULK_CHANGES = ("create_table", "delete_table", "update_table", "update_table_global_indexes",
                 "transact_write_items", "execute_statement", "execute_transaction",
                 "batch_execute_statement", "restore_table_from_backup",
                 "restore_table_to_point_in_time", "import_table")


def _item_key(hash_key: DynamoType, range_key: DynamoType | None) -> ItemKey:
    return hash_key.cast_value, range_key.cast_value if range_key is not None else None


class _TableIndexes:
    """One table's global secondary indexes, as sorted partitions."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.indexes = {index.name: index for index in table.global_indexes or []}
        # index name -> (its partition key attributes, the attributes its partitions sort by)
        self.keys = {name: (self._attrs(index, "HASH"), self.sort_attrs(index))
                     for name, index in self.indexes.items()}
        # index name -> partition key -> sort key -> item
        self.partitions: dict[str, dict[ItemKey, SortedDict]] = {
            name: {} for name in self.indexes}
        # item key -> where the item was filed: (index name, partition key, sort key)
        self.filed: dict[ItemKey, list[tuple[str, ItemKey, SortKey]]] = {}
        for item in table.all_items():
            self.file(item)

    def _attrs(self, index: GlobalSecondaryIndex, kind: str) -> list[str]:
        return [key["AttributeName"] for key in index.schema if key["KeyType"] == kind]

    def sort_attrs(self, index: GlobalSecondaryIndex) -> list[str]:
        """The order moto gives an index's partition: its range keys, then the table's key."""
        table_keys = [self.table.hash_key_attr, self.table.range_key_attr]
        return [*self._attrs(index, "RANGE"), *(a for a in table_keys if a)]

    def file(self, item: Item) -> None:
        places = []
        for name, (partition_attrs, sort_attrs) in self.keys.items():
            if not all(item.attrs.get(a) for a in (*partition_attrs, *sort_attrs)):
                continue  # DynamoDB leaves an item out of an index it lacks a key of
            partition = tuple(item.attrs[a].cast_value for a in partition_attrs)
            sort_key = tuple(item.attrs[a].cast_value for a in sort_attrs)
            self.partitions[name].setdefault(partition, SortedDict())[sort_key] = item
            places.append((name, partition, sort_key))
        self.filed[_item_key(item.hash_key, item.range_key)] = places

    def refile(self, key: ItemKey, item: Item | None) -> None:
        """The item under `key` changed (None: it is gone): file it where it now belongs."""
        for name, partition, sort_key in self.filed.pop(key, []):
            items = self.partitions[name].get(partition)
            if items is not None:
                items.pop(sort_key, None)
                if not items:
                    del self.partitions[name][partition]
        if item is not None:
            self.file(item)

    def window(self, index_name: str, partition: ItemKey, limit: int | None,
               start: dict[str, Any] | None, forward: bool) -> list[Item] | None:
        """The items of `partition` a page resuming after `start` may read, in index order;
        None when the start key does not name a place in this index."""
        items = self.partitions[index_name].get(partition, SortedDict())
        if start is None:
            at = 0 if forward else len(items)
        else:
            try:
                start_key = tuple(DynamoType(start[a]).cast_value for a in self.keys[index_name][1])
            except KeyError:
                return None
            at = items.bisect_right(start_key) if forward else items.bisect_left(start_key)
        values = items.values()
        if limit is None:
            return list(values[at:] if forward else values[:at])
        # One more than the page, so that moto can tell whether the partition goes on.
        return list(values[at:at + limit + 1] if forward else values[max(0, at - limit - 1):at])

    def still_filed(self, items: list[Item]) -> bool:
        """Whether each of `items` is still the table's own item under its key (one that was
        removed or replaced without a write seen here is not)."""
        return all(self.table.get_item(item.hash_key, item.range_key) is item for item in items)


class _Indexes:
    """Every queried table's indexes, and the moto calls that keep them and read them."""

    def __init__(self) -> None:
        self.tables: dict[int, _TableIndexes] = {}

    def of(self, table: Table) -> _TableIndexes:
        indexes = self.tables.get(id(table))
        if indexes is None or indexes.table is not table:
            indexes = self.tables[id(table)] = _TableIndexes(table)
        return indexes

    def forget(self) -> None:
        self.tables.clear()

    def after_write(self, backend: DynamoDBBackend, table_name: str, key: dict[str, Any]) -> None:
        table = backend.tables.get(table_name)
        indexes = self.tables.get(id(table)) if table is not None else None
        if table is None or indexes is None or indexes.table is not table:
            return  # never queried by index: nothing kept to bring up to date
        try:
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except KeyError:
            self.tables.pop(id(table), None)  # a key we cannot read: read the table anew
            return
        indexes.refile(_item_key(hash_key, range_key), table.get_item(hash_key, range_key))

    def query(self, original: Callable[..., Any], table: Table, *args: Any, **kwargs: Any) -> Any:
        plan = self._plan(table, *args, **kwargs)
        if plan is None:
            return original(table, *args, **kwargs)
        indexes = self.of(table)
        window = indexes.window(*plan)
        if window is not None and not indexes.still_filed(window):
            # Something changed an item without a write we saw: read the table anew.
            self.tables.pop(id(table), None)
            window = self.of(table).window(*plan)
        if window is None:
            return original(table, *args, **kwargs)
        table.all_items = lambda: list(window)  # type: ignore[method-assign]
        try:
            return original(table, *args, **kwargs)
        finally:
            del table.all_items

    @staticmethod
    def _plan(table: Table, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
              exclusive_start_key: Any, scan_index_forward: Any, projection: Any,
              index_name: str | None = None, consistent_read: bool = False,
              filter_expression: Any = None, hash_key_conditions: Any = None,
              range_key_conditions: Any = None, **filter_kwargs: Any
              ) -> tuple[str, ItemKey, int | None, dict[str, Any] | None, bool] | None:
        """What a Query reads, when it is one this module answers: one partition of a global
        secondary index chosen by equality, no condition on the sort key."""
        index = next((i for i in table.global_indexes or [] if i.name == index_name), None)
        if index is None or range_comparison or range_key_conditions or filter_kwargs:
            return None
        partition_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        conditions = dict(hash_key_conditions or [])
        if set(conditions) != set(partition_attrs):
            return None
        partition = tuple(conditions[a].cast_value for a in partition_attrs)
        return (index.name, partition, limit, exclusive_start_key or None,
                scan_index_forward is not False)


@contextmanager
def indexed_queries() -> Iterator[None]:
    """Index Queries read their partition only, while inside; call within atomic_requests()."""
    indexes = _Indexes()
    lock = threading.RLock()
    with ExitStack() as stack:
        original_query = Table.query

        def query(self: Table, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return indexes.query(original_query, self, *args, **kwargs)

        Table.query = query  # type: ignore[method-assign]
        stack.callback(setattr, Table, "query", original_query)
        for name, key_argument in _KEYED_WRITES.items():
            stack.enter_context(_after(name, key_argument, indexes, lock))
        for name in _BULK_CHANGES:
            stack.enter_context(_after(name, None, indexes, lock))
        yield


@contextmanager
def _after(name: str, key_argument: str | None, indexes: _Indexes,
           lock: threading.RLock) -> Iterator[None]:
    """DynamoDBBackend.`name`, followed by bringing the indexes up to date, whether it wrote
    or refused (a refused write leaves the item as it was, which refiling keeps)."""
    original = getattr(DynamoDBBackend, name)

    def call(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            try:
                return original(self, *args, **kwargs)
            finally:
                if key_argument is None:
                    indexes.forget()
                else:
                    table_name = kwargs.get("table_name", args[0] if args else None)
                    key = kwargs.get(key_argument, args[1] if len(args) > 1 else None)
                    if isinstance(table_name, str) and isinstance(key, dict):
                        indexes.after_write(self, table_name, key)

    setattr(DynamoDBBackend, name, call)
    try:
        yield
    finally:
        setattr(DynamoDBBackend, name, original)


# Answers that hold items and counts only (no timestamps, no shapes to look up).
_PLAIN_ANSWERS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem",
                            "DeleteItem", "BatchWriteItem"})


def _bytes_as_base64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} in a DynamoDB answer")


_SCALARS = frozenset({"S", "N", "BOOL", "NULL"})


def plain_values(value: Any) -> Any:
    """What moto's dynamo_to_dict makes of `value`, by type: attribute values, and the dicts
    and lists holding them, directly; anything else by dynamo_to_dict itself."""
    kind = type(value)
    if kind is DynamoType:
        attribute, inner = value.type, value.value
        if attribute in _SCALARS:
            return {attribute: inner}
        if attribute == "M":
            return {"M": {name: plain_values(nested) for name, nested in inner.items()}}
        if attribute == "L":
            return {"L": [plain_values(nested) for nested in inner]}
        return dynamo_to_dict(value)  # sets and binary
    if kind is dict or (isinstance(value, dict) and not hasattr(value, "to_json")):
        return {name: plain_values(nested) for name, nested in value.items()}
    if kind is list:
        return [plain_values(nested) for nested in value]
    if kind is str or kind is int or kind is bool or value is None:
        return value
    return dynamo_to_dict(value)


def _plain_result(self: DynamoResult, result: object) -> None:
    ActionResult.__init__(self, plain_values(result))


def _json_enriched(headers: dict[str, Any], body: Any) -> tuple[dict[str, Any], Any]:
    """moto's _enrich_response, less its search of the body for an XML <RequestId>."""
    if "status" in headers:
        headers["status"] = str(headers["status"])
    gen_amzn_requestid_long(headers)
    return headers, body


@contextmanager
def plain_answers() -> Iterator[None]:
    """Item answers turned and written by type while inside; what moto would write, sooner."""
    original = DynamoHandler.serialized
    original_result = DynamoResult.__init__
    DynamoResult.__init__ = _plain_result  # type: ignore[method-assign]
    DynamoHandler._enrich_response = staticmethod(_json_enriched)  # type: ignore[method-assign]

    def serialized(self: DynamoHandler, action_result: ActionResult) -> Any:
        result = action_result.result
        if isinstance(result, dict) and self._get_action() in _PLAIN_ANSWERS:
            headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
            return 200, headers, json.dumps(result, default=_bytes_as_base64)
        return original(self, action_result)

    DynamoHandler.serialized = serialized  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        DynamoHandler.serialized = original  # type: ignore[method-assign]
        DynamoResult.__init__ = original_result  # type: ignore[method-assign]
        del DynamoHandler._enrich_response
