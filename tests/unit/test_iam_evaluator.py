"""devstack.iam's policy evaluator, checked against AWS's documented evaluation rules.

Each group cites the AWS page whose rule it checks. Request contexts are keyed in lower case, as the
request mapper in devstack.iam builds them (context key names are not case sensitive)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.iam import PolicyError, Request, check_supported, evaluate, grants_of

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payouts"
INDEX = f"{TABLE}/index/by-status"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
Context = dict[str, tuple[str, ...]]


def policy(*statements: dict[str, Any], name: str = "role") -> dict[str, Any]:
    return {"name": name, "document": {"Version": "2012-10-17", "Statement": list(statements)}}


def allow(action: Any = "dynamodb:GetItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "dynamodb:GetItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def passes(condition: dict[str, Any], context: Context | None = None) -> bool:
    """Whether a GetItem on TABLE is allowed by one Allow statement carrying ``condition``."""
    return evaluate([policy(allow(Condition=condition))], Request("dynamodb:GetItem", TABLE, context or {})).allowed


# ---------------------------------------------------------------- deny / allow
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html
def test_nothing_applicable_is_an_implicit_deny() -> None:
    for policies in ([], [policy()], [policy(allow("dynamodb:PutItem"))]):
        decision = evaluate(policies, Request("dynamodb:GetItem", TABLE))
        assert (decision.allowed, decision.explicit_deny, decision.used) == (False, False, frozenset())


def test_an_applicable_allow_allows() -> None:
    decision = evaluate([policy(allow())], Request("dynamodb:GetItem", TABLE))
    assert (decision.allowed, decision.explicit_deny) == (True, False)


@pytest.mark.parametrize("deny_first", [True, False])
def test_an_explicit_deny_in_another_policy_beats_an_allow(deny_first: bool) -> None:
    policies = [policy(allow("dynamodb:*", "*"), name="grant"), policy(deny(), name="guard")]
    decision = evaluate(policies[::-1] if deny_first else policies, Request("dynamodb:GetItem", TABLE))
    assert (decision.allowed, decision.explicit_deny, decision.used) == (False, True, frozenset())
    # A Deny that does not apply to the request changes nothing.
    assert evaluate(policies, Request("dynamodb:PutItem", TABLE)).allowed


# ---------------------------------------------------------------- Action, Resource, NotAction, NotResource
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("dynamodb:Get*", "dynamodb:GetItem", True),
        ("dynamodb:Get*", "dynamodb:BatchGetItem", False),
        ("dynamodb:Get*", "dynamodb:PutItem", False),
        ("dynamodb:?etItem", "dynamodb:GetItem", True),
        ("dynamodb:?etItem", "dynamodb:PutItem", False),
        ("dynamodb:GetItem?", "dynamodb:GetItem", False),  # ? is exactly one character
        ("DynamoDB:getitem", "dynamodb:GetItem", True),  # action names are not case sensitive
        ("dynamodb:GetItem", "dynamodb:GetItems", False),  # the whole name must match
        ("dynamodb:*", "kms:Decrypt", False),
        ("*", "kms:Decrypt", True),
    ],
)
def test_action_wildcards_and_case(pattern: str, action: str, expected: bool) -> None:
    assert evaluate([policy(allow(pattern, "*"))], Request(action, TABLE)).allowed is expected


# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html#reference_policies_elements_resource_wildcards
@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        (f"{TABLE}/index/*", INDEX, True),
        (f"{TABLE}/index/*", TABLE, False),
        (TABLE, INDEX, False),  # a table's ARN does not cover its indexes
        ("*", INDEX, True),
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/*", INDEX, True),  # * runs over "/"
        (f"arn:aws:dynamodb:*:{ACCOUNT}:table/payouts", TABLE, True),
        (f"arn:aws:dynamodb:*-1:{ACCOUNT}:table/payouts", TABLE, True),
        ("arn:aws:*:table/payouts", TABLE, True),  # a * ending a segment may run past colons
        ("arn:aws:dynamodb*2:table/payouts", TABLE, False),  # one inside a segment may not
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payouts-v?", f"{TABLE}-v2", True),
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payouts-v?", f"{TABLE}-v10", False),
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Payouts", TABLE, False),  # ARNs are case sensitive
    ],
)
def test_resource_arn_wildcards(pattern: str, resource: str, expected: bool) -> None:
    assert evaluate([policy(allow("dynamodb:Query", pattern))], Request("dynamodb:Query", resource)).allowed is expected


# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
def test_not_action_allows_or_denies_everything_but_the_listed_actions() -> None:
    allow_all_but_delete = [policy({"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": TABLE})]
    assert evaluate(allow_all_but_delete, Request("dynamodb:GetItem", TABLE)).allowed
    refused = evaluate(allow_all_but_delete, Request("dynamodb:DeleteItem", TABLE))
    assert (refused.allowed, refused.explicit_deny) == (False, False)
    deny_all_but_reads = [
        policy(allow("dynamodb:*", "*"), {"Effect": "Deny", "NotAction": ["dynamodb:Get*", "dynamodb:Query"], "Resource": "*"})
    ]
    assert evaluate(deny_all_but_reads, Request("dynamodb:Query", TABLE)).allowed
    assert evaluate(deny_all_but_reads, Request("dynamodb:PutItem", TABLE)).explicit_deny


# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html
def test_not_resource_allows_or_denies_every_resource_but_the_listed_ones() -> None:
    table_not_indexes = [policy({"Effect": "Allow", "Action": "dynamodb:Query", "NotResource": f"{TABLE}/index/*"})]
    assert evaluate(table_not_indexes, Request("dynamodb:Query", TABLE)).allowed
    assert not evaluate(table_not_indexes, Request("dynamodb:Query", INDEX)).allowed
    only_payouts = [policy(allow("dynamodb:*", "*"), {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": [TABLE, f"{TABLE}/*"]})]
    assert evaluate(only_payouts, Request("dynamodb:Query", INDEX)).allowed
    assert evaluate(only_payouts, Request("dynamodb:Query", TABLE.replace("payouts", "ledger"))).explicit_deny


# ---------------------------------------------------------------- condition operators
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
# (a missing key fails a positive operator and passes a negated one, except ...IfExists and Null)
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
# (values of one key are ORed, NORed for a negated operator; keys and operators are ANDed)
SELECT, RETURN_VALUES = "dynamodb:select", "dynamodb:returnvalues"


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"dynamodb:Select": "COUNT"}}, {SELECT: ("COUNT",)}, True),
        ({"StringEquals": {"dynamodb:Select": "COUNT"}}, {SELECT: ("count",)}, False),  # values are case sensitive
        ({"StringEquals": {"dynamodb:Select": "COUNT"}}, {}, False),
        ({"StringEquals": {"dynamodb:Select": ["COUNT", "SPECIFIC_ATTRIBUTES"]}}, {SELECT: ("SPECIFIC_ATTRIBUTES",)}, True),
        ({"StringEquals": {"DynamoDB:SELECT": "COUNT"}}, {SELECT: ("COUNT",)}, True),  # key names are not
        ({"StringEqualsIgnoreCase": {"dynamodb:Select": "COUNT"}}, {SELECT: ("count",)}, True),
        ({"StringEqualsIgnoreCase": {"dynamodb:Select": "COUNT"}}, {SELECT: ("ALL_ATTRIBUTES",)}, False),
        ({"StringLike": {"dynamodb:Select": "ALL_*"}}, {SELECT: ("ALL_PROJECTED_ATTRIBUTES",)}, True),
        ({"StringLike": {"dynamodb:Select": "ALL_*"}}, {SELECT: ("all_attributes",)}, False),
        ({"StringLike": {"dynamodb:Select": "COUN?"}}, {SELECT: ("COUNT",)}, True),
        ({"StringLike": {"dynamodb:Select": "COUN?"}}, {SELECT: ("COUNTS",)}, False),
        ({"StringNotEquals": {"dynamodb:ReturnValues": ["ALL_OLD", "ALL_NEW"]}}, {RETURN_VALUES: ("NONE",)}, True),
        ({"StringNotEquals": {"dynamodb:ReturnValues": ["ALL_OLD", "ALL_NEW"]}}, {RETURN_VALUES: ("ALL_NEW",)}, False),
        ({"StringNotEquals": {"dynamodb:ReturnValues": "ALL_OLD"}}, {}, True),
        ({"StringNotLike": {"dynamodb:ReturnValues": "ALL_*"}}, {}, True),
        # ...IfExists: a missing key passes, a present one is checked as usual.
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}, {}, True),
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}, {RETURN_VALUES: ("NONE",)}, True),
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}, {RETURN_VALUES: ("ALL_OLD",)}, False),
        # Null: true means the key is absent, false that it is present.
        ({"Null": {"dynamodb:Select": "true"}}, {}, True),
        ({"Null": {"dynamodb:Select": True}}, {}, True),
        ({"Null": {"dynamodb:Select": "true"}}, {SELECT: ("COUNT",)}, False),
        ({"Null": {"dynamodb:Select": "false"}}, {SELECT: ("COUNT",)}, True),
        ({"Null": {"dynamodb:Select": "false"}}, {}, False),
    ],
)
def test_condition_operators(condition: dict[str, Any], context: Context, expected: bool) -> None:
    assert passes(condition, context) is expected


@pytest.mark.parametrize(
    ("select", "return_values", "expected"),
    [("COUNT", "NONE", True), ("COUNT", "ALL_OLD", False), ("ALL_ATTRIBUTES", "NONE", False)],
)
def test_several_keys_and_several_operators_must_all_hold(select: str, return_values: str, expected: bool) -> None:
    context = {SELECT: (select,), RETURN_VALUES: (return_values,)}
    one_operator = {"StringEquals": {"dynamodb:Select": "COUNT", "dynamodb:ReturnValues": "NONE"}}
    two_operators = {"StringEquals": {"dynamodb:Select": "COUNT"}, "StringNotEquals": {"dynamodb:ReturnValues": "ALL_OLD"}}
    assert passes(one_operator, context) is expected
    assert passes(two_operators, context) is (select == "COUNT" and return_values != "ALL_OLD")


# ---------------------------------------------------------------- multivalued keys: ForAllValues, ForAnyValue
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
# (ForAllValues: every request value matches one policy value, and true when the request has no
# value; ForAnyValue: at least one request value matches, so false when it has none)
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
LEADING = "dynamodb:leadingkeys"
PREFIXES = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["PAYOUT#*", "BATCH#*"]}}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (("PAYOUT#po_1",), True),
        (("PAYOUT#po_1", "BATCH#b_7"), True),  # a BatchGetItem naming several partitions
        (("LEDGER#acct_1",), False),
        (("PAYOUT#po_1", "LEDGER#acct_1"), False),  # one key outside the prefixes refuses the batch
        (("payout#po_1",), False),
        ((), True),  # the empty set: documented as true
        (None, True),  # no key at all (a Scan): documented as true too
    ],
)
def test_for_all_values_string_like_on_leading_keys(keys: tuple[str, ...] | None, expected: bool) -> None:
    assert passes(PREFIXES, {} if keys is None else {LEADING: keys}) is expected


def test_null_false_closes_the_for_all_values_empty_set_gap() -> None:
    guarded = {**PREFIXES, "Null": {"dynamodb:LeadingKeys": "false"}}
    assert passes(guarded, {LEADING: ("PAYOUT#po_1",)})
    assert not passes(guarded, {LEADING: ()})
    assert not passes(guarded, {})


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(("purpose", "tenant"), True), (("tenant",), False), ((), False), (None, False)],
)
def test_for_any_value_string_equals(keys: tuple[str, ...] | None, expected: bool) -> None:
    condition = {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "purpose"}}
    assert passes(condition, {} if keys is None else {"kms:encryptioncontextkeys": keys}) is expected


# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html
@pytest.mark.parametrize(
    ("tag_keys", "denied"),
    [(("key1:legal",), False), (("key1:hr", "key1:personnel"), False), (("key2:audit",), True), (None, True)],
)
def test_the_documented_for_all_values_string_not_like_deny(tag_keys: tuple[str, ...] | None, denied: bool) -> None:
    guard = deny("iam:Tag*", "*", Condition={"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}})
    context = {} if tag_keys is None else {"aws:tagkeys": tag_keys}
    decision = evaluate([policy(allow("iam:*", "*"), guard)], Request("iam:TagRole", "*", context))
    assert (decision.explicit_deny, decision.allowed) == (denied, not denied)


# ---------------------------------------------------------------- kms:EncryptionContext:<key>
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html (key names)
@pytest.mark.parametrize(
    ("policy_key", "context", "expected"),
    [
        ("kms:EncryptionContext:purpose", {"kms:encryptioncontext:purpose": ("payout-export",)}, True),
        ("kms:EncryptionContext:Purpose", {"kms:encryptioncontext:purpose": ("payout-export",)}, True),
        ("kms:EncryptionContext:purpose", {"kms:encryptioncontext:purpose": ("webhook-signing",)}, False),
        ("kms:EncryptionContext:purpose", {"kms:encryptioncontext:purpose": ("Payout-Export",)}, False),
        ("kms:EncryptionContext:purpose", {"kms:encryptioncontext:tenant": ("payout-export",)}, False),
        ("kms:EncryptionContext:purpose", {}, False),
    ],
)
def test_kms_encryption_context(policy_key: str, context: Context, expected: bool) -> None:
    statement = allow(["kms:Decrypt", "kms:GenerateDataKey"], KEY, Condition={"StringEquals": {policy_key: "payout-export"}})
    assert evaluate([policy(statement)], Request("kms:Decrypt", KEY, context)).allowed is expected


# ---------------------------------------------------------------- grants_of and Decision.used
ROLE = [
    policy(
        {
            "Sid": "ReadPayouts",
            **allow(["dynamodb:GetItem", "dynamodb:Query"], [TABLE, f"{TABLE}/index/*"]),
            "Condition": {**PREFIXES, "StringNotEquals": {"dynamodb:Select": "ALL_ATTRIBUTES"}},
        },
        deny("dynamodb:DeleteItem", "*"),
        {"Effect": "Allow", "NotAction": "iam:*", "NotResource": TABLE},
        name="payouts-read",
    )
]
LIKE = "payouts-read#0:Condition:ForAllValues:StringLike:dynamodb:LeadingKeys"


def test_grants_of_lists_each_granting_element_of_each_allow() -> None:
    # Deny statements, negated operators and NotAction/NotResource grant nothing nameable.
    expected = ["Action:0", "Action:1", "Resource:0", "Resource:1"]
    assert grants_of(ROLE) == {
        **{f"payouts-read#0:{element}": "ReadPayouts" for element in expected},
        f"{LIKE}:0": "ReadPayouts",
        f"{LIKE}:1": "ReadPayouts",
    }


@pytest.mark.parametrize(
    ("action", "resource", "keys", "used"),
    [
        ("dynamodb:Query", INDEX, ("BATCH#b_1",), ["Action:1", "Resource:1", "LIKE:1"]),
        ("dynamodb:GetItem", TABLE, ("PAYOUT#1", "BATCH#2"), ["Action:0", "Resource:0", "LIKE:0", "LIKE:1"]),
        ("dynamodb:GetItem", TABLE, (), ["Action:0", "Resource:0"]),  # allowed by the empty set: no prefix used
    ],
)
def test_used_names_exactly_the_elements_that_allowed_the_call(action: str, resource: str, keys: tuple[str, ...], used: list[str]) -> None:
    decision = evaluate(ROLE, Request(action, resource, {LEADING: keys}))
    assert decision.allowed
    assert decision.used == {u.replace("LIKE", LIKE) if u.startswith("LIKE") else f"payouts-read#0:{u}" for u in used}
    assert decision.used <= grants_of(ROLE).keys()


def test_used_ignores_statements_that_did_not_apply_and_joins_those_that_did() -> None:
    role = [policy(allow(Condition={"StringLike": {"dynamodb:LeadingKeys": "LEDGER#*"}}), allow(), allow("dynamodb:*"))]
    decision = evaluate(role, Request("dynamodb:GetItem", TABLE, {LEADING: ("PAYOUT#1",)}))
    assert decision.used == {"role#1:Action:0", "role#1:Resource:0", "role#2:Action:0", "role#2:Resource:0"}


# ---------------------------------------------------------------- check_supported and malformed policies
SUPPORTED = {
    "ForAllValues:StringLike": {"DynamoDB:LeadingKeys": "PAYOUT#*"},
    "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE", "dynamodb:Select": "COUNT"},
    "StringEquals": {"dynamodb:EnclosingOperation": "TransactWriteItems", "kms:EncryptionContext:purpose": "export"},
    "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "purpose"},
    "Null": {"dynamodb:LeadingKeys": "false"},
}


def test_check_supported_passes_the_keys_and_operators_the_runtime_fills_in() -> None:
    check_supported([policy(allow(Condition=SUPPORTED), deny(Condition={"StringNotLike": {"dynamodb:Select": "ALL_*"}}))])


@pytest.mark.parametrize(
    "condition",
    [
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},  # a key the runtime does not put in the context
        {"StringEquals": {"dynamodb:Attributes": "amount"}},
        {"StringMatches": {"dynamodb:Select": "COUNT"}},  # not an operator
        {"ForSomeValues:StringLike": {"dynamodb:LeadingKeys": "PAYOUT#*"}},
        {"StringEqualsIfExist": {"dynamodb:Select": "COUNT"}},
        {"NullIfExists": {"dynamodb:Select": "true"}},  # IfExists cannot qualify Null (operators page)
    ],
)
def test_check_supported_refuses_what_would_be_guessed(condition: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        check_supported([policy(allow(Condition=condition))])
    with pytest.raises(PolicyError):  # in a Deny too: guessing there could let a call through
        check_supported([policy(deny(Condition=condition))])


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Resource": TABLE},
        {"Effect": "Allow", "Action": "dynamodb:GetItem"},
        {"Effect": "Permit", "Action": "dynamodb:GetItem", "Resource": TABLE},
        allow(Condition={"StringMatches": {"dynamodb:Select": "COUNT"}}),
    ],
)
def test_evaluate_refuses_a_malformed_statement(statement: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        evaluate([policy(statement)], Request("dynamodb:GetItem", TABLE))
