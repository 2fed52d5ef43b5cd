from datetime import datetime

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from payrail.clock import Deadline
from payrail.payouts import ledger_audit
from payrail.scheduled import run_jobs, scheduled_handler


def audit_ledger(now: datetime, deadline: Deadline) -> dict:
    return ledger_audit.audit_ledger(now, deadline)


@scheduled_handler
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context):
    return run_jobs([audit_ledger], event.time, context.get_remaining_time_in_millis() / 1000)
