from payrail.bank.worker import handle_batch
from payrail.handlers import sqs_handler


@sqs_handler
def lambda_handler(event, context):
    return handle_batch(event, context)
