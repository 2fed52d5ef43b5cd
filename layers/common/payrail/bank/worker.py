"""The SQS side of the sync worker: one record is one connection to sync.

A record whose connection is being synced by another run, or that must wait for the bank
(rate limited, unavailable), fails quietly: it is reported in the partial batch response
without a stack trace and its visibility is lowered so it comes back soon rather than after
the queue's full visibility timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, Field, ValidationError

from payrail import queues
from payrail.bank.settings import BankQueueSettings
from payrail.bank.sync import RetryLater, SyncRun
from payrail.db.bank import LeaseHeld, LeaseLost
from payrail.errors import DependencyFailure
from payrail.handlers import adopt_correlation_id
from payrail.observability import (
    logger,
)
from payrail.settings import load

LEASE_HELD_RETRY_SECONDS = 20
DEPENDENCY_RETRY_SECONDS = 30


class SyncRequest(BaseModel):
    connection_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class QuietRetry(Exception):
    """Fail this record without noise; it comes back after its lowered visibility timeout."""


def _give_back(record: SQSRecord, seconds: int) -> None:
    queues.change_visibility(load(BankQueueSettings).bank_sync_queue_url, record.receipt_handle, seconds)


def sync_record(record: SQSRecord, remaining: Callable[[], float]) -> dict[str, Any] | None:
    adopt_correlation_id(record.message_attributes)
    try:
        request = SyncRequest.model_validate_json(record.body)
    except ValidationError:
        logger.warning("bank sync message is malformed; dropping it", extra={"message_id": record.message_id})
        return None
    logger.append_keys(connection_id=request.connection_id)
    try:
        return SyncRun(request.connection_id, remaining).run()
    except (LeaseHeld, LeaseLost):
        logger.info("bank connection is being synced by another run; retrying later")
        _give_back(record, LEASE_HELD_RETRY_SECONDS)
        raise QuietRetry() from None
    except RetryLater as later:
        logger.info("bank sync deferred", extra={"reason": str(later), "retry_in": later.delay})
        _give_back(record, later.delay)
        raise QuietRetry() from None
    except DependencyFailure as failure:
        logger.warning("bank sync failed on a dependency; retrying later", extra={"error": failure.detail})
        _give_back(record, DEPENDENCY_RETRY_SECONDS)
        raise QuietRetry() from None
    except Exception:
        logger.exception("bank sync failed unexpectedly")
        raise


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every record of an SQS batch through :func:`sync_record`, with a partial batch response."""
    # No logger given to the processor: a quiet retry must not print a warning with a traceback.
    # A whole failed batch is reported like a partial one (no exception, no stack trace in the log):
    # with one record per invocation that is the normal way to give a message back.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def remaining() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000

    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=lambda record: sync_record(record, remaining), processor=processor, context=context
    )


Handler = Callable[[dict[str, Any], Any], Any]
