"""The stack tells someone when it goes wrong: every alarm notifies the stack's own topic, every
function's errors and throttles, every queue's backlog and the product's own failure metrics are
alarmed, the API keeps JSON access logs, and the consumers of rate-limited providers are capped."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.template import load_yaml
from tests.support import TEMPLATE

DOCUMENT = load_yaml(TEMPLATE)
RESOURCES: dict[str, dict[str, Any]] = DOCUMENT["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


ALARMS = _of_type("AWS::CloudWatch::Alarm")


def _dimension(alarm: dict[str, Any], name: str) -> Any:
    return next((d["Value"] for d in alarm["Properties"].get("Dimensions", []) if d["Name"] == name), None)


def test_every_alarm_notifies_the_stacks_own_topic() -> None:
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    silent = [name for name, alarm in ALARMS.items() if alarm["Properties"].get("AlarmActions") != [{"Ref": "AlarmTopic"}]]
    assert silent == []
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_alarm_on_its_errors_and_throttles_under_its_own_condition(metric: str) -> None:
    functions = _of_type("AWS::Serverless::Function")
    alarmed = {
        _dimension(alarm, "FunctionName")["Ref"]: alarm
        for alarm in ALARMS.values()
        if alarm["Properties"].get("Namespace") == "AWS/Lambda" and alarm["Properties"].get("MetricName") == metric
    }
    assert set(alarmed) == set(functions)
    for name, alarm in alarmed.items():
        assert alarm.get("Condition") == functions[name].get("Condition"), name
        assert alarm["Properties"]["Threshold"] == 0


def test_every_work_queue_has_an_alarm_on_its_oldest_message() -> None:
    queues = _of_type("AWS::SQS::Queue")
    work_queues = {name for name, queue in queues.items() if "RedrivePolicy" in queue["Properties"]}
    aged = {
        _dimension(alarm, "QueueName")["Fn::GetAtt"][0]: alarm
        for alarm in ALARMS.values()
        if alarm["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    }
    assert work_queues == {"PayoutsQueue", "PaymentEventsQueue", "BankSyncQueue", "SandboxWebhooksQueue", "WebhookDeliveriesQueue"}
    assert set(aged) == work_queues
    for name, alarm in aged.items():
        assert alarm.get("Condition") == queues[name].get("Condition")
        # Never below the visibility timeout: a message being retried is not a backlog.
        assert alarm["Properties"]["Threshold"] > queues[name]["Properties"]["VisibilityTimeout"]


def test_the_api_errors_latency_breaker_and_hand_off_failures_are_alarmed() -> None:
    metrics = {
        (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName"))
        for alarm in ALARMS.values()
        if "MetricName" in alarm["Properties"]
    }
    assert {("AWS/ApiGateway", "Latency"), ("Payrail", "BreakerState_open"), ("Payrail", "PayoutHandOffFailed")} <= metrics
    rate = ALARMS["Api5xxRateAlarm"]["Properties"]["Metrics"]
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in rate if "MetricStat" in m} == {"5xx", "Count"}


def test_the_metrics_alarmed_on_are_ones_the_code_emits() -> None:
    from payrail.db import circuit

    source = "\n".join(path.read_text() for path in TEMPLATE.parent.glob("layers/common/payrail/**/*.py"))
    assert 'name=f"BreakerState_{state}"' in source
    assert circuit.OPEN == "open"
    assert 'name="PayoutHandOffFailed"' in source


def test_the_api_writes_json_access_logs_with_the_request_id_and_a_retention() -> None:
    settings = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = re.sub(r"\$context\.[A-Za-z.]+", "x", settings["Format"])
    assert json.loads(line)["requestId"] == "x"
    assert "$context.requestId" in settings["Format"]
    assert RESOURCES["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize(
    ("function", "parameter"),
    [("PayoutWorkerFunction", "PayoutWorkerMaxConcurrency"), ("BankSyncWorkerFunction", "BankSyncMaxConcurrency")],
)
def test_the_consumers_of_rate_limited_providers_have_a_concurrency_cap(function: str, parameter: str) -> None:
    (event,) = RESOURCES[function]["Properties"]["Events"].values()
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": parameter}}
    assert DOCUMENT["Parameters"][parameter]["MinValue"] >= 2  # SQS's own minimum


def test_a_failed_scheduled_run_is_parked_on_an_alarmed_queue_and_its_grant_is_explained() -> None:
    from devstack.cloudformation import expand

    config = RESOURCES["ScheduledSyncFunction"]["Properties"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ScheduledSyncDLQ", "Arn"]}}
    alarm = ALARMS["ScheduledSyncDLQAlarm"]["Properties"]
    assert (alarm["MetricName"], _dimension(ALARMS["ScheduledSyncDLQAlarm"], "QueueName")) == (
        "ApproximateNumberOfMessagesVisible",
        {"Fn::GetAtt": ["ScheduledSyncDLQ", "QueueName"]},
    )
    # The policy SAM adds for the destination is the one the coverage check is told the code never uses
    (named,) = RESOURCES["ScheduledSyncFunction"]["Metadata"]["PayrailIam"]["NotCalledByCode"]
    role = expand(DOCUMENT, {"Stage": "dev"})["Resources"]["ScheduledSyncFunctionRole"]["Properties"]
    assert named.removeprefix("policy:") in [policy["PolicyName"] for policy in role["Policies"]]


def test_the_dashboard_is_json_and_charts_only_metrics_the_code_emits() -> None:
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    document = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    titles = [widget["properties"]["title"] for widget in document["widgets"]]
    assert titles == [
        "Payouts created, paid, failed",
        "Webhooks accepted and rejected by reason",
        "Bank syncs and transactions written",
        "API requests and errors",
        "API latency (ms)",
        "Queue depths (visible messages)",
        "Merchant webhooks: deliveries by outcome, endpoints disabled",
    ]
    ours = {row[1] for widget in document["widgets"] for row in widget["properties"]["metrics"] if row[0] == "Payrail"}
    ours |= set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    source = "\n".join(path.read_text() for path in TEMPLATE.parent.glob("layers/common/payrail/**/*.py"))
    assert ours == {
        "PayoutsCreated",
        "PayoutsFinished",
        "PayoutHandOffFailed",
        "WebhookAccepted",
        "WebhookRejected",
        "BankTransactionsWritten",
        "WebhookDeliveries",
        "WebhookEndpointsDisabled",
    }
    assert [name for name in ours if f'name="{name}"' not in source] == []


def test_merchant_webhook_deliveries_and_disabled_endpoints_are_alarmed_and_on_the_dashboard() -> None:
    dimensions = {
        (
            alarm["Properties"].get("MetricName"),
            tuple(sorted((d["Name"], str(d["Value"])) for d in alarm["Properties"].get("Dimensions", []))),
        )
        for alarm in ALARMS.values()
        if alarm["Properties"].get("Namespace") == "Payrail"
    }
    assert ("WebhookEndpointsDisabled", (("service", "payrail"),)) in dimensions
    assert ("WebhookDeliveries", (("outcome", "abandoned"), ("service", "payrail"))) in dimensions
    body = str(_of_type("AWS::CloudWatch::Dashboard")["Dashboard"]["Properties"]["DashboardBody"])
    for shown in ('"WebhookDeliveries"', '"delivered"', '"abandoned"', '"WebhookEndpointsDisabled"', "WebhookDeliveriesDLQ"):
        assert shown in body
