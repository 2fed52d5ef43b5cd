from functools import cache

from payrail.consumer import Delivery, SqsConsumer, sqs_handler
from payrail.payouts.submission import PayoutMessage, Submitter
from payrail.settings import Once, PayoutWorkerSettings

settings = Once(PayoutWorkerSettings)


@cache
def submitter() -> Submitter:
    return Submitter(settings())


def submit(message: PayoutMessage, delivery: Delivery) -> str:
    return submitter().submit(message, delivery.deadline, delivery.attempt)


consumer = SqsConsumer(PayoutMessage, submit)


@sqs_handler
def lambda_handler(event, context):
    return consumer(event, context, settings().payouts_queue_url)
