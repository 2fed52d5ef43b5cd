"""The sandbox payment provider, served under /sandbox/payments."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

router = APIGatewayHttpRouter()
