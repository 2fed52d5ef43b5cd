"""The SAM transform, applied offline, gives the template CloudFormation would receive."""

from __future__ import annotations

import os

import pytest

from devstack.cloudformation import expand, expand_file
from devstack.template import TemplateError
from tests.support import TEMPLATE


def test_every_function_of_the_dev_stage_becomes_a_lambda_function_with_its_own_role() -> None:
    # Given the project's template and the dev stage
    # When it is expanded as CloudFormation's SAM transform would
    resources = expand_file(TEMPLATE, {"Stage": "dev"})["Resources"]
    # Then every serverless function is a plain Lambda function with a role of its own
    functions = {name for name, resource in resources.items() if resource["Type"] == "AWS::Lambda::Function"}
    assert "SandboxFunction" in functions
    assert "PayoutsApiFunction" in functions
    for name in functions:
        role = resources[f"{name}Role"]
        assert role["Type"] == "AWS::IAM::Role"
    assert not any(resource["Type"].startswith("AWS::Serverless::") for resource in resources.values())


def test_a_template_the_transform_refuses_is_a_template_error_naming_the_resource() -> None:
    # Given a function with an event of a type SAM does not know
    document = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Broken": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "src", "Handler": "app.h", "Runtime": "python3.12", "Events": {"E": {"Type": "Nope"}}},
            }
        },
    }
    region = os.environ.get("AWS_DEFAULT_REGION")
    # When it is expanded, Then the refusal names the resource, and the region is left as it was
    with pytest.raises(TemplateError, match="Broken"):
        expand(document)
    assert os.environ.get("AWS_DEFAULT_REGION") == region
