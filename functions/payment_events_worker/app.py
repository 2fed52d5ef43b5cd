from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from payrail.handlers import adopt_correlation_id, sqs_handler
from payrail.webhooks.apply import apply_event
from payrail.webhooks.events import PaymentEvent


class PaymentEventRecord(SqsRecordModel):
    body: Json[PaymentEvent]  # type: ignore[assignment]


# A batch whose every record failed is reported like any partial failure, not raised as a crash.
processor = BatchProcessor(event_type=EventType.SQS, model=PaymentEventRecord, raise_on_entire_batch_failure=False)


def record_handler(record: PaymentEventRecord) -> str:
    adopt_correlation_id(record.messageAttributes)
    return apply_event(record.body).value


@sqs_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
