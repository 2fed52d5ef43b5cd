"""The sandbox providers' HTTP API: one resolver with each provider's router under /sandbox/."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from payrail.http import create_app

from payrail_sandbox import bank, idp, payments, webhooks


@cache
def resolver() -> APIGatewayHttpResolver:
    # Once per process: including a router binds it to the including resolver, so a second
    # resolver over the same routers would take their requests' context away from the first.
    app = create_app()
    app.include_router(idp.router, prefix="/sandbox/idp")
    app.include_router(payments.router, prefix="/sandbox/payments")
    app.include_router(webhooks.router, prefix="/sandbox/payments")
    app.include_router(bank.router, prefix="/sandbox/bank")
    return app
