"""IAM for the local runtime: every AWS call a function makes is authorised against its own role.

moto does not enforce IAM (its access control ignores ``Resource`` for most services and every
condition operator but ``StringEquals``), and no maintained policy simulator on PyPI evaluates
``ForAllValues:StringLike`` on ``dynamodb:LeadingKeys`` (PMapper's simulator, the closest, is
unmaintained since 2022 and AGPL). So this module is a small evaluator of AWS's documented rules,
run inside the calling process, between botocore's request serialisation and the HTTP send:

* which authorisations a call needs (``requests_for``): the IAM action, the resource ARN and the
  condition keys, read from the serialised request exactly as AWS receives it;
* whether the role's policies allow each of them (``evaluate``): an explicit deny wins over any
  allow, an allow is needed, nothing else is allowed (implicit deny);
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html
* a denied call fails exactly as AWS fails it (``install``): botocore raises ``ClientError`` with
  code ``AccessDeniedException`` and AWS's message naming the principal, action and resource, so
  the function's own error handling runs; the denial is logged as an error with an EMF metric.

This file imports only the standard library at the top (botocore inside ``install``): the Lambda
bootstrap loads it by path, so the function never sees the ``devstack`` package.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import ipaddress
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class PolicyError(Exception):
    """A policy uses something this evaluator does not evaluate (so it refuses to guess)."""


class RequestNotUnderstood(Exception):
    """A call whose resource or condition keys cannot be read from the request."""


# ==================================================================== the request context
@dataclass(frozen=True)
class Request:
    """One authorisation a call needs: AWS checks some calls several times (a transaction, per item)."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.action} on {self.resource}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    # The policy elements that allowed it, as ``grant ids`` (see ``grants_of``).
    used: frozenset[str] = frozenset()


# ==================================================================== matching
@lru_cache(maxsize=4096)
def _action_pattern(pattern: str) -> re.Pattern[str]:
    # Action names are not case sensitive; * is any run of characters, ? any one.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=4096)
def _resource_pattern(pattern: str) -> re.Pattern[str]:
    """An ARN pattern: * and ? stay within one colon-separated segment, except a * that ends a
    segment, which may run past the colons (and a lone * matches every resource).
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html#reference_policies_elements_resource_wildcards"""
    if pattern == "*":
        return re.compile(".*", re.DOTALL)
    out = []
    for i, c in enumerate(pattern):
        if c == "*":
            ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            out.append(".*" if ends_segment else "[^:]*")
        elif c == "?":
            out.append("[^:]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=4096)
def _like_pattern(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    # StringLike: case sensitive, * any run of characters (including none), ? any one character.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), flags)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ==================================================================== condition operators
def _number(text: str) -> float:
    return float(text)


def _date(text: str) -> datetime:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ip(value: str, network: str) -> bool:
    return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)


# name -> (does a request value match a policy value, is the operator negated)
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda v, p: v == p, False),
    "StringNotEquals": (lambda v, p: v == p, True),
    "StringEqualsIgnoreCase": (lambda v, p: v.casefold() == p.casefold(), False),
    "StringNotEqualsIgnoreCase": (lambda v, p: v.casefold() == p.casefold(), True),
    "StringLike": (lambda v, p: _like_pattern(p).fullmatch(v) is not None, False),
    "StringNotLike": (lambda v, p: _like_pattern(p).fullmatch(v) is not None, True),
    "ArnEquals": (lambda v, p: v == p, False),
    "ArnNotEquals": (lambda v, p: v == p, True),
    "ArnLike": (lambda v, p: _resource_pattern(p).fullmatch(v) is not None, False),
    "ArnNotLike": (lambda v, p: _resource_pattern(p).fullmatch(v) is not None, True),
    "NumericEquals": (lambda v, p: _number(v) == _number(p), False),
    "NumericNotEquals": (lambda v, p: _number(v) == _number(p), True),
    "NumericLessThan": (lambda v, p: _number(v) < _number(p), False),
    "NumericLessThanEquals": (lambda v, p: _number(v) <= _number(p), False),
    "NumericGreaterThan": (lambda v, p: _number(v) > _number(p), False),
    "NumericGreaterThanEquals": (lambda v, p: _number(v) >= _number(p), False),
    "DateEquals": (lambda v, p: _date(v) == _date(p), False),
    "DateNotEquals": (lambda v, p: _date(v) == _date(p), True),
    "DateLessThan": (lambda v, p: _date(v) < _date(p), False),
    "DateLessThanEquals": (lambda v, p: _date(v) <= _date(p), False),
    "DateGreaterThan": (lambda v, p: _date(v) > _date(p), False),
    "DateGreaterThanEquals": (lambda v, p: _date(v) >= _date(p), False),
    "Bool": (lambda v, p: v.lower() == p.lower(), False),
    "BinaryEquals": (lambda v, p: v == p, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
}
# Operators whose policy values name what is granted (the coverage check asks whether each was used).
_POSITIVE = {name for name, (_, negated) in _OPERATORS.items() if not negated and not name.startswith(("Numeric", "Date", "Bool"))}


def _split_operator(operator: str) -> tuple[str | None, str, bool]:
    """(set operator or None, base operator, IfExists)."""
    qualifier = None
    for prefix in ("ForAllValues:", "ForAnyValue:"):
        if operator.startswith(prefix):
            qualifier, operator = prefix[:-1], operator[len(prefix) :]
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    if operator != "Null" and operator not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not evaluated locally")
    if operator == "Null" and if_exists:
        # "You can add IfExists to the end of any condition operator name except the Null condition"
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists
        raise PolicyError("NullIfExists is not a condition operator (IfExists cannot qualify Null)")
    return qualifier, operator, if_exists


def _condition(
    operator: str, key: str, policy_values: Sequence[str], context: Mapping[str, tuple[str, ...]], grant: str, used: set[str]
) -> bool:
    """One operator on one key. Policy values are ORed; a missing key fails a positive operator
    and passes a negated one (unless ...IfExists); ForAllValues is true when every request value
    matches (and also when the request has no value at all, an empty set), ForAnyValue when one does.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html"""
    qualifier, base, if_exists = _split_operator(operator)
    request_values = context.get(key.lower())
    if base == "Null":
        # Null: true means "the key is absent (or its value empty)".
        absent = not request_values
        return absent == (policy_values[0].lower() == "true")
    matches, negated = _OPERATORS[base]

    def one(value: str) -> bool:
        hits = [index for index, expected in enumerate(policy_values) if matches(value, expected)]
        if not negated:
            used.update(f"{grant}:{index}" for index in hits)
        return not hits if negated else bool(hits)

    if qualifier == "ForAllValues":
        results = [one(value) for value in request_values or ()]
        return all(results)
    if qualifier == "ForAnyValue":
        results = [one(value) for value in request_values or ()]
        return any(results)
    if not request_values:
        return if_exists or negated
    return one(request_values[0])


# ==================================================================== policies
def statements_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [dict(s) for s in _listed(statements)]


def _statement_applies(statement: Mapping[str, Any], grant: str, request: Request, used: set[str]) -> bool:
    if "Action" in statement:
        hits = [i for i, p in enumerate(_listed(statement["Action"])) if _action_pattern(p).fullmatch(request.action)]
        if not hits:
            return False
        used.update(f"{grant}:Action:{i}" for i in hits)
    elif "NotAction" in statement:
        if any(_action_pattern(p).fullmatch(request.action) for p in _listed(statement["NotAction"])):
            return False
    else:
        raise PolicyError(f"statement {grant} has neither Action nor NotAction")
    if "Resource" in statement:
        hits = [i for i, p in enumerate(_listed(statement["Resource"])) if _resource_pattern(str(p)).fullmatch(request.resource)]
        if not hits:
            return False
        used.update(f"{grant}:Resource:{i}" for i in hits)
    elif "NotResource" in statement:
        if any(_resource_pattern(str(p)).fullmatch(request.resource) for p in _listed(statement["NotResource"])):
            return False
    else:
        raise PolicyError(f"statement {grant} has neither Resource nor NotResource")
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, values in keys.items():
            if not _condition(
                operator, key, [_text(v) for v in _listed(values)], request.context, f"{grant}:Condition:{operator}:{key}", used
            ):
                return False
    return True


def evaluate(policies: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    """Identity-based policies of one role, within one account: any matching Deny statement denies;
    otherwise a matching Allow allows; otherwise the request is implicitly denied.
    ``policies`` are ``{"name": ..., "document": {...}}``."""
    allowed_by: set[str] = set()
    allowed = False
    for policy in policies:
        for index, statement in enumerate(statements_of(policy["document"])):
            grant = f"{policy['name']}#{index}"
            used: set[str] = set()
            if not _statement_applies(statement, grant, request, used):
                continue
            if statement.get("Effect") == "Deny":
                return Decision(False, explicit_deny=True)
            if statement.get("Effect") != "Allow":
                raise PolicyError(f"statement {grant} has Effect {statement.get('Effect')!r}")
            allowed = True
            allowed_by.update(used)
    return Decision(allowed, used=frozenset(allowed_by))


def grants_of(policies: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Every element of every Allow statement that grants something, by grant id, with the
    statement's Sid (or "") as its value: each Action, each Resource and each value of a
    positive condition operator. The coverage check asks which of them a test run used."""
    grants: dict[str, str] = {}
    for policy in policies:
        for index, statement in enumerate(statements_of(policy["document"])):
            if statement.get("Effect") != "Allow":
                continue
            grant, sid = f"{policy['name']}#{index}", str(statement.get("Sid", ""))
            for element in ("Action", "Resource"):
                for i, _ in enumerate(_listed(statement.get(element, []))):
                    grants[f"{grant}:{element}:{i}"] = sid
            for operator, keys in (statement.get("Condition") or {}).items():
                _, base, _ = _split_operator(operator)
                if base not in _POSITIVE:
                    continue
                for key, values in keys.items():
                    for i, _ in enumerate(_listed(values)):
                        grants[f"{grant}:Condition:{operator}:{key}:{i}"] = sid
    return grants


# Condition keys this module puts in the request context; an Allow conditioned on any other key
# would be evaluated against a missing key, so a policy naming one is refused, not guessed at.
SUPPORTED_KEYS = (
    "dynamodb:LeadingKeys",
    "dynamodb:ReturnValues",
    "dynamodb:Select",
    "dynamodb:EnclosingOperation",
    "kms:EncryptionContextKeys",
    "kms:EncryptionContext:*",
)


def check_supported(policies: Sequence[Mapping[str, Any]]) -> None:
    for policy in policies:
        for statement in statements_of(policy["document"]):
            for operator, keys in (statement.get("Condition") or {}).items():
                _split_operator(operator)
                for key in keys:
                    if not any(_like_pattern(k, ignore_case=True).fullmatch(key) for k in SUPPORTED_KEYS):
                        raise PolicyError(f"{policy['name']}: condition key {key} is not evaluated by the local runtime")


# ==================================================================== the identity of a function
@dataclass
class Identity:
    """A function's role as the local runtime enforces it."""

    function: str  # logical id
    function_name: str  # physical name, the assumed-role session name
    role_arn: str
    policies: list[dict[str, Any]]  # [{"name", "document", "managed"}]
    # physical table name -> {"partition_key": name, "indexes": {index name: its partition key}}
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # KMS alias name -> key ARN
    region: str = "us-east-1"
    account: str = "123456789012"
    source: str = ""  # the template the policies come from, for the coverage check

    @property
    def principal(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{self.function_name}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Identity:
        return cls(**json.loads(text))


# ==================================================================== from an AWS call to requests
def _scalar(attribute: Mapping[str, Any]) -> str:
    """A key attribute's value as IAM sees it (S, N or B)."""
    for kind in ("S", "N", "B"):
        if kind in attribute:
            return str(attribute[kind])
    raise RequestNotUnderstood(f"key attribute {attribute!r} is not a string, number or binary")


class _Mapper:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.arn_prefix = f"{identity.region}:{identity.account}"

    # ---------------------------------------------------------------- DynamoDB
    # Actions per operation, resources and condition keys:
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
    def _table_arn(self, name: str, index: str | None = None) -> str:
        base = name if name.startswith("arn:") else f"arn:aws:dynamodb:{self.arn_prefix}:table/{name}"
        return f"{base}/index/{index}" if index else base

    def _schema(self, table: str) -> dict[str, Any]:
        name = table.rsplit("/", 1)[-1] if table.startswith("arn:") else table
        schema = self.identity.tables.get(name)
        if schema is None:
            raise RequestNotUnderstood(f"table {name} is not declared in the template, so its key schema is unknown")
        return schema

    def _leading(self, table: str, key: Mapping[str, Any]) -> str:
        partition_key = self._schema(table)["partition_key"]
        if partition_key not in key:
            raise RequestNotUnderstood(f"the request names no {partition_key} for table {table}")
        return _scalar(key[partition_key])

    def _item_request(self, action: str, params: Mapping[str, Any], enclosing: str | None = None) -> Request:
        table = str(params["TableName"])
        key = params.get("Key") or params.get("Item") or {}
        context: dict[str, tuple[str, ...]] = {"dynamodb:leadingkeys": (self._leading(table, key),)}
        if action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem") and enclosing is None:
            context["dynamodb:returnvalues"] = (str(params.get("ReturnValues", "NONE")),)
        if enclosing:
            context["dynamodb:enclosingoperation"] = (enclosing,)
        return Request(action, self._table_arn(table), context)

    def _query_leading(self, params: Mapping[str, Any]) -> str:
        """The partition key value a Query names: the one value it can be authorised by before any
        item is read. On an index that is the index's partition key, whose value the request names
        (the resource is then ``table/NAME/index/INDEX``)."""
        table, index = str(params["TableName"]), params.get("IndexName")
        schema = self._schema(table)
        partition_key = schema["indexes"].get(index) if index else schema["partition_key"]
        if partition_key is None:
            raise RequestNotUnderstood(f"index {index} of {table} is not declared in the template")
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        expression = str(params.get("KeyConditionExpression") or "")
        for left, right in re.findall(r"([#:\w.]+)\s*=\s*([#:\w.]+)", expression):
            for name, placeholder in ((left, right), (right, left)):
                if names.get(name, name) == partition_key and placeholder in values:
                    return _scalar(values[placeholder])
        for name, condition in (params.get("KeyConditions") or {}).items():
            if name == partition_key and condition.get("ComparisonOperator") == "EQ":
                return _scalar(condition["AttributeValueList"][0])
        raise RequestNotUnderstood(f"cannot read the {partition_key} value of the Query's key condition {expression!r}")

    def dynamodb(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        action = f"dynamodb:{operation}"
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            return [self._item_request(action, params)]
        if operation == "Query":
            context = {
                "dynamodb:leadingkeys": (self._query_leading(params),),
                "dynamodb:select": (str(params.get("Select", "ALL_ATTRIBUTES")),),
            }
            return [Request(action, self._table_arn(str(params["TableName"]), params.get("IndexName")), context)]
        if operation == "Scan":
            # No leading key: a Scan reads every partition, which is why no policy here grants it.
            context = {"dynamodb:select": (str(params.get("Select", "ALL_ATTRIBUTES")),)}
            return [Request(action, self._table_arn(str(params["TableName"]), params.get("IndexName")), context)]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            # One authorisation per table, with every partition key value the batch names there.
            requests = []
            for table, entry in (params.get("RequestItems") or {}).items():
                if operation == "BatchGetItem":
                    keys = list(entry.get("Keys", []))
                else:
                    keys = [w["PutRequest"]["Item"] if "PutRequest" in w else w["DeleteRequest"]["Key"] for w in entry]
                leading = tuple(dict.fromkeys(self._leading(table, key) for key in keys))
                requests.append(Request(action, self._table_arn(table), {"dynamodb:leadingkeys": leading}))
            return requests
        if operation in ("TransactWriteItems", "TransactGetItems"):
            # "Permissions for Put, Update, Delete, and Get actions are governed by the permissions
            # used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations. For
            # the ConditionCheck action, you can use the dynamodb:ConditionCheckItem permission."
            # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
            # ReturnValuesOnConditionCheckFailure needs nothing more: the write's own permission
            # covers what it returns, as for ReturnValues on a single write.
            kinds = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
                "Get": "GetItem",
            }
            requests = []
            for entry in params.get("TransactItems", []):
                ((kind, item),) = entry.items()
                requests.append(self._item_request(f"dynamodb:{kinds[kind]}", item, enclosing=operation))
            return requests
        table = params.get("TableName")
        return [Request(action, self._table_arn(str(table)) if table else "*")]

    # ---------------------------------------------------------------- DynamoDB Streams
    # The streams API's calls are dynamodb: actions on the stream's ARN, ListStreams on "*":
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
    # GetRecords names only a shard iterator, which begins with its stream's ARN up to the first
    # "|" (on AWS as in moto).
    def streams_dynamodb(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        action = f"dynamodb:{operation}"
        if "StreamArn" in params:
            return [Request(action, str(params["StreamArn"]))]
        if "ShardIterator" in params:
            stream_arn = str(params["ShardIterator"]).split("|", 1)[0]
            if not stream_arn.startswith("arn:aws:dynamodb:") or "/stream/" not in stream_arn:
                raise RequestNotUnderstood("the shard iterator does not begin with its stream's ARN")
            return [Request(action, stream_arn)]
        return [Request(action, "*")]

    # ---------------------------------------------------------------- SQS
    # The batch operations are authorised as their single forms (sqs:SendMessage etc.):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html
    _SQS_BATCHES = {
        "SendMessageBatch": "SendMessage",
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    }

    def sqs(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        action = "sqs:" + self._SQS_BATCHES.get(operation, operation)
        if "QueueUrl" in params:
            parts = urlsplit(str(params["QueueUrl"])).path.strip("/").split("/")
            if len(parts) < 2:
                raise RequestNotUnderstood(f"queue URL {params['QueueUrl']} names no account and queue")
            return [Request(action, f"arn:aws:sqs:{self.identity.region}:{parts[-2]}:{parts[-1]}")]
        if "QueueName" in params:
            owner = params.get("QueueOwnerAWSAccountId", self.identity.account)
            return [Request(action, f"arn:aws:sqs:{self.identity.region}:{owner}:{params['QueueName']}")]
        return [Request(action, "*")]

    # ---------------------------------------------------------------- KMS
    def _key_arn(self, key_id: str) -> str:
        if key_id.startswith("arn:"):
            return key_id
        if key_id.startswith("alias/"):
            return self.identity.aliases.get(key_id, f"arn:aws:kms:{self.arn_prefix}:{key_id}")
        return f"arn:aws:kms:{self.arn_prefix}:key/{key_id}"

    def kms(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        if "KeyId" in params:
            resource = self._key_arn(str(params["KeyId"]))
        elif "CiphertextBlob" in params:
            # A symmetric ciphertext carries the id of the key that made it; moto's starts with it.
            blob = base64.b64decode(params["CiphertextBlob"])
            key_id = blob[:36].decode("ascii", "replace")
            if not re.fullmatch(r"[0-9a-f-]{36}", key_id):
                raise RequestNotUnderstood("cannot read the key id of the ciphertext")
            resource = self._key_arn(key_id)
        else:
            resource = "*"
        context: dict[str, tuple[str, ...]] = {}
        encryption_context = params.get("EncryptionContext") or {}
        if encryption_context:
            context["kms:encryptioncontextkeys"] = tuple(encryption_context)
            for name, value in encryption_context.items():
                context[f"kms:encryptioncontext:{name}".lower()] = (str(value),)
        return [Request(f"kms:{operation}", resource, context)]

    # ---------------------------------------------------------------- Secrets Manager, SSM
    def secretsmanager(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        secret_id = str(params.get("SecretId", "*"))
        if not secret_id.startswith(("arn:", "*")):
            secret_id = f"arn:aws:secretsmanager:{self.arn_prefix}:secret:{secret_id}"
        return [Request(f"secretsmanager:{operation}", secret_id)]

    def ssm(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        names = [params["Name"]] if "Name" in params else list(params.get("Names", [])) or [params.get("Path", "*")]
        return [
            Request(f"ssm:{operation}", "*" if n == "*" else f"arn:aws:ssm:{self.arn_prefix}:parameter/{str(n).lstrip('/')}") for n in names
        ]


# IAM's service prefix where it differs from the endpoint prefix botocore names.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}


def requests_for(identity: Identity, service: str, operation: str, params: Mapping[str, Any]) -> list[Request]:
    """The authorisations an AWS call needs, from its serialised parameters (wire format)."""
    mapper = _Mapper(identity)
    handler = getattr(mapper, service.replace("-", "_").replace(".", "_"), None)
    if handler is not None and service in ("dynamodb", "streams.dynamodb", "sqs", "kms", "secretsmanager", "ssm"):
        result: list[Request] = handler(operation, params)
        return result
    return [Request(f"{_IAM_PREFIX.get(service, service)}:{operation}", "*")]


# ==================================================================== what a function's calls did
class Ledger:
    """What one identity's calls were allowed by (grant ids, counted) and which were denied."""

    MAX_DENIALS_KEPT = 50

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.used: Counter[str] = Counter()
        self.denied: list[dict[str, Any]] = []
        self.denied_calls = 0

    def allowed(self, decision: Decision) -> None:
        with self._lock:
            self.used.update(decision.used)

    def deny(self, denial: dict[str, Any]) -> None:
        with self._lock:
            self.denied_calls += 1
            if len(self.denied) < self.MAX_DENIALS_KEPT:
                self.denied.append(denial)

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain (the bootstrap reports it per invocation)."""
        with self._lock:
            report = {"used": dict(self.used), "denied": list(self.denied), "denied_calls": self.denied_calls}
            self.used.clear()
            self.denied.clear()
            self.denied_calls = 0
        return report

    def merge(self, report: Mapping[str, Any]) -> None:
        with self._lock:
            self.used.update(report.get("used", {}))
            self.denied_calls += int(report.get("denied_calls", 0))
            room = self.MAX_DENIALS_KEPT - len(self.denied)
            self.denied.extend(list(report.get("denied", []))[: max(0, room)])


def denial_message(identity: Identity, request: Request, explicit: bool) -> str:
    """AWS's wording of an AccessDeniedException for an identity-based policy decision."""
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {request.action} action"
    )
    return f"User: {identity.principal} is not authorized to perform: {request.action} on resource: {request.resource} {why}"


def authorize(identity: Identity, service: str, operation: str, params: Mapping[str, Any]) -> tuple[Request, str] | None:
    """None when every authorisation the call needs is allowed; else the first denied one and AWS's
    message. Calls whose resource cannot be read are denied too, with the reason."""
    if f"{service}:{operation}" == "sts:GetCallerIdentity":
        return None  # AWS allows it whatever the policies say
    try:
        requests = requests_for(identity, service, operation, params)
    except (RequestNotUnderstood, KeyError, ValueError) as error:
        request = Request(f"{service}:{operation}", "?")
        return request, f"devstack could not authorise {service}:{operation} ({error}); treat it as denied"
    decisions = []
    for request in requests:
        decision = evaluate(identity.policies, request)
        if not decision.allowed:
            return request, denial_message(identity, request, decision.explicit_deny)
        decisions.append(decision)
    ledger = LEDGERS.get(identity)
    for decision in decisions:
        ledger.allowed(decision)
    _trace(identity, requests)
    return None


_TRACE_LOCK = threading.Lock()
# Read once: in-process tests run each handler with os.environ set to exactly its template's.
_TRACE_PATH = os.environ.get("DEVSTACK_IAM_TRACE")


def _trace(identity: Identity, requests: Sequence[Request]) -> None:
    """With ``DEVSTACK_IAM_TRACE`` naming a file, every allowed authorisation is appended to it as
    a JSON line: what a function really does, to write its policy from."""
    path = _TRACE_PATH
    if not path:
        return
    lines = [
        json.dumps({"function": identity.function, "action": r.action, "resource": r.resource, "context": dict(r.context)})
        for r in requests
    ]
    with _TRACE_LOCK, open(path, "a", encoding="utf-8") as trace:
        trace.write("\n".join(lines) + "\n")


class _Ledgers:
    """One ledger per identity (by function and template) in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], tuple[Identity, Ledger]] = {}

    def get(self, identity: Identity) -> Ledger:
        key = (identity.source, identity.function)
        with self._lock:
            if key not in self._by_key:
                self._by_key[key] = (identity, Ledger())
            return self._by_key[key][1]

    def items(self) -> list[tuple[Identity, Ledger]]:
        with self._lock:
            return list(self._by_key.values())


LEDGERS = _Ledgers()


# ==================================================================== enforcement in botocore
_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("devstack_iam_identity", default=None)
_PROCESS_IDENTITY: list[Identity] = []  # the identity of a whole process (a function's own process)
_INSTALLED = threading.Lock()
_installed: list[bool] = []


def current_identity() -> Identity | None:
    identity = _CURRENT.get()
    if identity is None and _PROCESS_IDENTITY:
        return _PROCESS_IDENTITY[0]
    return identity


@contextlib.contextmanager
def acting_as(identity: Identity | None) -> Iterator[None]:
    """Calls made in this context (this thread, or task) are authorised as ``identity``."""
    token = _CURRENT.set(identity)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def run_as_process(identity: Identity) -> None:
    """Every call of this process is ``identity``'s (a function's own process)."""
    _PROCESS_IDENTITY[:] = [identity]


def carry_identity_into_thread_pools() -> None:
    """In a process that runs several functions (the in-process tests), a thread pool's tasks
    run as the identity that submitted them, as they would in the function's own process."""
    from concurrent.futures import ThreadPoolExecutor

    if getattr(ThreadPoolExecutor.submit, "_devstack_iam", False):
        return
    submit = ThreadPoolExecutor.submit

    def submit_as_caller(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    submit_as_caller._devstack_iam = True  # type: ignore[attr-defined]
    ThreadPoolExecutor.submit = submit_as_caller  # type: ignore[method-assign]


def _log_denial(identity: Identity, request: Request, message: str) -> dict[str, Any]:
    """An ERROR log line that is also a CloudWatch embedded-metric document (metric AccessDenied)."""
    denial = {"function": identity.function, "action": request.action, "resource": request.resource, "message": message}
    line = {
        "level": "ERROR",
        "location": "devstack.iam",
        "message": "AWS call denied by the function's IAM policy",
        "timestamp": datetime.now(UTC).isoformat(),
        **denial,
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": "Payrail", "Dimensions": [["function"]], "Metrics": [{"Name": "AccessDenied", "Unit": "Count"}]}
            ],
        },
        "AccessDenied": 1,
    }
    print(json.dumps(line), file=sys.stdout, flush=True)
    return denial


def _params(request_dict: Mapping[str, Any]) -> dict[str, Any]:
    body = request_dict.get("body")
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if not body:
        return dict(parse_qsl(str(request_dict.get("query_string") or "")))
    text = str(body)
    try:
        parsed = json.loads(text)
    except ValueError:
        return dict(parse_qsl(text))
    return parsed if isinstance(parsed, dict) else {}


def install() -> None:
    """Authorise every botocore call made while an identity is current (idempotent).

    Hooked in ``BaseClient._make_request``, after botocore has serialised the request (so boto3's
    resource layer and expressions are already in wire form) and before anything is sent; a denied
    call never reaches the service and gets AWS's 400 ``AccessDeniedException`` answer instead."""
    with _INSTALLED:
        if _installed:
            return
        from botocore.awsrequest import AWSResponse, HTTPHeaders
        from botocore.client import BaseClient

        original = BaseClient._make_request  # type: ignore[attr-defined]

        def authorised(self: Any, operation_model: Any, request_dict: Any, request_context: Any) -> Any:
            identity = current_identity()
            if identity is None:
                return original(self, operation_model, request_dict, request_context)
            service = self.meta.service_model.endpoint_prefix
            denied = authorize(identity, service, operation_model.name, _params(request_dict))
            if denied is None:
                return original(self, operation_model, request_dict, request_context)
            request, message = denied
            LEDGERS.get(identity).deny(_log_denial(identity, request, message))
            request_id = str(uuid.uuid4())
            body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
            headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(body))}
            http = AWSResponse(str(request_dict.get("url", "")), 400, HTTPHeaders.from_dict(headers), None)
            http._content = body  # type: ignore[attr-defined]
            parsed = {
                "Error": {"Code": "AccessDeniedException", "Message": message},
                "message": message,
                "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": 400, "HTTPHeaders": headers, "RetryAttempts": 0},
            }
            return http, parsed

        BaseClient._make_request = authorised  # type: ignore[attr-defined]
        _installed.append(True)


# ==================================================================== usage records, for the coverage check
def write_usage(folder: Path, kind: str, records: Sequence[Mapping[str, Any]]) -> Path:
    """One file of ``{"source", "function", "used", "denied_calls", "denied"}`` records."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(list(records)))
    return path


def ledger_records() -> list[dict[str, Any]]:
    """This process's ledgers as usage records (the in-process tests' own)."""
    return [{"source": identity.source, "function": identity.function, **ledger.drain()} for identity, ledger in LEDGERS.items()]
