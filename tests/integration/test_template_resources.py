"""The infrastructure the tests run on is built from template.yaml itself, so the two cannot drift."""

from __future__ import annotations

import json

from tests.support import Resources


def test_the_table_built_from_the_template_has_the_key_layout_the_code_uses(resources: Resources) -> None:
    dynamodb = resources.client("dynamodb")
    table = dynamodb.describe_table(TableName=resources.ref("Table"))["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == {"gsi1pk": "HASH", "gsi1sk": "RANGE"}
    ttl = dynamodb.describe_time_to_live(TableName=resources.ref("Table"))["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_every_work_queue_has_a_dead_letter_queue(resources: Resources) -> None:
    sqs = resources.client("sqs")
    work_queues = [name for name in resources.template.enabled_resources("AWS::SQS::Queue") if not name.endswith("DLQ")]
    assert {"PayoutsQueue", "PaymentEventsQueue", "BankSyncQueue"} <= set(work_queues)
    for logical_id in work_queues:
        attributes = sqs.get_queue_attributes(QueueUrl=resources.ref(logical_id), AttributeNames=["All"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"].endswith(f"-{logical_id.removesuffix('Queue')}DLQ"), logical_id
        assert int(policy["maxReceiveCount"]) >= 3


def test_each_queue_visibility_timeout_is_about_six_times_its_consumers_timeout(resources: Resources) -> None:
    sqs = resources.client("sqs")
    for spec in resources.functions.values():
        for properties in spec.events_of("SQS").values():
            url = resources.provisioner.queue_url_for_arn(properties["Queue"])
            visibility = int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"]
            )
            assert 5 * spec.timeout <= visibility <= 7 * spec.timeout, (spec.logical_id, visibility, spec.timeout)


def test_secrets_are_generated_locally_and_marked_local_only(resources: Resources) -> None:
    secretsmanager = resources.client("secretsmanager")
    for logical_id in resources.template.enabled_resources("AWS::SecretsManager::Secret"):
        arn = resources.ref(logical_id)
        assert "LOCAL DEVELOPMENT ONLY" in secretsmanager.describe_secret(SecretId=arn)["Description"]
        value = secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
        generated = json.loads(value) if value.startswith("{") else {"value": value}
        assert all(len(v) >= 32 for k, v in generated.items() if k not in ("active_kid", "previous")), logical_id


def test_two_provisionings_generate_different_secrets(moto_endpoint: str) -> None:
    first = Resources(moto_endpoint)
    value_1 = first.client("secretsmanager").get_secret_value(SecretId=first.ref("SessionSigningSecret"))["SecretString"]
    second = Resources(moto_endpoint)
    value_2 = second.client("secretsmanager").get_secret_value(SecretId=second.ref("SessionSigningSecret"))["SecretString"]
    assert value_1 != value_2


def test_functions_run_on_python_312_or_newer_with_the_common_layer(resources: Resources) -> None:
    assert resources.functions
    for spec in resources.functions.values():
        major, minor = spec.runtime.removeprefix("python").split(".")
        assert (int(major), int(minor)) >= (3, 12), spec.logical_id
        assert any(layer.name == "common" for layer in spec.layer_dirs), spec.logical_id
        assert spec.handler_file.exists(), spec.logical_id
