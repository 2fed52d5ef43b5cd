from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from payrail.handlers import adopt_correlation_id, sqs_handler
from payrail.sandbox.webhooks import send_event
from pydantic import BaseModel


class QueuedEvent(BaseModel):
    event_id: str
    advance: bool = True


class QueuedEventRecord(SqsRecordModel):
    body: Json[QueuedEvent]  # type: ignore[assignment]


processor = BatchProcessor(event_type=EventType.SQS, model=QueuedEventRecord, raise_on_entire_batch_failure=False)


def record_handler(record: QueuedEventRecord, lambda_context) -> str:
    adopt_correlation_id(record.messageAttributes)
    return send_event(record.body.event_id, record.body.advance, lambda_context.get_remaining_time_in_millis() / 1000)


@sqs_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
