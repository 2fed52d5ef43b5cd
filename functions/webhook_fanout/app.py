from payrail.consumer import StreamConsumer, stream_handler
from payrail.settings import Once, WebhookFanOutSettings
from payrail.webhooks.fanout import fan_out_record

settings = Once(WebhookFanOutSettings)
consumer = StreamConsumer(lambda record: fan_out_record(settings(), record))


@stream_handler
def lambda_handler(event, context):
    return consumer(event, context)
