"""The sandbox OpenID Connect identity provider, served under /sandbox/idp."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

router = APIGatewayHttpRouter()
