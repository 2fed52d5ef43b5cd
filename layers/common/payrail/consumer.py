"""The one shape of every SQS consumer: Powertools' ``BatchProcessor`` with a pydantic model of
the message body, a record handler that receives the parsed body, and a partial batch response.

Around each record :class:`SqsConsumer` adopts the correlation id the message carries, gives the
handler a :class:`Delivery` (how many times SQS has delivered the message, and the time the
invocation has left), and turns the outcome into SQS terms:

* a return value: the record succeeded (SQS deletes it);
* :class:`~payrail.errors.RetryLater` ``(seconds)``: the record fails and its message becomes
  visible again after ``seconds`` (a visibility change), instead of after the queue's whole
  visibility timeout;
* :class:`~payrail.errors.Postpone` ``(seconds, body)``: the work waits on something other than
  itself: ``body`` is sent again delayed by ``seconds`` and the record succeeds, so the wait spends
  none of the message's receives towards the dead-letter queue;
* any other error: the record fails and SQS delivers it again after the visibility timeout; after
  the queue's ``maxReceiveCount`` it goes to the dead-letter queue. A body that does not match the
  model fails the same way (a poison message ends in the DLQ, where it alarms).

Use cases below a consumer take plain arguments (a payout id, a deadline) and know nothing of SQS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from pydantic import BaseModel, create_model

from payrail import queues
from payrail.clock import Deadline
from payrail.errors import PayrailError, Postpone, RetryLater
from payrail.observability import (
    CORRELATION_ATTRIBUTE,
    logger,
    metrics,
    new_correlation_id,
    sane_correlation_id,
    set_correlation_id,
    tracer,
)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Delivery:
    """What a record handler may know of the message it handles."""

    attempt: int  # SQS's ApproximateReceiveCount: 1 on the first delivery
    deadline: Deadline  # the invocation's remaining time
    message_id: str


def adopt_correlation_id(message_attributes: Any) -> str:
    """Continue the correlation id a message carries in its ``correlation_id`` attribute, or start one."""
    attribute = (message_attributes or {}).get(CORRELATION_ATTRIBUTE)
    value = getattr(attribute, "stringValue", None) if attribute is not None else None
    correlation = sane_correlation_id(value) or new_correlation_id()
    set_correlation_id(correlation)
    return correlation


class SqsConsumer[M: BaseModel]:
    """``SqsConsumer(PayoutMessage, handle)``; the function's handler returns ``consumer(event, context, queue_url)``
    (``queue_url`` is needed only by a consumer whose handler raises RetryLater)."""

    def __init__(self, model: type[M], handle: Callable[[M, Delivery], Any]) -> None:
        body: Any = Json[model]  # type: ignore[misc,valid-type]  # a model chosen at run time
        self.record_model: type[SqsRecordModel] = create_model(f"{model.__name__}Record", __base__=SqsRecordModel, body=(body, ...))
        self.handle = handle

    def __call__(self, event: dict[str, Any], context: Any, queue_url: str | None = None) -> dict[str, Any]:
        def record_handler(record: SqsRecordModel, lambda_context: Any) -> Any:
            return self._one(record, lambda_context, queue_url)

        # A processor per invocation: it collects the batch's outcomes, so one shared by concurrent
        # invocations in one process (tests, the in-process benchmark) would mix their answers.
        # A batch whose every record failed is reported like any partial failure, not raised as a
        # crash, so each failed message keeps the visibility its handler gave it. No logger is
        # given to the processor: failures are logged here, once, at the level they deserve.
        processor = BatchProcessor(event_type=EventType.SQS, model=self.record_model, raise_on_entire_batch_failure=False)
        return process_partial_response(  # type: ignore[return-value]
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    def _one(self, record: SqsRecordModel, context: Any, queue_url: str | None) -> Any:
        adopt_correlation_id(record.messageAttributes)
        delivery = Delivery(
            attempt=int(record.attributes.ApproximateReceiveCount or 1),
            deadline=Deadline(context.get_remaining_time_in_millis() / 1000),
            message_id=record.messageId,
        )
        try:
            return self.handle(record.body, delivery)  # type: ignore[arg-type]
        except Postpone as postponed:
            if queue_url is None:
                raise
            # The new message first: if the send fails the record fails and comes back as usual.
            queues.send(queue_url, postponed.body, delay_seconds=postponed.seconds)
            logger.info("record postponed", extra={"reason": postponed.detail, "retry_in_seconds": postponed.seconds})
            return "postponed"
        except RetryLater as later:
            if queue_url:
                queues.change_visibility(queue_url, record.receiptHandle, later.seconds)
            log = logger.info if later.quiet else logger.warning
            log("record will be retried", extra={"reason": later.detail, "retry_in_seconds": later.seconds})
            raise
        except PayrailError as error:
            logger.warning("record failed; SQS will deliver it again", extra={"error": error.detail})
            raise
        except Exception:
            logger.exception("record failed unexpectedly; SQS will deliver it again")
            raise


def sqs_handler(handler: Handler) -> Handler:
    """Logger, metrics and tracer around an SQS consumer's ``lambda_handler`` (correlation ids are
    set per record by :class:`SqsConsumer`)."""
    decorated = tracer.capture_lambda_handler(handler)
    decorated = metrics.log_metrics(decorated, capture_cold_start_metric=True)
    return functools.wraps(handler)(logger.inject_lambda_context(decorated, clear_state=True))


class StreamConsumer:
    """The same shape for a DynamoDB stream: ``StreamConsumer(handle)`` calls ``handle(record)``
    with each record as Lambda sent it (a plain dict), and reports the records that raised as
    ``batchItemFailures`` (their sequence numbers), so Lambda retries the shard from the first
    of them instead of the whole batch."""

    def __init__(self, handle: Callable[[dict[str, Any]], Any]) -> None:
        self.handle = handle

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        def record_handler(record: Any) -> Any:
            set_correlation_id(new_correlation_id())
            try:
                return self.handle(record.raw_event)
            except PayrailError as error:
                logger.warning("stream record failed; Lambda will retry it", extra={"error": error.detail})
                raise
            except Exception:
                logger.exception("stream record failed unexpectedly; Lambda will retry it")
                raise

        processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        return process_partial_response(  # type: ignore[return-value]
            event=event, record_handler=record_handler, processor=processor, context=context
        )


def stream_handler(handler: Handler) -> Handler:
    """The same logger, metrics and tracer stack for a stream consumer's ``lambda_handler``."""
    return sqs_handler(handler)
