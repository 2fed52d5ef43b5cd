"""The local runtime's DynamoDB Streams event source (devstack.streams) on a template of its own
(tests/fixtures/runtime/streams.yaml): what reaches the function, in which order and shape, and
what happens when the function fails, under the function's IAM role."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from devstack import streams
from devstack.stack import LocalStack, StackError, free_port
from devstack.streams import DynamoDBStreamPoller, StreamMapping
from devstack.template import load_yaml
from tests.support import ROOT, wait_for

FIXTURE = ROOT / "tests/fixtures/runtime/streams.yaml"
STACK = "streams-test"


def _start(path: Path, name: str) -> LocalStack:
    # moto's state is the process's: each stack has a name of its own.
    return LocalStack(
        path, api_port=free_port(), moto_port=free_port(), schedules=False, pollers=False, log=lambda _: None, stack_name=name
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # The tests drive the pollers themselves (poll_once), so every step is deterministic.
    local = _start(FIXTURE, STACK)
    local.start()
    yield local
    local.stop()


def poller_of(stack: LocalStack, function: str) -> DynamoDBStreamPoller:
    return next(p for p in stack.stream_pollers if p.function == function)


def drain(poller: DynamoDBStreamPoller) -> None:
    """Poll until the poller has nothing left to deliver (retries and give-ups included)."""
    for _ in range(100):
        if poller.poll_once() == 0:
            return
    raise AssertionError("the poller never ran dry")


def batches(stack: LocalStack, function: str, since: int) -> list[list[dict[str, Any]]]:
    """The Records of every invocation of ``function`` since ``since`` (time_ns), in order."""
    answer = stack.client("dynamodb").query(
        TableName=stack.physical("LogTable"),
        KeyConditionExpression="pk = :pk AND sk > :since",
        ExpressionAttributeValues={":pk": {"S": f"batches#{STACK}-{function}"}, ":since": {"S": f"{since:020d}"}},
    )
    return [json.loads(item["event"]["S"])["Records"] for item in answer["Items"]]


def keys(batch: list[dict[str, Any]]) -> list[str]:
    return [record["dynamodb"]["Keys"]["pk"]["S"] for record in batch]


def put(stack: LocalStack, pk: str, **attributes: str) -> None:
    item = {"pk": {"S": pk}, "sk": {"S": "x"}} | {name: {"S": value} for name, value in attributes.items()}
    stack.client("dynamodb").put_item(TableName=stack.physical("StreamTable"), Item=item)


def failure_records(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    url = stack.physical("FailuresQueue")
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


# ------------------------------------------------------------------ what arrives
def test_every_kind_of_write_arrives_in_order_in_lambdas_event_shape(stack: LocalStack) -> None:
    dynamodb, table = stack.client("dynamodb"), stack.physical("StreamTable")
    since = time.time_ns()
    # Given one of each write the product makes
    put(stack, "main#put", v="1")
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "main#put"}, "sk": {"S": "x"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "2"}},
    )
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "main#upsert"}, "sk": {"S": "x"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "new"}},
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "main#tx1"}, "sk": {"S": "x"}, "blob": {"B": b"\x00\xff"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "main#tx2"}, "sk": {"S": "x"}}}},
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "main#upsert"}, "sk": {"S": "x"}}}},
        ]
    )
    dynamodb.batch_write_item(
        RequestItems={
            table: [
                {"PutRequest": {"Item": {"pk": {"S": "main#batch"}, "sk": {"S": "x"}, "n": {"N": "7"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "main#tx2"}, "sk": {"S": "x"}}}},
            ]
        }
    )
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "main#put"}, "sk": {"S": "x"}})
    # When the event source runs
    drain(poller_of(stack, "StreamConsumerFunction"))
    # Then every change arrived once, in the order it was made, in batches of at most BatchSize 5
    got = batches(stack, "StreamConsumerFunction", since)
    assert [len(b) for b in got] == [5, 4], [(r["eventName"], keys([r])) for b in got for r in b]
    records = [record for batch in got for record in batch]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "main#put"),
        ("MODIFY", "main#put"),
        ("INSERT", "main#upsert"),
        ("INSERT", "main#tx1"),
        ("INSERT", "main#tx2"),
        ("REMOVE", "main#upsert"),
        ("INSERT", "main#batch"),
        ("REMOVE", "main#tx2"),
        ("REMOVE", "main#put"),
    ]
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    assert len(set(sequence_numbers)) == len(records)
    # And each record has Lambda's shape, images in DynamoDB JSON (binary as base64)
    stream_arn = stack.provisioner.getatt("StreamTable", "StreamArn")  # type: ignore[union-attr]
    assert stream_arn.startswith(f"arn:aws:dynamodb:us-east-1:123456789012:table/{STACK}-StreamTable/stream/")
    for record in records:
        assert set(record) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"}
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stream_arn
        assert record["awsRegion"] == "us-east-1"
        assert record["eventVersion"] == "1.1"
        change = record["dynamodb"]
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(change["ApproximateCreationDateTime"], int)
        assert abs(change["ApproximateCreationDateTime"] - time.time()) < 120
        assert isinstance(change["SizeBytes"], int)
        assert change["SizeBytes"] > 0
        assert ("NewImage" in change) == (record["eventName"] != "REMOVE")
        assert ("OldImage" in change) == (record["eventName"] != "INSERT")
    modify = records[1]["dynamodb"]
    assert modify["OldImage"]["v"] == {"S": "1"}
    assert modify["NewImage"]["v"] == {"S": "2"}
    assert modify["Keys"] == {"pk": {"S": "main#put"}, "sk": {"S": "x"}}
    assert records[3]["dynamodb"]["NewImage"]["blob"] == {"B": "AP8="}
    assert records[6]["dynamodb"]["NewImage"]["n"] == {"N": "7"}
    assert records[8]["dynamodb"]["OldImage"]["v"] == {"S": "2"}


def test_a_cancelled_transaction_and_a_write_that_changes_nothing_write_no_record(stack: LocalStack) -> None:
    dynamodb, table = stack.client("dynamodb"), stack.physical("StreamTable")
    since = time.time_ns()
    put(stack, "main#same", v="1")
    # Given a transaction whose first write succeeds and whose second fails its condition
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "main#phantom"}, "sk": {"S": "x"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "main#same"}, "sk": {"S": "x"}, "v": {"S": "1"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    # And writes that leave the item as it was
    put(stack, "main#same", v="1")
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "main#same"}, "sk": {"S": "x"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "1"}},
    )
    put(stack, "main#after")
    # When the event source runs
    drain(poller_of(stack, "StreamConsumerFunction"))
    # Then only the real changes arrived: nothing of the cancelled transaction, no empty MODIFY
    records = [r for b in batches(stack, "StreamConsumerFunction", since) for r in b]
    assert [(r["eventName"], keys([r])[0]) for r in records] == [("INSERT", "main#same"), ("INSERT", "main#after")]
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "main#phantom"}, "sk": {"S": "x"}}).get("Item") is None


def test_starting_position_latest_skips_what_was_written_before_the_mapping(stack: LocalStack) -> None:
    put(stack, "main#before-latest")
    template = poller_of(stack, "StreamConsumerFunction")
    latest = DynamoDBStreamPoller(
        stack.client("dynamodbstreams"),
        stack.client("sqs"),
        template.function,
        template.function_arn,
        dataclasses.replace(template.mapping, starting_position="LATEST"),
        stack.invoke,
        lambda _: None,
        threading.Event(),
        stack.identities["StreamConsumerFunction"],
    )
    latest.subscribe()
    since = time.time_ns()
    put(stack, "main#after-latest")
    drain(latest)
    assert [keys(b) for b in batches(stack, "StreamConsumerFunction", since)] == [["main#after-latest"]]
    drain(template)


# ------------------------------------------------------------------ failures
def test_a_partial_batch_failure_retries_from_the_failed_record_only(stack: LocalStack) -> None:
    since = time.time_ns()
    # Given four records, the third of which the function reports as failed the first time
    for name, behaviour in (("p1", ""), ("p2", ""), ("p3", "fail:1"), ("p4", "")):
        put(stack, f"main#{name}", **({"behaviour": behaviour} if behaviour else {}))
    # When the event source runs
    drain(poller_of(stack, "StreamConsumerFunction"))
    # Then the records before the failure were checkpointed; the retry starts at the failed one
    assert [keys(b) for b in batches(stack, "StreamConsumerFunction", since)] == [
        ["main#p1", "main#p2", "main#p3", "main#p4"],
        ["main#p3", "main#p4"],
    ]
    assert failure_records(stack) == []


def test_a_crash_retries_the_whole_batch(stack: LocalStack) -> None:
    since = time.time_ns()
    put(stack, "main#c1")
    put(stack, "main#c2", behaviour="crash:1")
    drain(poller_of(stack, "StreamConsumerFunction"))
    assert [keys(b) for b in batches(stack, "StreamConsumerFunction", since)] == [["main#c1", "main#c2"], ["main#c1", "main#c2"]]
    assert failure_records(stack) == []


def test_after_the_last_retry_the_failure_record_goes_to_the_destination_and_the_shard_moves_on(stack: LocalStack) -> None:
    since = time.time_ns()
    # Given a record the function always fails (MaximumRetryAttempts: 2), then a good one
    put(stack, "main#d0")
    put(stack, "main#d1", behaviour="fail")
    put(stack, "main#d2")
    drain(poller_of(stack, "StreamConsumerFunction"))
    got = batches(stack, "StreamConsumerFunction", since)
    # Then the batch from d1 on was tried three times (the first attempt and two retries)
    assert [keys(b) for b in got] == [["main#d0", "main#d1", "main#d2"], ["main#d1", "main#d2"], ["main#d1", "main#d2"]]
    # And the destination got Lambda's invocation record for the batch that was given up on
    (record,) = failure_records(stack)
    d1, d2 = got[1][0]["dynamodb"]["SequenceNumber"], got[1][1]["dynamodb"]["SequenceNumber"]
    info = record["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == d1
    assert info["endSequenceNumber"] == d2
    assert info["batchSize"] == 2
    assert info["shardId"].startswith("shardId-")
    assert info["streamArn"] == got[0][0]["eventSourceARN"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{STACK}-StreamConsumerFunction"
    assert record["version"] == "1.0"
    assert "functionError" not in record["responseContext"]  # a partial failure, not an error
    # And the shard moved on past that batch: the next record is delivered on its own
    later = time.time_ns()
    put(stack, "main#d3")
    drain(poller_of(stack, "StreamConsumerFunction"))
    assert [keys(b) for b in batches(stack, "StreamConsumerFunction", later)] == [["main#d3"]]


def test_bisecting_isolates_the_record_that_crashes(stack: LocalStack) -> None:
    since = time.time_ns()
    for index in range(1, 5):
        put(stack, f"bisect#{index}", **({"behaviour": "crash"} if index == 3 else {}))
    drain(poller_of(stack, "BisectingConsumerFunction"))
    # Then the batch was split until the crashing record was alone, retried once, and given up
    assert [keys(b) for b in batches(stack, "BisectingConsumerFunction", since)] == [
        ["bisect#1", "bisect#2", "bisect#3", "bisect#4"],
        ["bisect#1", "bisect#2"],
        ["bisect#3", "bisect#4"],
        ["bisect#3"],
        ["bisect#3"],
        ["bisect#4"],
    ]
    (record,) = failure_records(stack)
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["requestContext"]["approximateInvokeCount"] == 2


# ------------------------------------------------------------------ filters
def test_filter_criteria_drop_the_records_no_pattern_matches(stack: LocalStack) -> None:
    dynamodb, table = stack.client("dynamodb"), stack.physical("StreamTable")
    since = time.time_ns()
    put(stack, "filter#payout", kind="payout")  # INSERT, kind in the list: kept
    put(stack, "filter#other", kind="other")  # kind not in the list: dropped
    put(stack, "filter#urgent", urgent="yes")  # urgent exists: kept
    put(stack, "filter#bare")  # nothing matches: dropped
    put(stack, "elsewhere#payout", kind="payout")  # another prefix: dropped
    dynamodb.update_item(  # MODIFY to a listed kind: kept
        TableName=table,
        Key={"pk": {"S": "filter#other"}, "sk": {"S": "x"}},
        UpdateExpression="SET kind = :k",
        ExpressionAttributeValues={":k": {"S": "sync"}},
    )
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "filter#bare"}, "sk": {"S": "x"}})  # REMOVE: kept
    poller = poller_of(stack, "FilteredConsumerFunction")
    dropped = poller.dropped_by_filters
    drain(poller)
    records = [r for b in batches(stack, "FilteredConsumerFunction", since) for r in b]
    assert [(r["eventName"], keys([r])[0]) for r in records] == [
        ("INSERT", "filter#payout"),
        ("INSERT", "filter#urgent"),
        ("MODIFY", "filter#other"),
        ("REMOVE", "filter#bare"),
    ]
    assert poller.dropped_by_filters - dropped >= 3


def test_the_mapping_reads_filter_criteria_as_lambda_does() -> None:
    mapping = StreamMapping.from_properties(
        {
            "Stream": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000",
            "StartingPosition": "LATEST",
            "FilterCriteria": {"Filters": [{"Pattern": '{"dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}'}]},
        }
    )
    assert mapping.batch_size == 100
    assert mapping.max_retries == -1
    assert mapping.matches({"eventName": "INSERT", "dynamodb": {"NewImage": {"sk": {"S": "EVENT#1"}}}})
    assert not mapping.matches({"eventName": "INSERT", "dynamodb": {"NewImage": {"sk": {"S": "PAYOUT#1"}}}})
    assert not mapping.matches({"eventName": "REMOVE", "dynamodb": {"OldImage": {"sk": {"S": "EVENT#1"}}}})


# ------------------------------------------------------------------ IAM
def test_every_stream_read_is_authorised_against_the_functions_role(stack: LocalStack) -> None:
    # Given the consumer's role with an explicit deny of GetRecords on the stream
    identity = stack.identities["StreamConsumerFunction"]
    stream_arn = poller_of(stack, "StreamConsumerFunction").mapping.stream_arn
    deny = {"Statement": [{"Effect": "Deny", "Action": "dynamodb:GetRecords", "Resource": stream_arn}]}
    narrowed = dataclasses.replace(identity, policies=[*identity.policies, {"name": "deny", "document": deny, "managed": False}])
    template = poller_of(stack, "StreamConsumerFunction")
    invoked: list[Any] = []
    poller = DynamoDBStreamPoller(
        stack.client("dynamodbstreams"),
        stack.client("sqs"),
        template.function,
        template.function_arn,
        template.mapping,
        lambda *args, **_: invoked.append(args),
        lambda _: None,
        threading.Event(),
        narrowed,
    )
    put(stack, "main#denied")
    # When it polls, the read fails as on AWS and the function is never invoked
    with pytest.raises(ClientError) as denied:
        poller.poll_once()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:GetRecords" in str(denied.value)
    assert invoked == []
    drain(template)


def _variant(tmp_path: Path, change: Any) -> Path:
    """A copy of the fixture template, changed, whose code paths still point at the fixture."""
    document = load_yaml(FIXTURE)
    document["Globals"]["Function"]["CodeUri"] = str(FIXTURE.parent / "stream_consumer")
    change(document["Resources"]["StreamConsumerFunction"]["Properties"])
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump(document))  # load_yaml gave the intrinsics their long form
    return path


def test_a_role_that_cannot_read_the_stream_cannot_have_the_event_source(tmp_path: Path) -> None:
    def deny_reads(properties: dict[str, Any]) -> None:
        stream = {"Fn::GetAtt": ["StreamTable", "StreamArn"]}
        properties["Policies"].append({"Statement": [{"Effect": "Deny", "Action": "dynamodb:GetShardIterator", "Resource": stream}]})

    with pytest.raises(StackError, match=r"StreamConsumerFunction: cannot access stream .*dynamodb:GetShardIterator is denied"):
        _start(_variant(tmp_path, deny_reads), "streams-no-read").start()


def test_a_role_that_cannot_send_to_the_destination_cannot_have_it(tmp_path: Path) -> None:
    def untyped_destination(properties: dict[str, Any]) -> None:
        # Without Type, SAM grants nothing on the destination.
        del properties["Events"]["Changes"]["Properties"]["DestinationConfig"]["OnFailure"]["Type"]

    with pytest.raises(StackError, match=r"does not have permissions to call SendMessage on arn:aws:sqs:"):
        _start(_variant(tmp_path, untyped_destination), "streams-no-send").start()


# ------------------------------------------------------------------ latency and shutdown
def test_a_write_wakes_a_running_poller_at_once_and_it_stops_with_its_stack(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a running poller that would poll an idle stream only every 30 s
    monkeypatch.setattr(streams, "IDLE_POLL_SECONDS", 30.0)
    template = poller_of(stack, "StreamConsumerFunction")
    drain(template)
    stop = threading.Event()
    invoked: list[float] = []

    def timed_invoke(function: str, event: dict[str, Any]) -> Any:
        invoked.append(time.perf_counter())
        return stack.invoke(function, event)

    live = DynamoDBStreamPoller(
        stack.client("dynamodbstreams"),
        stack.client("sqs"),
        template.function,
        template.function_arn,
        dataclasses.replace(template.mapping, starting_position="LATEST"),
        timed_invoke,
        lambda _: None,
        stop,
        stack.identities["StreamConsumerFunction"],
    )
    live.subscribe()
    live.start()
    delays = []
    try:
        for index in range(6):
            since = time.time_ns()
            written = time.perf_counter()
            put(stack, f"main#live{index}")
            wait_for(lambda since=since: batches(stack, "StreamConsumerFunction", since), timeout=20, interval=0.005)
            delays.append((invoked[-1] - written) * 1000)
            time.sleep(0.3)  # the poller is idle again, waiting
    finally:
        # When the stack stops, the poller stops within a moment, though it was waiting for 30 s
        stop.set()
        live.join(timeout=1)
    assert not live.is_alive()
    # Then every write reached the function at once, not at the next 30 s poll (a few ms on a
    # quiet machine; the bound leaves room for a loaded one)
    assert len(invoked) == 6
    assert max(delays) < 5000, delays
    drain(template)


def test_an_expired_shard_iterator_is_renewed_where_the_shard_was_read_to(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack import moto_dynamodb

    poller = poller_of(stack, "StreamConsumerFunction")
    drain(poller)
    since = time.time_ns()
    put(stack, "main#before-expiry")
    drain(poller)
    # Given iterators that expire as soon as another one is handed out (DynamoDB: after 15 minutes)
    monkeypatch.setattr(moto_dynamodb, "ITERATOR_LIFETIME_SECONDS", 0.0)
    streams = stack.client("dynamodbstreams")
    shard = next(iter(poller.shards.values()))
    expired = shard.iterator
    streams.get_shard_iterator(StreamArn=poller.mapping.stream_arn, ShardId=shard.shard_id, ShardIteratorType="LATEST")
    with pytest.raises(ClientError):
        stack.client("dynamodbstreams").get_records(ShardIterator=expired)
    # When more is written and the poller reads again with its expired iterator
    put(stack, "main#after-expiry")
    drain(poller)
    # Then it took a new iterator after the last record it read: nothing lost, nothing twice
    assert [keys(b) for b in batches(stack, "StreamConsumerFunction", since)] == [["main#before-expiry"], ["main#after-expiry"]]
