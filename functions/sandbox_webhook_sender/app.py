from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from payrail.observability import (
    CORRELATION_ATTRIBUTE,
    logger,
    metrics,
    new_correlation_id,
    sane_correlation_id,
    set_correlation_id,
    tracer,
)
from payrail.sandbox.webhooks import send_event
from pydantic import BaseModel


class QueuedEvent(BaseModel):
    event_id: str
    advance: bool = True


class QueuedEventRecord(SqsRecordModel):
    body: Json[QueuedEvent]  # type: ignore[assignment]


processor = BatchProcessor(event_type=EventType.SQS, model=QueuedEventRecord, raise_on_entire_batch_failure=False)


def record_handler(record: QueuedEventRecord) -> str:
    attribute = record.messageAttributes.get(CORRELATION_ATTRIBUTE)
    set_correlation_id(sane_correlation_id(attribute.stringValue if attribute else None) or new_correlation_id())
    return send_event(record.body.event_id, record.body.advance)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
