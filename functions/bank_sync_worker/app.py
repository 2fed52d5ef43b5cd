from payrail.bank.worker import handle_batch, sqs_handler


@sqs_handler
def lambda_handler(event, context):
    return handle_batch(event, context)
