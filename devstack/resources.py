"""Creating the template's resources in moto and answering ``!Ref`` / ``!GetAtt`` for them.

A resource is created the first time anything refers to it (or when everything is provisioned),
so references between resources, such as a queue's redrive policy naming its dead-letter queue,
are satisfied in dependency order without a second list of resources.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3

from devstack.template import ACCOUNT_ID, REGION, Template, TemplateError

LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@cache
def local_client(service: str, endpoint: str) -> Any:
    """A client of the local endpoint (cached: clients are thread-safe and slow to create)."""
    session = boto3.session.Session(region_name=REGION, **LOCAL_CREDENTIALS)  # type: ignore[arg-type]
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


@dataclass
class Physical:
    """What a resource is called locally: its Ref value and its attributes."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


def generate_secret_string(spec: dict[str, Any]) -> str:
    """A value for ``GenerateSecretString``, as Secrets Manager would make it (local only)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded)
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template = spec.get("SecretStringTemplate")
    if template:
        document = json.loads(template)
        document[spec["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


class Provisioner:
    """Creates resources in moto on demand and tells the template their physical ids."""

    SUPPORTED = (
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::SecretsManager::Secret",
        "AWS::SSM::Parameter",
    )

    def __init__(self, template: Template, endpoint: str, api_url: str, max_visibility_timeout: int | None = None) -> None:
        self.template = template
        self.max_visibility_timeout = max_visibility_timeout
        self.endpoint = endpoint
        self.api_url = api_url
        self.physical: dict[str, Physical] = {}
        self._creating: set[str] = set()
        template.resolve_ref = self.ref
        template.resolve_getatt = self.getatt

    def client(self, service: str) -> Any:
        return local_client(service, self.endpoint)

    # ---------------------------------------------------------------- references
    def _physical(self, logical_id: str) -> Physical:
        if logical_id not in self.physical:
            if logical_id not in self.template.resources:
                raise TemplateError(f"no resource named {logical_id}")
            if not self.template.is_enabled(logical_id):
                raise TemplateError(f"{logical_id} is referred to but its condition is false")
            if logical_id in self._creating:
                raise TemplateError(f"circular reference through {logical_id}")
            self._creating.add(logical_id)
            try:
                self.physical[logical_id] = self._create(logical_id, self.template.resources[logical_id])
            finally:
                self._creating.discard(logical_id)
        return self.physical[logical_id]

    def ref(self, logical_id: str) -> str:
        return self._physical(logical_id).ref

    def getatt(self, logical_id: str, attribute: str) -> str:
        physical = self._physical(logical_id)
        if attribute not in physical.attributes:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute} is not supported locally")
        return physical.attributes[attribute]

    def provision_all(self) -> dict[str, Physical]:
        for logical_id in self.template.enabled_resources():
            self._physical(logical_id)
        return self.physical

    # ---------------------------------------------------------------- creation
    def _name(self, logical_id: str) -> str:
        return f"{self.template.stack_name}-{logical_id}"

    def _create(self, logical_id: str, resource: dict[str, Any]) -> Physical:
        kind = resource.get("Type", "")
        if kind == "AWS::Serverless::Function":
            return self._function(logical_id, resource.get("Properties") or {})
        properties = self.template.resolve(resource.get("Properties") or {})
        arn_prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}"
        if kind == "AWS::DynamoDB::Table":
            return self._table(logical_id, properties)
        if kind == "AWS::SQS::Queue":
            return self._queue(logical_id, properties)
        if kind == "AWS::KMS::Key":
            key = self.client("kms").create_key(Description=properties.get("Description", logical_id))["KeyMetadata"]
            return Physical(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})
        if kind == "AWS::KMS::Alias":
            self.client("kms").create_alias(AliasName=properties["AliasName"], TargetKeyId=properties["TargetKeyId"])
            return Physical(properties["AliasName"])
        if kind == "AWS::SecretsManager::Secret":
            return self._secret(logical_id, properties)
        if kind == "AWS::SSM::Parameter":
            name = properties.get("Name") or f"/{self.template.stack_name}/{logical_id}"
            self.client("ssm").put_parameter(
                Name=name, Value=str(properties["Value"]), Type=properties.get("Type", "String"), Overwrite=True
            )
            return Physical(name)
        if kind == "AWS::Serverless::LayerVersion":
            return Physical(arn_prefix.format("lambda") + f":layer:{self._name(logical_id)}:1")
        if kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
            return Physical("local", {"ApiEndpoint": self.api_url, "ApiId": "local"})
        if kind == "AWS::Logs::LogGroup":
            name = properties.get("LogGroupName") or self._name(logical_id)
            return Physical(name, {"Arn": arn_prefix.format("logs") + f":log-group:{name}"})
        # Alarms, topics, roles and the like have no local behaviour: a name is all they need.
        name = self._name(logical_id)
        return Physical(name, {"Arn": arn_prefix.format("local") + f":{name}", "Name": name})

    def _function(self, logical_id: str, properties: dict[str, Any]) -> Physical:
        """A function's name, resolving nothing else: its environment and events are read when it
        runs (Template.functions), and its DeploymentPreference names its errors alarm, whose
        dimensions name the function again (a cycle only on paper: on AWS the deployment group,
        not the function, refers to the alarm)."""
        name = self.template.resolve(properties.get("FunctionName")) or self._name(logical_id)
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        # AutoPublishAlias's version (``!GetAtt Fn.Version.Version``, an errors alarm's
        # ExecutedVersion): locally there is one, the work tree's code, always called directly.
        return Physical(name, {"Arn": arn, "Version.Version": "1"})

    def _table(self, logical_id: str, properties: dict[str, Any]) -> Physical:
        name = properties.get("TableName") or self._name(logical_id)
        dynamodb = self.client("dynamodb")
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if properties.get("GlobalSecondaryIndexes"):
            arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        if properties.get("StreamSpecification"):
            arguments["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        if arguments["BillingMode"] == "PROVISIONED":
            arguments["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
        description = dynamodb.create_table(**arguments)["TableDescription"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True})
        return Physical(name, {"Arn": description["TableArn"], "StreamArn": description.get("LatestStreamArn", "")})

    def _queue(self, logical_id: str, properties: dict[str, Any]) -> Physical:
        name = properties.get("QueueName") or self._name(logical_id) + (".fifo" if properties.get("FifoQueue") else "")
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds"):
            if key in properties:
                attributes[key] = str(properties[key])
        if properties.get("FifoQueue"):
            attributes["FifoQueue"] = "true"
            if properties.get("ContentBasedDeduplication"):
                attributes["ContentBasedDeduplication"] = "true"
        if self.max_visibility_timeout is not None and "VisibilityTimeout" in attributes:
            # Reliability runs shorten the wait before a crashed invocation's message comes back.
            attributes["VisibilityTimeout"] = str(min(int(attributes["VisibilityTimeout"]), self.max_visibility_timeout))
        if "RedrivePolicy" in properties:
            policy = properties["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(policy if isinstance(policy, dict) else json.loads(policy))
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
        return Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _secret(self, logical_id: str, properties: dict[str, Any]) -> Physical:
        name = properties.get("Name") or self._name(logical_id)
        if "SecretString" in properties:
            value = str(properties["SecretString"])
        elif "GenerateSecretString" in properties:
            value = generate_secret_string(properties["GenerateSecretString"])
        else:
            value = secrets.token_urlsafe(32)
        arn = self.client("secretsmanager").create_secret(
            Name=name,
            SecretString=value,
            Description="LOCAL DEVELOPMENT ONLY: generated by devstack. " + str(properties.get("Description", "")),
        )["ARN"]
        return Physical(arn, {"Id": arn})

    def queue_url_for_arn(self, arn: str) -> str:
        for physical in self.physical.values():
            if physical.attributes.get("Arn") == arn and "QueueUrl" in physical.attributes:
                return physical.attributes["QueueUrl"]
        raise TemplateError(f"no local queue has the ARN {arn}")

    def logical_id_for(self, ref: str) -> str:
        for logical_id, physical in self.physical.items():
            if physical.ref == ref or ref in physical.attributes.values():
                return logical_id
        return ref
