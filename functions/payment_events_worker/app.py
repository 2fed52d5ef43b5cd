from payrail.consumer import Delivery, SqsConsumer, sqs_handler
from payrail.webhooks.apply import apply_event
from payrail.webhooks.events import PaymentEvent


def apply(event: PaymentEvent, _: Delivery) -> str:
    return apply_event(event).value


consumer = SqsConsumer(PaymentEvent, apply)


@sqs_handler
def lambda_handler(event, context):
    return consumer(event, context)
