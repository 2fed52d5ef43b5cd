from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from payrail.auth.guard import SIGNED_IN, only_cookie, require_user
from payrail.auth.oauth_state import BINDING_COOKIE, REDIRECT_PATTERN
from payrail.bank import linking, reading, schedule
from payrail.bank.cookies import binding_cookie, cleared_binding_cookie
from payrail.errors import ValidationFailed
from payrail.http import CURSOR_PATTERN, ID_PATTERN, NO_STORE, api_handler, create_app, json_response, problems, redirect, wants_json
from payrail.settings import BankApiSettings, Once
from pydantic import BaseModel, Field

app = create_app()
settings = Once(BankApiSettings)
TAGS = ["Bank"]


class SyncQueued(BaseModel):
    connection_id: str
    sync_id: str = Field(description="The sync this request queued or joined; requests joined to one sync get the same id")
    status: Literal["queued", "running"]
    joined: bool = Field(description="Whether a sync already queued or running took this request")


@app.get(
    "/bank/connect",
    summary="Start linking a bank: redirect to the bank's consent page",
    tags=TAGS,
    responses={302: {"description": "To the bank"}},
    security=SIGNED_IN,
)
def connect(
    redirect_to: Annotated[str | None, Query(max_length=512, pattern=REDIRECT_PATTERN.pattern)] = None,
    login_hint: Annotated[str | None, Query(max_length=320)] = None,
) -> Response[str]:
    start = linking.connect(settings(), require_user(app, settings()), redirect_to, login_hint)
    return redirect(start.location, [binding_cookie(start.binding)])


@app.get(
    "/bank/callback",
    summary="Finish linking: the bank redirects here with a code; the connection is stored with its tokens encrypted",
    tags=TAGS,
    responses={
        201: {"description": "The connection, for Accept: application/json"},
        302: {"description": "To redirect_to"},
        **problems({400: "No code, a refused code, or a missing, unknown, used or foreign state", 503: "The bank did not answer"}),
    },
)
def callback(
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response[reading.Connection | str]:
    binding = only_cookie(app.current_event.cookies, BINDING_COOKIE, refuse=ValidationFailed)
    linked = linking.callback(settings(), code, state, error, binding)
    cookies = [cleared_binding_cookie()]
    if wants_json(app):
        return Response(201, "application/json", linked.connection.model_dump(), headers=NO_STORE, cookies=cookies)
    return redirect(linked.redirect_to, cookies)


@app.get(
    "/bank/connections",
    summary="The caller's bank connections with their last sync summary",
    tags=TAGS,
    security=SIGNED_IN,
    responses={200: {"description": "A page of connections"}},
)
def connections(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[reading.ConnectionList]:
    return json_response(reading.list_connections(require_user(app, settings()), limit, cursor))


@app.post(
    "/bank/connections/<connection_id>/sync",
    summary="Sync a connection now, in the background, or join the sync already queued or running for it",
    tags=TAGS,
    responses={
        202: {"description": "Queued, or joined to the sync already queued or running (same sync_id)"},
        **problems({404: "No such connection for this user", 429: "Over the per-user limit of sync requests; see Retry-After"}),
    },
    security=SIGNED_IN,
)
def sync_now(connection_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response[SyncQueued]:
    sync = schedule.request_sync(settings(), require_user(app, settings()), connection_id)
    status = "running" if sync.running else "queued"
    return json_response(SyncQueued(connection_id=connection_id, sync_id=sync.sync_id, status=status, joined=sync.joined), status=202)


@app.get(
    "/bank/transactions",
    summary="The caller's bank transactions, newest first",
    tags=TAGS,
    security=SIGNED_IN,
    responses={200: {"description": "A page of transactions"}, **problems({404: "No such connection for this user"})},
)
def transactions(
    connection_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[reading.TransactionList]:
    return json_response(reading.list_transactions(require_user(app, settings()), connection_id, limit, cursor))


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
