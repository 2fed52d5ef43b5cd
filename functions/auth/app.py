from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from payrail.auth import signin
from payrail.auth.guard import SIGNED_IN, only_cookie, require_user
from payrail.auth.oauth_state import BINDING_COOKIE, REDIRECT_PATTERN
from payrail.errors import ValidationFailed
from payrail.http import NO_STORE, api_handler, create_app, json_response, problems, redirect, wants_json
from payrail.settings import AuthSettings, Once
from pydantic import BaseModel, Field

app = create_app()
settings = Once(AuthSettings)
TAGS = ["Sign-in"]
LIMITED = problems({429: "Too many sign-in requests from this address; see Retry-After"})
PROVIDER_DOWN = problems({503: "The identity provider did not answer"})


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(default=None, min_length=1, max_length=200)


def _client_address() -> str:
    return app.current_event.request_context.http.source_ip


def _presented(body: RefreshRequest | None) -> signin.PresentedRefresh:
    event = app.current_event
    return signin.presented_refresh(
        settings(), event.request_context.http.method, event.headers or {}, event.cookies, body.refresh_token if body else None
    )


@app.get(
    "/auth/login",
    summary="Start signing in: redirect to the identity provider",
    tags=TAGS,
    responses={302: {"description": "To the provider"}, **LIMITED, **PROVIDER_DOWN},
)
def login(
    redirect_to: Annotated[str | None, Query(max_length=512, pattern=REDIRECT_PATTERN.pattern)] = None,
    login_hint: Annotated[str | None, Query(max_length=320)] = None,
) -> Response[str]:
    signin.limit(settings(), _client_address())
    url, cookie = signin.begin_login(settings(), redirect_to, login_hint)
    return redirect(url, [cookie])


@app.get(
    "/auth/callback",
    summary="Finish signing in: the provider redirects here with a code",
    tags=TAGS,
    responses={
        200: {"description": "Tokens, for Accept: application/json"},
        302: {"description": "To redirect_to, with session cookies"},
        **problems(
            {
                400: "No code, or the state is missing, unknown, used, expired or from another browser",
                401: "The provider refused the code, the ID token is not valid, UserInfo is for another sub, or no email was shared",
            }
        ),
        **LIMITED,
        **PROVIDER_DOWN,
    },
)
def callback(
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response[signin.Tokens | str]:
    signin.limit(settings(), _client_address())
    binding = only_cookie(app.current_event.cookies, BINDING_COOKIE, refuse=ValidationFailed)
    tokens, redirect_to = signin.complete_login(settings(), code, state, binding, error)
    cookies = [signin.cleared_binding_cookie(), *signin.cleared_unprefixed_cookies(), *signin.session_cookies(tokens)]
    if wants_json(app):
        return Response(200, "application/json", tokens, headers=NO_STORE, cookies=cookies)
    return redirect(redirect_to, cookies)


@app.post(
    "/auth/refresh",
    summary="Rotate the refresh token and get a new access token",
    tags=TAGS,
    responses={
        200: {"description": "New tokens (and cookies, when the refresh token came in a cookie)"},
        **problems(
            {
                401: "No refresh token, an unknown, expired or reused one (reuse revokes the session), or two refresh cookies",
                403: "A refresh cookie sent from an Origin that is not allowed",
            }
        ),
        **LIMITED,
    },
)
def refresh(body: RefreshRequest | None = None) -> Response[signin.Tokens]:
    signin.limit(settings(), _client_address())
    presented = _presented(body)
    tokens = signin.refresh(settings(), presented.token)
    return Response(
        200, "application/json", tokens, headers=NO_STORE, cookies=signin.session_cookies(tokens) if presented.from_cookie else []
    )


@app.post(
    "/auth/logout",
    summary="End the session: its refresh tokens stop working",
    tags=TAGS,
    responses={
        204: {"description": "Signed out"},
        **problems({401: "Nothing identifies a session", 403: "A session cookie from a foreign Origin"}),
    },
)
def logout(body: RefreshRequest | None = None) -> Response[str]:
    presented = _presented(body)
    signin.logout(presented.token, None if presented.token else require_user(app, settings()))
    return Response(204, "text/plain", "", cookies=signin.cleared_cookies())


@app.get(
    "/auth/me",
    summary="The signed-in user",
    tags=TAGS,
    security=SIGNED_IN,
    responses={200: {"description": "The profile"}, **problems({404: "The user no longer exists"})},
)
def me() -> Response[signin.Profile]:
    return json_response(signin.profile(require_user(app, settings())))


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
