from payrail.consumer import Delivery, SqsConsumer, sqs_handler
from payrail.settings import Once
from payrail_sandbox.settings import SenderSettings
from payrail_sandbox.webhooks import send_event
from pydantic import BaseModel

settings = Once(SenderSettings)


class QueuedEvent(BaseModel):
    event_id: str
    advance: bool = True


def send(message: QueuedEvent, delivery: Delivery) -> str:
    return send_event(settings(), message.event_id, message.advance, delivery.deadline.remaining())


consumer = SqsConsumer(QueuedEvent, send)


@sqs_handler
def lambda_handler(event, context):
    return consumer(event, context)
