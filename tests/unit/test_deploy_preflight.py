"""`make deploy ENV=prod` says what it still needs before any AWS call, and exits non-zero."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploy.__main__ import main
from deploy.preflight import NEEDS, preflight, render

EXAMPLES = {need.parameter: need.example for need in NEEDS["prod"]}


def _no_aws(region: str) -> Any:
    raise AssertionError("the preflight called AWS although values were missing")


def test_prod_with_nothing_given_lists_every_missing_value_with_how_to_create_it(capsys: pytest.CaptureFixture[str]) -> None:
    # When the preflight runs for prod with samconfig.toml's values only
    code = main(["preflight", "--env", "prod", "--offline"])
    # Then it fails, and names every value with the command or console step that creates it
    output = capsys.readouterr().err
    assert code == 1
    assert "nothing was sent to CloudFormation" in output
    for need in NEEDS["prod"]:
        assert f"missing {need.parameter}:" in output
    assert "aws secretsmanager create-secret --region eu-west-1 --name payrail-prod/oidc-client-secret" in output
    assert 'make deploy ENV=prod PARAMS="... OidcClientId=<value>"' in output


def test_missing_values_stop_the_preflight_before_any_aws_call() -> None:
    outcome = preflight("prod", {"OidcClientId": EXAMPLES["OidcClientId"]}, secrets_client=_no_aws)
    assert [need.parameter for need in outcome.missing] == [
        "PublicBaseUrl",
        "ApiCertificateArn",
        "OidcClientSecretArn",
        "PaymentProviderUrl",
        "BankApiBaseUrl",
    ]
    assert not outcome.ok


def test_a_reserved_placeholder_domain_is_missing_not_given() -> None:
    outcome = preflight("prod", {**EXAMPLES, "PublicBaseUrl": "https://api.payrail.example"}, secrets_client=_no_aws)
    assert [need.parameter for need in outcome.missing] == ["PublicBaseUrl"]


def test_a_loopback_value_is_refused_too() -> None:
    outcome = preflight("prod", {**EXAMPLES, "PaymentProviderUrl": "http://localhost:8080"}, secrets_client=_no_aws)
    assert outcome.missing == []
    assert outcome.problems == [
        "PayoutWorkerFunction environment PAYMENT_PROVIDER_URL='http://localhost:8080' points at a loopback address",
        "ScheduledSyncFunction environment PAYMENT_PROVIDER_URL='http://localhost:8080' points at a loopback address",
    ]


def test_dev_needs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", "--env", "dev", "--offline"]) == 0
    assert "nothing is missing" in capsys.readouterr().out


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_with_every_value_given_the_secrets_they_name_are_looked_up(secrets: Any) -> None:
    # Given the OAuth client secret stored as the README says
    arn = secrets.create_secret(Name="payrail-prod/oidc-client-secret", SecretString="s3cr3t")["ARN"]
    # When the preflight runs with every value
    outcome = preflight("prod", {**EXAMPLES, "OidcClientSecretArn": arn}, secrets_client=lambda region: secrets)
    # Then it is ready
    assert outcome.ok, render(outcome)


def test_a_secret_that_does_not_exist_or_has_no_value_is_named(secrets: Any) -> None:
    empty = secrets.create_secret(Name="payrail-prod/empty")["ARN"]
    for arn, reason in ((EXAMPLES["OidcClientSecretArn"], "no secret"), (empty, "has no value yet")):
        outcome = preflight("prod", {**EXAMPLES, "OidcClientSecretArn": arn}, secrets_client=lambda region: secrets)
        assert not outcome.ok
        assert len(outcome.missing_secrets) == 1
        assert reason in outcome.missing_secrets[0]
