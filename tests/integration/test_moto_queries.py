"""The runtime's indexed moto queries (devstack/moto_dynamodb.py) answer exactly as moto's own walk.

Random tables, random writes (puts, updates that move items between index partitions, deletes,
transactions that commit or are cancelled), and random queries of the table and of its indexes,
each paged to its end; every page must equal, field by field, what moto answers with the
adaptation switched off on the same data."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import moto_dynamodb

PARTITIONS = ["a", "b", "c"]
SORTS = ["x", "xa", "xab", "xb", "y", "ya", "z"]
INDEX_PARTITIONS = ["g1", "g2"]
INDEX_SORTS = ["m", "ma", "mb", "n", "na"]
_tables = itertools.count()


@pytest.fixture(scope="module")
def dynamodb(moto_endpoint: str) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )


def _create_table(dynamodb: Any) -> str:
    name = f"queries-{next(_tables)}-{uuid.uuid4().hex[:6]}"
    attributes = {"pk": "S", "sk": "S", "gsi1pk": "S", "gsi1sk": "S", "gsi2pk": "S", "n": "N"}
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": v} for k, v in attributes.items()],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by-number",
                "KeySchema": [{"AttributeName": "gsi2pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "hash-only",
                "KeySchema": [{"AttributeName": "gsi2pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["payload"]},
            },
        ],
    )
    return name


def _s(value: str) -> dict[str, str]:
    return {"S": value}


keys = st.fixed_dictionaries({"pk": st.sampled_from(PARTITIONS).map(_s), "sk": st.sampled_from(SORTS).map(_s)})
items = st.builds(
    lambda key, gsi1, gsi2, number, payload: {
        **key,
        **({"gsi1pk": _s(gsi1[0]), "gsi1sk": _s(gsi1[1])} if gsi1 else {}),
        **({"gsi2pk": _s(gsi2)} if gsi2 else {}),
        **({"n": {"N": str(number)}} if number is not None else {}),
        "payload": {"S": "p" * payload},
    },
    keys,
    st.none() | st.tuples(st.sampled_from(INDEX_PARTITIONS), st.sampled_from(INDEX_SORTS)),
    st.none() | st.sampled_from(INDEX_PARTITIONS),
    st.none() | st.integers(-3, 3),
    st.integers(0, 20),
)
writes = st.one_of(
    st.tuples(st.just("put"), items),
    st.tuples(st.just("move"), keys, st.sampled_from(INDEX_PARTITIONS), st.sampled_from(INDEX_SORTS)),
    st.tuples(st.just("unindex"), keys),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("transaction"), items, keys, st.booleans()),
)


def _write(dynamodb: Any, table: str, write: tuple[Any, ...]) -> None:
    kind = write[0]
    if kind == "put":
        dynamodb.put_item(TableName=table, Item=write[1])
    elif kind == "move":  # an update that moves the item to another partition and place of gsi1
        dynamodb.update_item(
            TableName=table,
            Key=write[1],
            UpdateExpression="SET gsi1pk = :p, gsi1sk = :s",
            ExpressionAttributeValues={":p": _s(write[2]), ":s": _s(write[3])},
        )
    elif kind == "unindex":
        dynamodb.update_item(TableName=table, Key=write[1], UpdateExpression="REMOVE gsi1pk, gsi2pk")
    elif kind == "delete":
        dynamodb.delete_item(TableName=table, Key=write[1])
    else:  # a put and a check of another key, cancelled when the check fails (moto restores the table)
        _, item, checked, must_exist = write
        if (item["pk"], item["sk"]) == (checked["pk"], checked["sk"]):
            return
        condition = "attribute_exists(pk)" if must_exist else "attribute_not_exists(pk)"
        code = None
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": item}},
                    {"ConditionCheck": {"TableName": table, "Key": checked, "ConditionExpression": condition}},
                ]
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
        assert code in (None, "TransactionCanceledException")


def _conditions(sorts: list[str], prefixes: list[str]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """A key condition on the range attribute (written ``sk``), with its values."""
    value = st.sampled_from(sorts)
    return st.one_of(
        st.just(("pk = :p", {})),
        st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), value).map(lambda c: (f"pk = :p AND sk {c[0]} :a", {":a": _s(c[1])})),
        st.tuples(value, value).map(lambda v: ("pk = :p AND sk BETWEEN :a AND :b", {":a": _s(min(v)), ":b": _s(max(v))})),
        st.sampled_from(prefixes).map(lambda v: ("pk = :p AND begins_with(sk, :a)", {":a": _s(v)})),
    )


def _numbers() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    value = st.integers(-4, 4)
    return st.one_of(
        st.just(("pk = :p", {})),
        st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), value).map(
            lambda c: (f"pk = :p AND sk {c[0]} :a", {":a": {"N": str(c[1])}})
        ),
        st.tuples(value, value).map(lambda v: ("pk = :p AND sk BETWEEN :a AND :b", {":a": {"N": str(min(v))}, ":b": {"N": str(max(v))}})),
    )


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    index = draw(st.sampled_from([None, "gsi1", "by-number", "hash-only"]))
    hash_name, range_name, partitions = {
        None: ("pk", "sk", PARTITIONS),
        "gsi1": ("gsi1pk", "gsi1sk", INDEX_PARTITIONS),
        "by-number": ("gsi2pk", "n", INDEX_PARTITIONS),
        "hash-only": ("gsi2pk", None, INDEX_PARTITIONS),
    }[index]
    if index is None:
        expression, values = draw(_conditions(SORTS, ["x", "xa", "xab", "y", "q", "z"]))
    elif index == "gsi1":
        expression, values = draw(_conditions(INDEX_SORTS, ["m", "ma", "n", "q"]))
    elif index == "by-number":
        expression, values = draw(_numbers())
    else:
        expression, values = "pk = :p", {}
    names = {"#h": hash_name, **({"#r": range_name} if range_name and "sk" in expression else {})}
    request: dict[str, Any] = {
        "KeyConditionExpression": expression.replace("pk", "#h").replace("sk", "#r"),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":p": _s(draw(st.sampled_from(partitions))), **values},
        "ScanIndexForward": draw(st.booleans()),
    }
    if index:
        request["IndexName"] = index
    if draw(st.booleans()):
        request["Limit"] = draw(st.integers(1, 4))
    if draw(st.integers(0, 3)) == 0:
        request["FilterExpression"] = "size(payload) > :f"
        request["ExpressionAttributeValues"][":f"] = {"N": str(draw(st.integers(0, 15)))}
    if draw(st.integers(0, 3)) == 0 and index in (None, "gsi1"):
        request["ProjectionExpression"] = "#h, payload"
    return request


def _answer(dynamodb: Any, table: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = dict(dynamodb.query(TableName=table, **request))
    except ClientError as error:
        return {"error": error.response["Error"]}
    answer.pop("ResponseMetadata", None)
    return answer


def _pages(dynamodb: Any, table: str, request: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each page adapted and unadapted, following the adapted answer's LastEvaluatedKey."""
    for _ in range(40):
        adapted = _answer(dynamodb, table, request)
        with moto_dynamodb.unadapted_queries():
            walked = _answer(dynamodb, table, request)
        yield adapted, walked
        if "LastEvaluatedKey" not in adapted:
            return
        request = {**request, "ExclusiveStartKey": adapted["LastEvaluatedKey"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    rounds=st.lists(st.tuples(st.lists(writes, max_size=12), st.lists(queries(), min_size=1, max_size=3)), min_size=1, max_size=4),
    start_keys=st.lists(st.tuples(keys, st.sampled_from(INDEX_PARTITIONS), st.sampled_from(INDEX_SORTS)), max_size=2),
)
def test_indexed_queries_answer_as_moto_walks(dynamodb: Any, rounds: list[Any], start_keys: list[Any]) -> None:
    # Given a table with indexes that random writes fill, move around and empty, round by round
    table = _create_table(dynamodb)
    try:
        for round_writes, round_queries in rounds:
            for write in round_writes:
                _write(dynamodb, table, write)
            for request in round_queries:
                # When each query is paged to its end, adapted and unadapted
                for adapted, walked in _pages(dynamodb, table, request):
                    # Then every page is moto's own, field by field
                    assert adapted == walked, request
                # And so is a page from a start key no item has
                for key, partition, sort in start_keys:
                    start = {**key, "gsi1pk": _s(partition), "gsi1sk": _s(sort), "gsi2pk": _s(partition), "n": {"N": "0"}}
                    index_keys = {
                        None: ("pk", "sk"),
                        "gsi1": ("pk", "sk", "gsi1pk", "gsi1sk"),
                        "by-number": ("pk", "sk", "gsi2pk", "n"),
                        "hash-only": ("pk", "sk", "gsi2pk"),
                    }[request.get("IndexName")]
                    paged = {**request, "ExclusiveStartKey": {name: start[name] for name in index_keys}}
                    adapted = _answer(dynamodb, table, paged)
                    with moto_dynamodb.unadapted_queries():
                        assert adapted == _answer(dynamodb, table, paged), paged
    finally:
        dynamodb.delete_table(TableName=table)


def test_a_page_hands_moto_only_the_items_it_can_come_from(dynamodb: Any) -> None:
    # Given a partition of 2,000 items, in a table of 4,000
    table = _create_table(dynamodb)
    try:
        for start in range(0, 4000, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    table: [
                        {
                            "PutRequest": {
                                "Item": {
                                    "pk": _s("big" if i % 2 else "other"),
                                    "sk": _s(f"s{i:05d}"),
                                    "gsi1pk": _s("g"),
                                    "gsi1sk": _s(f"{i:05d}"),
                                }
                            }
                        }
                        for i in range(start, start + 25)
                    ]
                }
            )
        request = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": _s("big")}, "Limit": 10}
        dynamodb.query(TableName=table, **request)  # the first query of a table builds its index
        dynamodb.query(
            TableName=table,
            IndexName="gsi1",
            **{**request, "KeyConditionExpression": "gsi1pk = :p", "ExpressionAttributeValues": {":p": _s("g")}},
        )
        # When pages of 10 are asked for: of the table, past a start key, newest first, and of the index
        before = moto_dynamodb.handed_to_moto
        first = dynamodb.query(TableName=table, **request)
        dynamodb.query(TableName=table, **request, ExclusiveStartKey=first["LastEvaluatedKey"])
        dynamodb.query(TableName=table, **request, ScanIndexForward=False)
        dynamodb.query(
            TableName=table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p AND gsi1sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":p": _s("g"), ":a": _s("01000"), ":b": _s("03000")},
            Limit=10,
        )
        # Then moto saw the 10 items of each page and the one after it, not the partition
        assert moto_dynamodb.handed_to_moto - before == 4 * 11
        assert [item["sk"]["S"] for item in first["Items"]] == [f"s{i:05d}" for i in range(1, 21, 2)]
    finally:
        dynamodb.delete_table(TableName=table)
