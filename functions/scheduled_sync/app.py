from datetime import datetime
from functools import cache

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from payrail.bank import schedule
from payrail.clock import Deadline
from payrail.payouts import reconciliation
from payrail.payouts.provider import PaymentProvider
from payrail.scheduled import run_jobs, scheduled_handler
from payrail.settings import Once, ScheduledJobsSettings

settings = Once(ScheduledJobsSettings)


@cache
def provider() -> PaymentProvider:
    return PaymentProvider(settings())


# The periodic use cases, run in turn by every firing of the schedule.
def reconcile_payouts(now: datetime, deadline: Deadline) -> dict:
    return reconciliation.reconcile_payouts(now, deadline, settings(), provider())


def fan_out_bank_syncs(now: datetime, deadline: Deadline) -> dict:
    return schedule.fan_out_bank_syncs(now, deadline, settings())


JOBS = [reconcile_payouts, fan_out_bank_syncs]


@scheduled_handler
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context):
    return run_jobs(JOBS, event.time, context.get_remaining_time_in_millis() / 1000)
