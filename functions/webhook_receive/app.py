import base64

from aws_lambda_powertools.event_handler import Response
from payrail.http import api_handler, create_app, json_response, problems
from payrail.settings import Once, WebhookReceiveSettings
from payrail.webhooks.receive import receive_webhook
from pydantic import BaseModel

app = create_app()
settings = Once(WebhookReceiveSettings)


class Accepted(BaseModel):
    id: str
    status: str = "accepted"


@app.post(
    "/webhooks/payments",
    summary="Receive a signed payment-provider event (Standard Webhooks HMAC or JWT)",
    responses={
        202: {"description": "Verified and queued (also for a redelivery)"},
        **problems({400: "Verified, but not a valid event", 401: "Missing, wrong, unverifiable or stale signature"}),
    },
    tags=["Webhooks"],
)
def payment_webhook() -> Response[Accepted]:
    event = app.current_event
    # The signature covers the exact bytes sent, so the body is taken raw, never re-encoded.
    raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
    accepted = receive_webhook(settings(), event.headers, raw)
    return json_response(Accepted(id=accepted.id), status=202)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
