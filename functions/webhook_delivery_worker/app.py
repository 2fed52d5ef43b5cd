from payrail.consumer import Delivery, SqsConsumer, sqs_handler
from payrail.settings import Once, WebhookDeliverySettings
from payrail.webhooks.delivery import deliver
from payrail.webhooks.delivery_messages import DeliveryMessage

settings = Once(WebhookDeliverySettings)


def handle(message: DeliveryMessage, _: Delivery) -> str:
    return deliver(settings(), message)


consumer = SqsConsumer(DeliveryMessage, handle)


@sqs_handler
def lambda_handler(event, context):
    return consumer(event, context)
