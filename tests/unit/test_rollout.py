"""Gradual rollout, as CloudFormation receives the template: every function is published through
the alias `live`, CodeDeploy moves the alias (a canary in prod, all at once in dev) and the
function's own errors alarm rolls it back; whatever invokes a function invokes the alias."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from deploy.check import deploy_parameters, region
from deploy.preflight import NEEDS
from devstack.cloudformation import expand
from devstack.template import Template, load_yaml
from tests.support import TEMPLATE

ALIAS = "live"
CONFIG = {"prod": "CodeDeployDefault.LambdaCanary10Percent5Minutes", "dev": "CodeDeployDefault.LambdaAllAtOnce"}


@cache
def deployed(environment: str) -> Template:
    """The expanded template with the environment's values (what the preflight asks for included),
    its conditions evaluated; a resource's Ref and GetAtt stay names, as in the deploy check."""
    parameters = deploy_parameters(environment, {need.parameter: need.example for need in NEEDS.get(environment, ())})
    document = expand(load_yaml(TEMPLATE), parameters, region(environment))
    template = Template(TEMPLATE, parameters, document=document)
    template.resolve_ref = lambda name: f"<Ref {name}>"
    template.resolve_getatt = lambda name, attribute: f"<{name}.{attribute}>"
    return template


def enabled(environment: str, kind: str) -> dict[str, dict[str, Any]]:
    return deployed(environment).enabled_resources(kind)


def functions(environment: str) -> list[str]:
    return sorted(enabled(environment, "AWS::Lambda::Function"))


def test_prod_deploys_the_product_functions_and_dev_the_sandbox_too() -> None:
    prod, dev = set(functions("prod")), set(functions("dev"))
    assert len(prod) == 15
    assert dev - prod == {"SandboxFunction", "SandboxWebhookSenderFunction"}


@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_every_function_is_shifted_by_codedeploy_and_rolled_back_by_its_errors_alarm(environment: str) -> None:
    template = deployed(environment)
    resources = template.resources
    groups = enabled(environment, "AWS::CodeDeploy::DeploymentGroup")
    aliases = enabled(environment, "AWS::Lambda::Alias")
    assert len(groups) == len(aliases) == len(functions(environment))
    for function in functions(environment):
        # Given the function's alias, moved by CodeDeploy on every update
        alias = aliases[f"{function}Alias{ALIAS}"]
        assert alias["Properties"]["Name"] == ALIAS
        assert alias["Properties"]["FunctionName"] == {"Ref": function}
        version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version]["Type"] == "AWS::Lambda::Version"
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["DeploymentGroupName"] == {"Ref": f"{function}DeploymentGroup"}
        group = template.resolve(groups[f"{function}DeploymentGroup"]["Properties"])
        # Then prod shifts a tenth of the traffic for five minutes first, dev all at once
        assert group["DeploymentConfigName"] == CONFIG[environment], function
        # And the function's own errors alarm stops the deployment and rolls the alias back
        alarm = function.removesuffix("Function") + "ErrorsAlarm"
        assert group["AlarmConfiguration"] == {"Enabled": True, "Alarms": [{"Name": f"<Ref {alarm}>"}]}, function
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        # watching the errors of the version being deployed, behind the alias
        dimensions = {d["Name"]: d["Value"] for d in resources[alarm]["Properties"]["Dimensions"]}
        assert dimensions == {
            "FunctionName": {"Ref": function},
            "Resource": {"Fn::Sub": f"${{{function}}}:{ALIAS}"},
            "ExecutedVersion": {"Fn::GetAtt": [version, "Version"]},
        }
        assert template.is_enabled(alarm)


@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_every_event_source_invokes_the_alias_not_latest(environment: str) -> None:
    template = deployed(environment)
    aliases = {f"{function}Alias{ALIAS}" for function in functions(environment)}
    invoked: list[str] = []
    for name in enabled(environment, "AWS::Lambda::EventSourceMapping").values():
        invoked.append(name["Properties"]["FunctionName"]["Ref"])
    for permission in enabled(environment, "AWS::Lambda::Permission").values():
        invoked.append(permission["Properties"]["FunctionName"]["Ref"])
    for rule in enabled(environment, "AWS::Events::Rule").values():
        invoked += [target["Arn"]["Ref"] for target in rule["Properties"]["Targets"]]
    # The HTTP API's integrations, the dev-only sandbox route's included (its Fn::If resolved)
    body = json.dumps(template.resolve(template.resources["HttpApi"]["Properties"]["Body"]))
    routes = re.findall(r"/functions/<Ref (\w+)>/invocations", body)
    assert routes
    invoked += routes
    assert set(invoked) == aliases
    # And each scheduled function's on-failure destination is configured on the alias it is invoked through
    configs = enabled(environment, "AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 2  # the scheduled sync and the ledger audit
    assert {config["Properties"]["Qualifier"] for config in configs.values()} == {ALIAS}


def test_sandbox_rollout_resources_exist_only_where_the_sandbox_does() -> None:
    # Given prod, which creates no sandbox function
    template = deployed("prod")
    kinds = ("AWS::Lambda::Version", "AWS::Lambda::Alias", "AWS::CodeDeploy::DeploymentGroup")
    sandbox = [name for name, resource in template.resources.items() if name.startswith("Sandbox") and resource["Type"] in kinds]
    # Then their versions, aliases and deployment groups are not created either (no dangling alarm reference)
    assert len(sandbox) == 6
    assert [name for name in sandbox if template.is_enabled(name)] == []
