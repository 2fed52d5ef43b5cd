"""Deleting or replacing the stack never deletes stored data or what reads it."""

from __future__ import annotations

from devstack.template import load_yaml
from tests.support import TEMPLATE

RESOURCES = load_yaml(TEMPLATE)["Resources"]


def test_the_table_and_the_key_that_seals_the_bank_tokens_in_it_are_retained() -> None:
    for logical_id in ("Table", "TokensKey"):
        resource = RESOURCES[logical_id]
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical_id


def test_every_key_that_seals_product_data_is_retained() -> None:
    # A key whose ciphertexts the product stores (used with an encryption context by a data-access
    # module) is retained; the sandbox's key seals only dev stand-in data.
    keys = {name for name, resource in RESOURCES.items() if resource["Type"] == "AWS::KMS::Key"}
    assert keys == {"TokensKey", "SandboxKey", "WebhookSecretsKey"}
    assert RESOURCES["WebhookSecretsKey"]["DeletionPolicy"] == RESOURCES["WebhookSecretsKey"]["UpdateReplacePolicy"] == "Retain"
    assert RESOURCES["SandboxKey"]["Condition"] == "IsDev"


def test_every_stateful_resource_says_what_happens_to_it() -> None:
    stateful = ("AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::SecretsManager::Secret", "AWS::SQS::Queue", "AWS::Logs::LogGroup")
    unstated = [
        name
        for name, resource in RESOURCES.items()
        if resource["Type"] in stateful and not {"DeletionPolicy", "UpdateReplacePolicy"} <= set(resource)
    ]
    assert unstated == []
