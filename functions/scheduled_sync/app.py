from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from payrail.bank.schedule import fan_out_bank_syncs
from payrail.handlers import scheduled_handler
from payrail.scheduled import run_jobs
from payrail.webhooks.reconcile import reconcile_payouts

# The periodic use cases: bank-sync fan-out and payout reconciliation register here.
JOBS: list = [
    reconcile_payouts,
    fan_out_bank_syncs,
]


@scheduled_handler
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context):
    return run_jobs(JOBS, event.time, context.get_remaining_time_in_millis() / 1000)
