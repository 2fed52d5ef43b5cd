from payrail.bank.sync import SyncRequest, sync_connection
from payrail.consumer import Delivery, SqsConsumer, sqs_handler
from payrail.settings import BankSyncWorkerSettings, Once

settings = Once(BankSyncWorkerSettings)


def sync(request: SyncRequest, delivery: Delivery) -> dict | None:
    return sync_connection(settings(), request.connection_id, delivery.deadline, request.sync_id)


consumer = SqsConsumer(SyncRequest, sync)


@sqs_handler
def lambda_handler(event, context):
    return consumer(event, context, settings().bank_sync_queue_url)
