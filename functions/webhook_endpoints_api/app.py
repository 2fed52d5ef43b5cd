from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from payrail.auth.guard import SIGNED_IN, require_user
from payrail.http import CURSOR_PATTERN, ID_PATTERN, api_handler, create_app, json_response, problems
from payrail.settings import Once, WebhookEndpointsApiSettings
from payrail.webhooks import endpoints as use
from payrail.webhooks.endpoints import (
    CreatedEndpoint,
    DeliveryPage,
    Endpoint,
    EndpointChange,
    EndpointPage,
    EndpointRequest,
    RedeliveryQueued,
    RotatedSecret,
)

app = create_app()
settings = Once(WebhookEndpointsApiSettings)
TAGS = ["Webhook endpoints"]
NOT_FOUND = problems({404: "No such endpoint for this user"})
EndpointId = Annotated[str, Path(pattern=ID_PATTERN)]


def user() -> str:
    return require_user(app, settings()).user_id


@app.post(
    "/webhook-endpoints",
    summary="Register an endpoint; its secret is in this answer only",
    responses={201: {"description": "Registered"}, **problems({400: "Bad URL (refused by the SSRF rules) or unknown event types"})},
    tags=TAGS,
    security=SIGNED_IN,
)
def post_endpoint(body: EndpointRequest) -> Response[CreatedEndpoint]:
    return json_response(use.create_endpoint(settings(), user(), body), status=201)


@app.get("/webhook-endpoints", summary="The caller's endpoints, newest first", tags=TAGS, security=SIGNED_IN)
def get_endpoints(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[EndpointPage]:
    return json_response(use.list_endpoints(user(), limit, cursor))


@app.get("/webhook-endpoints/<endpoint_id>", summary="One endpoint (no secret)", responses=NOT_FOUND, tags=TAGS, security=SIGNED_IN)
def get_endpoint(endpoint_id: EndpointId) -> Response[Endpoint]:
    return json_response(use.get_endpoint(user(), endpoint_id))


@app.patch(
    "/webhook-endpoints/<endpoint_id>",
    summary="Change an endpoint's URL, events, description or status (enabled re-enables a disabled one)",
    responses={**NOT_FOUND, **problems({400: "Bad URL or unknown event types"})},
    tags=TAGS,
    security=SIGNED_IN,
)
def patch_endpoint(endpoint_id: EndpointId, body: EndpointChange) -> Response[Endpoint]:
    return json_response(use.change_endpoint(settings(), user(), endpoint_id, body))


@app.delete(
    "/webhook-endpoints/<endpoint_id>",
    summary="Delete an endpoint",
    responses={204: {"description": "Deleted"}, **NOT_FOUND},
    tags=TAGS,
    security=SIGNED_IN,
)
def delete_endpoint(endpoint_id: EndpointId) -> Response[None]:
    use.delete_endpoint(user(), endpoint_id)
    return Response(status_code=204)


@app.post(
    "/webhook-endpoints/<endpoint_id>/rotate-secret",
    summary="A new secret; the previous one also signs for 24 hours",
    responses=NOT_FOUND,
    tags=TAGS,
    security=SIGNED_IN,
)
def post_rotate_secret(endpoint_id: EndpointId) -> Response[RotatedSecret]:
    return json_response(use.rotate_secret(settings(), user(), endpoint_id))


@app.get(
    "/webhook-endpoints/<endpoint_id>/deliveries",
    summary="The endpoint's delivery attempts, newest first",
    responses=NOT_FOUND,
    tags=TAGS,
    security=SIGNED_IN,
)
def get_deliveries(
    endpoint_id: EndpointId,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[DeliveryPage]:
    return json_response(use.list_deliveries(user(), endpoint_id, limit, cursor))


@app.post(
    "/webhook-endpoints/<endpoint_id>/events/<event_id>/redeliver",
    summary="Deliver one event to this endpoint once more, now",
    responses={202: {"description": "Queued"}, **problems({404: "No such endpoint or event for this user"})},
    tags=TAGS,
    security=SIGNED_IN,
)
def post_redeliver(endpoint_id: EndpointId, event_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response[RedeliveryQueued]:
    return json_response(use.redeliver(settings(), user(), endpoint_id, event_id), status=202)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
