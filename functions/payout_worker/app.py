from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from payrail.observability import logger, metrics, tracer
from payrail.payouts.worker import PayoutRecord, handle_record

# A batch whose every record failed is reported as such (not raised), so each failed message
# keeps the backoff its record handler gave it through the visibility timeout.
processor = BatchProcessor(event_type=EventType.SQS, model=PayoutRecord, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
