from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from payrail.handlers import sqs_handler
from payrail.payouts.worker import PayoutRecord, handle_record

# A batch whose every record failed is reported as such (not raised), so each failed message
# keeps the backoff its record handler gave it through the visibility timeout.
processor = BatchProcessor(event_type=EventType.SQS, model=PayoutRecord, raise_on_entire_batch_failure=False)


def record_handler(record: PayoutRecord, lambda_context) -> str:
    return handle_record(record, lambda_context.get_remaining_time_in_millis() / 1000)


@sqs_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
