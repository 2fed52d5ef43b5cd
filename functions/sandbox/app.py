from payrail.http import api_handler, create_app
from payrail.sandbox import bank, idp, payments, webhooks

app = create_app()
app.include_router(idp.router, prefix="/sandbox/idp")
app.include_router(payments.router, prefix="/sandbox/payments")
app.include_router(webhooks.router, prefix="/sandbox/payments")
app.include_router(bank.router, prefix="/sandbox/bank")


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
