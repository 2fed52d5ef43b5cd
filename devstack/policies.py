"""Each function's IAM role, as CloudFormation creates it from template.yaml, for the local runtime.

The SAM transform (``devstack.cloudformation.expand``) gives every function its ``AWS::IAM::Role``:
its inline policies (SAM policy templates expanded into statements) and its managed policy ARNs
(AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess, and AWSLambdaSQSQueueExecutionRole for an
SQS consumer). The inline policies are resolved against the running stack's resources (table,
queue, key and secret ARNs); the managed ones are AWS's own documents as moto ships them.
The expansion is cached per template and parameters, so a test run pays for it once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from devstack.cloudformation import expand
from devstack.iam import Identity, PolicyError, check_supported
from devstack.template import ACCOUNT_ID, REGION, Template, TemplateError

METADATA_KEY = "PayrailIam"


@cache
def _managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


def managed_policy(arn: str) -> dict[str, Any]:
    """The document of an AWS managed policy, by ARN (from moto's copy of AWS's documents)."""
    name = arn.rsplit("/", 1)[-1]
    entry = _managed_policies().get(name)
    if entry is None:
        raise TemplateError(f"managed policy {arn} is not known locally")
    document: dict[str, Any] = entry["Document"]
    return document


_EXPANDED: dict[str, dict[str, Any]] = {}


def _override_text(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def expanded(template: Template) -> dict[str, Any]:
    """The SAM expansion of ``template``'s document with its parameter values (cached)."""
    parameters = {name: _override_text(value) for name, value in template.parameters.items()}
    digest = hashlib.sha256(json.dumps([template.document, parameters], sort_keys=True, default=str).encode()).hexdigest()
    if digest not in _EXPANDED:
        _EXPANDED[digest] = expand(template.document, parameters)
    return _EXPANDED[digest]


def _table_schemas(template: Template) -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template.enabled_resources("AWS::DynamoDB::Table").items():
        properties = resource.get("Properties") or {}

        def hash_key(key_schema: list[dict[str, Any]]) -> str:
            return str(next(k["AttributeName"] for k in key_schema if k["KeyType"] == "HASH"))

        indexes = {
            str(index["IndexName"]): hash_key(index["KeySchema"])
            for index in (properties.get("GlobalSecondaryIndexes") or []) + (properties.get("LocalSecondaryIndexes") or [])
        }
        schemas[str(template.resolve_ref(logical_id))] = {"partition_key": hash_key(properties["KeySchema"]), "indexes": indexes}
    return schemas


def _aliases(template: Template) -> dict[str, str]:
    aliases = {}
    for resource in template.enabled_resources("AWS::KMS::Alias").values():
        properties = template.resolve(resource.get("Properties") or {})
        target = str(properties["TargetKeyId"])
        aliases[str(properties["AliasName"])] = target if target.startswith("arn:") else f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{target}"
    return aliases


def identities(
    template: Template,
    source: str | None = None,
    function_name: Callable[[str], str] | None = None,
) -> dict[str, Identity]:
    """Every enabled function's identity, its policies resolved with ``template``'s resolvers
    (a stack's Provisioner gives the local ARNs). ``source`` names the template in the coverage
    check's records (default: its path)."""
    document = expanded(template)
    overrides = {name: _override_text(value) for name, value in template.parameters.items()}
    roles = Template(template.path, overrides, template.stack_name, document=document)
    roles.resolve_ref = template.resolve_ref
    roles.resolve_getatt = template.resolve_getatt
    tables, aliases = _table_schemas(template), _aliases(template)
    result: dict[str, Identity] = {}
    for logical_id in template.enabled_resources("AWS::Serverless::Function"):
        function = document["Resources"].get(logical_id) or {}
        role_ref = (function.get("Properties") or {}).get("Role")
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise TemplateError(f"{logical_id} names an existing role; the local runtime can only enforce a role the template creates")
        role_id = role_ref["Fn::GetAtt"][0]
        properties = roles.resolve(document["Resources"][role_id].get("Properties") or {})
        if properties.get("PermissionsBoundary"):
            raise TemplateError(f"{logical_id}: permissions boundaries are not enforced locally")
        policies: list[dict[str, Any]] = [
            {"name": str(p["PolicyName"]), "document": p["PolicyDocument"], "managed": False} for p in properties.get("Policies") or []
        ]
        policies += [
            {"name": str(arn).rsplit("/", 1)[-1], "document": managed_policy(str(arn)), "managed": True}
            for arn in properties.get("ManagedPolicyArns") or []
        ]
        try:
            check_supported(policies)
        except PolicyError as error:
            raise TemplateError(f"{logical_id}: {error}") from error
        name = function_name(logical_id) if function_name else str(template.resolve_ref(logical_id))
        result[logical_id] = Identity(
            function=logical_id,
            function_name=name,
            role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{template.stack_name}-{role_id}",
            policies=policies,
            tables=tables,
            aliases=aliases,
            region=REGION,
            account=ACCOUNT_ID,
            source=source if source is not None else str(template.path),
        )
    return result


def not_called_by_code(template: Template, logical_id: str) -> dict[str, str]:
    """What the template says a function is granted but its code never calls, and why: the
    top-level ``Metadata.PayrailIam.NotCalledByCode`` (every function) plus the function's own.
    Keys are action patterns (``logs:*``) or statement Sids."""
    reasons: dict[str, str] = {}
    for metadata in (template.document.get("Metadata"), template.resources.get(logical_id, {}).get("Metadata")):
        section: Mapping[str, Any] = ((metadata or {}).get(METADATA_KEY) or {}).get("NotCalledByCode") or {}
        reasons.update({str(k): str(v) for k, v in section.items()})
    return reasons
