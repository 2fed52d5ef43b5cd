"""The DynamoDB stream events the local runtime hands a function are the ones Powertools reads,
and Powertools' partial batch answers are read back as Lambda reads them. No AWS, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from devstack.streams import DynamoDBStreamPoller, failure_record, lambda_record

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000"


def raw(sequence: str, pk: str, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record as boto3's GetRecords returns it (datetime and bytes already parsed)."""
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        "Keys": {"pk": {"S": pk}, "sk": {"S": "x"}},
        "NewImage": {"pk": {"S": pk}, "sk": {"S": "x"}, "amount": {"N": "12550"}, "blob": {"B": b"\x01\x02"}},
        "SequenceNumber": sequence,
        "SizeBytes": 42,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        change["OldImage"] = old
    return {"eventID": f"id-{sequence}", "eventName": "MODIFY" if old else "INSERT", "awsRegion": "us-east-1", "dynamodb": change}


def test_a_record_has_lambdas_shape_and_powertools_parses_it() -> None:
    record = lambda_record(raw("101", "EVENT#1", old={"pk": {"S": "EVENT#1"}, "sk": {"S": "x"}}), STREAM)
    assert record["eventSourceARN"] == STREAM
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1796644800
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AQI="}
    parsed = DynamoDBStreamModel.model_validate({"Records": [record]}).Records[0]
    assert parsed.eventName == "MODIFY"
    assert parsed.dynamodb.NewImage is not None
    assert parsed.dynamodb.NewImage["amount"] == Decimal("12550")
    assert parsed.dynamodb.SequenceNumber == "101"
    data = DynamoDBRecord(record)
    assert data.dynamodb is not None
    assert data.dynamodb.keys == {"pk": "EVENT#1", "sk": "x"}
    assert data.dynamodb.old_image == {"pk": "EVENT#1", "sk": "x"}


def test_powertools_partial_failures_are_read_as_the_retry_point() -> None:
    batch = [lambda_record(raw(sequence, f"EVENT#{sequence}"), STREAM) for sequence in ("201", "202", "203")]

    def handler(record: DynamoDBRecord) -> None:
        assert record.dynamodb is not None
        if record.dynamodb.sequence_number in ("202", "203"):
            raise ValueError("not now")

    answer = process_partial_response(
        event={"Records": batch}, record_handler=handler, processor=BatchProcessor(event_type=EventType.DynamoDBStreams), context=None
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "202"}, {"itemIdentifier": "203"}]}
    # The retry starts at the lowest failed sequence number; an unknown identifier fails it all
    assert DynamoDBStreamPoller._first_failure(batch, answer["batchItemFailures"]) == 1
    assert DynamoDBStreamPoller._first_failure(batch, [{"itemIdentifier": "999"}]) == 0
    assert DynamoDBStreamPoller._first_failure(batch, [{"itemIdentifier": None}]) == 0


def test_the_failure_record_describes_the_batch_given_up_on() -> None:
    batch = [lambda_record(raw(sequence, f"EVENT#{sequence}"), STREAM) for sequence in ("301", "302")]
    record = failure_record("arn:aws:lambda:us-east-1:123456789012:function:F", STREAM, "shardId-1", batch, 4, "boom")
    assert record["requestContext"]["approximateInvokeCount"] == 4
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["DDBStreamBatchInfo"] == {
        "shardId": "shardId-1",
        "startSequenceNumber": "301",
        "endSequenceNumber": "302",
        "approximateArrivalOfFirstRecord": "2026-12-07T12:00:00Z",
        "approximateArrivalOfLastRecord": "2026-12-07T12:00:00Z",
        "batchSize": 2,
        "streamArn": STREAM,
    }
