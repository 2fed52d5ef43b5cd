"""What a deploy needs before CloudFormation is asked: ``make deploy`` runs this first.

Offline, with no AWS call: the values ``sam deploy`` would send (samconfig.toml's environment plus
the deployer's ``PARAMS``) go through the deploy check (:mod:`deploy.check`: the SAM transform,
parameter constraints, Rules, references, loopback addresses), and every value prod needs and
does not have is listed with where it comes from and the command that creates it. Only when
nothing is missing are the Secrets Manager secrets those values name looked up (read-only calls),
so a secret that does not exist, or has no value yet, is named too, before any change set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deploy.check import check_file, deploy_config, deploy_parameters

# Hosts under the names RFC 2606 reserves, which nobody can deploy to (samconfig's placeholders).
RESERVED = (".example", ".invalid", ".test", ".localhost")


@dataclass(frozen=True)
class Need:
    """A value prod cannot deploy without."""

    parameter: str
    what: str
    create: str
    example: str  # a value of the right shape; the deploy check test deploys prod with these
    secret: bool = False  # the value is the ARN of a Secrets Manager secret that must hold a value


PROD_NEEDS = (
    Need(
        "PublicBaseUrl",
        "the API's custom domain (Google redirects only to a URI registered in advance)",
        "a host name in a DNS zone you control, e.g. https://api.<your domain>; the stack creates the custom domain "
        "(with ApiCertificateArn), then point the host at the ApiDomainTarget output",
        "https://api.payrail.example.com",
    ),
    Need(
        "ApiCertificateArn",
        "the ACM certificate of PublicBaseUrl's host, in the stack's region (the stack creates the custom domain with it)",
        "aws acm request-certificate --region {region} --domain-name {host} --validation-method DNS --query CertificateArn "
        "--output text, then add the CNAME record it asks for (aws acm describe-certificate) and wait until it is ISSUED",
        "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    ),
    Need(
        "OidcClientId",
        "the Google OAuth client's id (type 'Web application')",
        "Google Cloud console > APIs & Services > Credentials > Create credentials > OAuth client ID, "
        "Web application, authorised redirect URI {PublicBaseUrl}/auth/callback",
        "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com",
    ),
    Need(
        "OidcClientSecretArn",
        "the ARN of the secret that holds that client's secret (client_secret_post)",
        "aws secretsmanager create-secret --region {region} --name {stack}/oidc-client-secret "
        "--secret-string '<the client secret>' --query ARN --output text",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:payrail-prod/oidc-client-secret-AbCdEf",
        secret=True,
    ),
    Need(
        "PaymentProviderUrl",
        "the payment provider's API base URL (its /v1/payouts is called)",
        "the provider's API documentation or account settings",
        "https://api.payments-provider.com",
    ),
    Need(
        "BankApiBaseUrl",
        "the bank's OAuth and transactions API base URL (/authorize, /token, /transactions/sync)",
        "the bank's developer portal, where the client id BankClientId (a public client with PKCE) is registered",
        "https://api.bank.com/open-banking",
    ),
)
NEEDS = {"prod": PROD_NEEDS}


@dataclass
class Outcome:
    environment: str
    parameters: dict[str, str]
    missing: list[Need]
    problems: list[str]
    missing_secrets: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.problems or self.missing_secrets)


def _missing(need: Need, parameters: Mapping[str, str]) -> bool:
    value = parameters.get(need.parameter, "").strip()
    if not value:
        return True
    host = (urlsplit(value).hostname or "") if "://" in value else ""
    return host.endswith(RESERVED)


def preflight(environment: str, extra: Mapping[str, str] | None = None, secrets_client: Callable[[str], Any] | None = None) -> Outcome:
    """``secrets_client(region)``: a Secrets Manager client; None stays offline (no secret lookup)."""
    parameters = deploy_parameters(environment, extra)
    needs = NEEDS.get(environment, ())
    missing = [need for need in needs if _missing(need, parameters)]
    missing_names = {need.parameter for need in missing}
    report = check_file(environment, extra)
    # A Rule failing for a value already listed as missing says the same thing twice.
    problems = [problem for problem in report.problems if not any(f"needs {name}" in problem for name in missing_names)]
    outcome = Outcome(environment, parameters, missing, problems, [])
    if outcome.ok and secrets_client is not None:
        region = str(deploy_config(environment).get("region") or "us-east-1")
        client = secrets_client(region)
        for need in needs:
            if need.secret:
                reason = _secret_problem(client, parameters[need.parameter])
                if reason:
                    outcome.missing_secrets.append(f"{need.parameter}: {reason}")
    return outcome


def _secret_problem(client: Any, arn: str) -> str | None:
    try:
        described = client.describe_secret(SecretId=arn)
    except client.exceptions.ResourceNotFoundException:
        return f"no secret {arn}"
    if described.get("DeletedDate"):
        return f"secret {arn} is scheduled for deletion"
    if not any("AWSCURRENT" in stages for stages in (described.get("VersionIdsToStages") or {}).values()):
        return f"secret {arn} has no value yet: aws secretsmanager put-secret-value --secret-id {arn} --secret-string '<value>'"
    return None


def render(outcome: Outcome) -> str:
    if outcome.ok:
        return f"preflight {outcome.environment}: nothing is missing."
    config = deploy_config(outcome.environment)
    fill = {
        "region": config.get("region", "us-east-1"),
        "stack": config.get("stack_name", "payrail"),
        "PublicBaseUrl": outcome.parameters.get("PublicBaseUrl") or "https://<your API domain>",
        "host": urlsplit(outcome.parameters.get("PublicBaseUrl", "")).hostname or "<your API domain>",
    }
    lines = [f"preflight {outcome.environment}: not ready to deploy; nothing was sent to CloudFormation.", ""]
    for need in outcome.missing:
        lines += [
            f"  missing {need.parameter}: {need.what}",
            f"      create: {need.create.format(**fill)}",
            f'      give:   make deploy ENV={outcome.environment} PARAMS="... {need.parameter}=<value>"'
            f" (or add it to [{outcome.environment}.deploy.parameters] parameter_overrides in samconfig.toml)",
        ]
    lines += [f"  missing secret {reason}" for reason in outcome.missing_secrets]
    lines += [f"  {problem}" for problem in outcome.problems]
    return "\n".join(lines)
