"""The runtime's direct attribute values (devstack/moto_dynamodb.py) answer exactly as moto's serializer.

Random items, nested maps and lists and every scalar and set type among them, are written through
moto's server and read back by GetItem, Query, BatchGetItem and a stream's GetRecords; each answer
must equal, field by field, what moto's own serializer answers for the same call
(``moto_serializer()``). The adaptation's counter must move on the first read and stay still on
moto's, so the comparison is never one path against itself. A second test hands both serializers
values boto3 would never send (empty map keys, numbers stored as ints, unknown members): moto's
answer stands for those too.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.responses import XFormedAttributePicker
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model

from devstack import moto_dynamodb
from devstack.resources import local_client

NAMES = st.text(alphabet="abcxyz_-.#", min_size=1, max_size=6)
STRINGS = st.text(max_size=12)
NUMBERS = st.integers(-(10**12), 10**12).map(str) | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)
BINARIES = st.binary(max_size=16)
SCALARS = st.one_of(
    STRINGS.map(lambda v: {"S": v}),
    NUMBERS.map(lambda v: {"N": v}),
    BINARIES.map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}),
    st.just({"NULL": True}),
    st.sets(STRINGS, min_size=1, max_size=4).map(lambda v: {"SS": sorted(v)}),
    st.sets(st.integers(-1000, 1000).map(str), min_size=1, max_size=4).map(lambda v: {"NS": sorted(v)}),
    st.sets(BINARIES, min_size=1, max_size=3).map(lambda v: {"BS": sorted(v)}),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.dictionaries(NAMES, inner, max_size=4).map(lambda v: {"M": v}), st.lists(inner, max_size=4).map(lambda v: {"L": v})
    ),
    max_leaves=12,
)
ITEMS = st.dictionaries(NAMES.filter(lambda n: n not in ("pk", "sk")), VALUES, max_size=6)


@pytest.fixture(scope="module")
def dynamodb(moto_endpoint: str) -> Any:
    return local_client("dynamodb", moto_endpoint)


@pytest.fixture(scope="module")
def streams(moto_endpoint: str) -> Any:
    return local_client("dynamodbstreams", moto_endpoint)


@pytest.fixture(scope="module")
def table(dynamodb: Any) -> tuple[str, str]:
    name = f"serializer-{uuid.uuid4().hex[:8]}"
    answer = dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, answer["TableDescription"]["LatestStreamArn"]


def _both(call: Any, **arguments: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The call's answer through the adaptation and through moto's serializer (metadata removed)."""
    before = moto_dynamodb.written_directly
    adapted = call(**arguments)
    assert moto_dynamodb.written_directly > before, "the adaptation wrote no value of this answer"
    with moto_dynamodb.moto_serializer():
        before = moto_dynamodb.written_directly
        own = call(**arguments)
        assert moto_dynamodb.written_directly == before, "the adaptation wrote values while switched off"
    for answer in (adapted, own):
        answer.pop("ResponseMetadata", None)
    return adapted, own


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(ITEMS, min_size=1, max_size=5))
def test_items_read_back_as_moto_answers_them(dynamodb: Any, streams: Any, table: tuple[str, str], items: list[dict[str, Any]]) -> None:
    name, stream_arn = table
    partition = uuid.uuid4().hex
    keys = []
    for index, attributes in enumerate(items):
        key = {"pk": {"S": partition}, "sk": {"S": f"{index:03d}"}}
        dynamodb.put_item(TableName=name, Item={**attributes, **key})
        keys.append(key)

    adapted, own = _both(dynamodb.get_item, TableName=name, Key=keys[0])
    assert adapted == own
    assert adapted["Item"] == {**items[0], **keys[0]}  # and both are what was written

    adapted, own = _both(
        dynamodb.query, TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": partition}}
    )
    assert adapted == own
    assert adapted["Count"] == len(items)

    adapted, own = _both(dynamodb.batch_get_item, RequestItems={name: {"Keys": keys}})
    assert adapted == own

    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def records() -> dict[str, Any]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        answer: dict[str, Any] = streams.get_records(ShardIterator=iterator, Limit=1000)
        answer.pop("NextShardIterator", None)  # a new one on every read
        return answer

    adapted, own = _both(records)
    assert adapted == own
    assert adapted["Records"]


def _serialize(value: dict[str, Any]) -> Any:
    model = get_service_model("dynamodb")  # moto's model, as its server uses
    operation = model.operation_model("GetItem")
    serializer = get_serializer_class("dynamodb", model.protocol)(operation_model=operation, value_picker=XFormedAttributePicker())
    return json.loads(serializer.serialize({"Item": {"attribute": value}})["body"])


@pytest.mark.parametrize(
    "value",
    [
        {"M": {"": {"S": "empty name"}, "x": {"N": "1"}}},  # moto's serializer writes an empty name's members into the map
        {"N": 5},  # a number stored as an int
        {"S": "x", "UNKNOWN": {"S": "y"}},  # no member of AttributeValue
        {"L": [{"S": "a"}, "bare"]},  # a list member not in wire form
        {"SS": ["a", 1]},
        {"BOOL": "true"},
        {"S": None, "N": "3"},  # a member that is None is left out
    ],
)
def test_values_not_in_wire_form_are_answered_by_moto(value: dict[str, Any]) -> None:
    adapted = _serialize(value)
    with moto_dynamodb.moto_serializer():
        assert adapted == _serialize(value)
