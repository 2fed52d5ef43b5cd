"""The deploy check: template.yaml expanded as `sam deploy` sends it, for every samconfig.toml
environment, with its Rules, references and addresses checked before CloudFormation sees them."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from deploy.check import check_expanded, check_file, deploy_environments, deploy_parameters, is_loopback, region
from deploy.preflight import NEEDS
from devstack.cloudformation import expand
from devstack.template import load_yaml
from tests.support import TEMPLATE


def told_to_give(environment: str) -> dict[str, str]:
    """What the preflight tells a deployer of ``environment`` to give (nothing, for dev)."""
    return {need.parameter: need.example for need in NEEDS.get(environment, ())}


@cache
def _expanded(environment: str) -> dict[str, Any]:
    return expand(load_yaml(TEMPLATE), deploy_parameters(environment, told_to_give(environment)), region(environment))


def expanded(environment: str) -> dict[str, Any]:
    return copy.deepcopy(_expanded(environment))


def problems_of(document: dict[str, Any], environment: str) -> list[str]:
    return check_expanded(document, deploy_parameters(environment, told_to_give(environment)))


def test_samconfig_has_a_dev_and_a_prod_deploy() -> None:
    assert {"dev", "prod"} <= set(deploy_environments())


@pytest.mark.parametrize("environment", deploy_environments())
def test_every_environment_deploys_with_the_values_the_deployer_is_told_to_give(environment: str) -> None:
    # Given samconfig.toml's values for the environment and what the preflight asks the deployer for
    # When the template is expanded and checked as CloudFormation would receive it
    report = check_file(environment, told_to_give(environment))
    # Then the Rules hold, every reference resolves, nothing cycles and nothing points at loopback
    assert report.problems == []


def test_dev_needs_no_value_from_the_deployer() -> None:
    assert told_to_give("dev") == {}
    assert "PublicBaseUrl" not in deploy_parameters("dev")


def test_prod_without_the_deployers_values_is_refused_by_rules_the_preflight_covers() -> None:
    # Given prod with samconfig.toml's values only
    failures = check_file("prod").problems
    # Then its Rules refuse it, and every refusal is about a value the preflight asks for
    assert failures
    needed = [need.parameter for need in NEEDS["prod"]]
    for failure in failures:
        assert failure.startswith("rule "), failure
        assert any(f"needs {name}" in failure for name in needed), f"the preflight does not ask for what this rule needs: {failure}"
    for name in ("OidcClientId", "OidcClientSecretArn", "PaymentProviderUrl", "BankApiBaseUrl", "PublicBaseUrl", "ApiCertificateArn"):
        assert any(f"needs {name}" in failure for failure in failures)


def test_a_function_that_references_the_api_routing_to_it_is_a_cycle() -> None:
    # Given the auth function told the API's URL: the API's integration names the function
    document = expanded("dev")
    document["Resources"]["AuthFunction"]["Properties"]["Environment"]["Variables"]["API_URL"] = {"Fn::GetAtt": ["HttpApi", "ApiEndpoint"]}
    # Then the check names the cycle
    cycles = [problem for problem in problems_of(document, "dev") if problem.startswith("dependency cycle")]
    assert len(cycles) == 1
    assert "HttpApi" in cycles[0]
    assert "AuthFunction" in cycles[0]


def test_a_worker_may_reference_the_api_since_it_is_not_behind_it() -> None:
    variables = expanded("dev")["Resources"]["PayoutWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert "HttpApi.ApiEndpoint" in str(variables["PAYMENT_PROVIDER_URL"])
    assert problems_of(expanded("dev"), "dev") == []


def test_a_reference_to_nothing_is_dangling() -> None:
    document = expanded("dev")
    document["Resources"]["HealthFunction"]["Properties"]["Environment"]["Variables"]["EXTRA"] = {"Fn::Sub": "${NoSuchQueue.Arn}/x"}
    assert problems_of(document, "dev") == ["HealthFunction references NoSuchQueue, which is neither a parameter nor a resource"]


def test_a_reference_to_a_resource_this_environment_does_not_create_is_dangling() -> None:
    # Given a prod function naming the sandbox's queue, which only the dev stage creates
    document = expanded("prod")
    document["Resources"]["HealthFunction"]["Properties"]["Environment"]["Variables"]["EXTRA"] = {"Ref": "SandboxWebhooksQueue"}
    assert problems_of(document, "prod") == [
        "HealthFunction references SandboxWebhooksQueue, which this environment does not create (its condition is false)"
    ]
    # And behind an Fn::If that prod does not take, the same reference is fine
    document["Resources"]["HealthFunction"]["Properties"]["Environment"]["Variables"]["EXTRA"] = {
        "Fn::If": ["IsDev", {"Ref": "SandboxWebhooksQueue"}, "none"]
    }
    assert problems_of(document, "prod") == []


def test_the_local_runtimes_addresses_deployed_are_loopback_everywhere_they_land() -> None:
    # Given dev deployed with the local stack's public URL and a local front end's origin
    report = check_file("dev", {"PublicBaseUrl": "http://127.0.0.1:3000", "AllowedOrigins": "http://localhost:5173"})
    # Then every function environment and the API's CORS origin are named
    assert "AuthFunction environment OIDC_ISSUER='http://127.0.0.1:3000/sandbox/idp' points at a loopback address" in report.problems
    assert (
        "PayoutWorkerFunction environment PAYMENT_PROVIDER_URL='http://127.0.0.1:3000/sandbox/payments' points at a loopback address"
        in (report.problems)
    )
    assert (
        "SandboxWebhookSenderFunction environment WEBHOOK_URL='http://127.0.0.1:3000/webhooks/payments' points at a loopback address"
        in (report.problems)
    )
    assert "HttpApi CORS origin 'http://localhost:5173' is a loopback address" in report.problems


def test_a_value_outside_its_parameter_constraints_is_named_before_the_transform() -> None:
    report = check_file("prod", {**told_to_give("prod"), "OidcClientSecretArn": "my-secret", "BankSyncPageSize": "0"})
    assert report.problems == [
        "parameter OidcClientSecretArn='my-secret' does not match its AllowedPattern ^arn:aws[a-z-]*:secretsmanager:.+$",
        "parameter BankSyncPageSize=0 is below its MinValue 1",
    ]


@pytest.mark.parametrize(
    ("value", "loopback"),
    [
        ("http://127.0.0.1:3000/sandbox/idp", True),
        ("http://localhost:5173", True),
        ("https://[::1]:8443/x", True),
        ("http://0.0.0.0:3000", True),
        ("127.0.0.1:3000", True),
        ("https://a.example.com,http://127.0.0.2", True),
        ("https://api.payrail.example.com", False),
        ("<HttpApi.ApiEndpoint>/sandbox/payments", False),
        ("/sandbox/idp", False),
        ("http://10.0.0.8", False),
        ("<Ref PayoutsQueue>", False),
        ("3", False),
    ],
)
def test_loopback_addresses_are_recognised(value: str, loopback: bool) -> None:
    assert is_loopback(value) is loopback
