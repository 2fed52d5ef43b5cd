from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from payrail.auth.guard import SIGNED_IN, require_user
from payrail.http import CURSOR_PATTERN, ID_PATTERN, api_handler, create_app, json_response, problems
from payrail.payouts.balances import Balances, LedgerPage, get_balances, get_ledger
from payrail.payouts.models import IDEMPOTENCY_KEY_PATTERN, Currency, Payout, PayoutPage, PayoutRequest
from payrail.payouts.service import create_payout, get_payout, list_payouts
from payrail.settings import Once, PayoutsApiSettings

app = create_app()
settings = Once(PayoutsApiSettings)


@app.post(
    "/payouts",
    summary="Create a payout (idempotent per Idempotency-Key)",
    responses={
        201: {"description": "Created, or the original answer replayed with Idempotent-Replayed: true"},
        **problems(
            {
                422: "The key was used with another body, or the amount exceeds the available balance (type ending in "
                "insufficient-funds, with available, available_decimal and currency)",
                429: "Over the per-user rate limit; see Retry-After",
            }
        ),
    },
    tags=["Payouts"],
    security=SIGNED_IN,
)
def post_payout(
    body: PayoutRequest,
    idempotency_key: Annotated[
        str, Header(alias="idempotency-key", pattern=IDEMPOTENCY_KEY_PATTERN, description="1 to 255 visible ASCII characters")
    ],
) -> Response[Payout]:
    result = create_payout(settings(), require_user(app, settings()).user_id, idempotency_key, body)
    return json_response(result.body, status=result.status_code, headers=result.headers)


@app.get("/payouts", summary="The caller's payouts, newest first", tags=["Payouts"], security=SIGNED_IN)
def get_payouts(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[PayoutPage]:
    return json_response(list_payouts(require_user(app, settings()).user_id, limit, cursor))


@app.get(
    "/payouts/<payout_id>",
    summary="One of the caller's payouts",
    responses={200: {"description": "The payout"}, **problems({404: "No such payout for this user"})},
    tags=["Payouts"],
    security=SIGNED_IN,
)
def get_one_payout(payout_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response[Payout]:
    return json_response(get_payout(require_user(app, settings()).user_id, payout_id))


@app.get(
    "/balances",
    summary="The caller's funding reference and balance per currency",
    tags=["Balances"],
    security=SIGNED_IN,
)
def get_caller_balances() -> Response[Balances]:
    return json_response(get_balances(require_user(app, settings()).user_id))


@app.get(
    "/balances/<currency>/ledger",
    summary="The caller's ledger in one currency, newest first",
    # A path segment the router cannot read as a parameter (a character no route allows) matches
    # no route at all: 404, as for any unknown path.
    responses={200: {"description": "The ledger entries"}, **problems({404: "No route for this path"})},
    tags=["Balances"],
    security=SIGNED_IN,
)
def get_caller_ledger(
    currency: Annotated[Currency, Path(description="ISO 4217 code of a payout currency")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, pattern=CURSOR_PATTERN)] = None,
) -> Response[LedgerPage]:
    return json_response(get_ledger(require_user(app, settings()).user_id, currency, limit, cursor))


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
