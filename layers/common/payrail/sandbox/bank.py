"""The sandbox bank (OAuth, accounts, transactions/sync), served under /sandbox/bank."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

router = APIGatewayHttpRouter()
