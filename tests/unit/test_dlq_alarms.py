"""Every dead-letter queue in template.yaml has a CloudWatch alarm on its depth, deployed under the
same condition as the queue, so a parked message (a payment event for an unknown payout, a
webhook the receiver kept refusing) is never silent."""

from __future__ import annotations

from typing import Any

from devstack.stack import template_parameters
from devstack.template import Template
from tests.support import TEMPLATE


def _getatt(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else target.split(".", 1)
        return str(name), str(attribute)
    return None


def test_every_dead_letter_queue_has_a_depth_alarm_under_its_own_condition() -> None:
    template = Template(TEMPLATE, template_parameters(TEMPLATE, "dev", {}))
    resources = template.resources
    dead_letter_queues = set()
    for resource in resources.values():
        if resource.get("Type") == "AWS::SQS::Queue" and "RedrivePolicy" in resource.get("Properties", {}):
            target = _getatt(resource["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
            assert target is not None
            dead_letter_queues.add(target[0])
    alarmed = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource.get("Type") != "AWS::CloudWatch::Alarm" or properties.get("MetricName") != "ApproximateNumberOfMessagesVisible":
            continue
        for dimension in properties.get("Dimensions", []):
            target = _getatt(dimension.get("Value"))
            if dimension.get("Name") == "QueueName" and target and properties.get("Threshold") == 0:
                alarmed[target[0]] = logical_id

    assert {"PayoutsDLQ", "PaymentEventsDLQ", "SandboxWebhooksDLQ"} <= dead_letter_queues
    assert dead_letter_queues <= set(alarmed)
    for queue in dead_letter_queues:
        assert resources[alarmed[queue]].get("Condition") == resources[queue].get("Condition")


def test_a_provider_refusing_the_workers_calls_raises_an_alarm_on_the_metric_the_worker_emits() -> None:
    # The worker emits ProviderCallsRefused (payrail.payouts.submission) with Powertools' default
    # dimension (service) in the namespace Globals set; the alarm must watch exactly that series.
    import inspect

    from payrail.payouts import submission

    template = Template(TEMPLATE, template_parameters(TEMPLATE, "prod", {}))
    environment = template.document["Globals"]["Function"]["Environment"]["Variables"]
    alarm = template.resources["ProviderCallsRefusedAlarm"]
    properties = alarm["Properties"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    assert "Condition" not in alarm
    assert 'name="ProviderCallsRefused"' in inspect.getsource(submission)
    assert (properties["Namespace"], properties["MetricName"]) == (environment["POWERTOOLS_METRICS_NAMESPACE"], "ProviderCallsRefused")
    assert properties["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert (properties["Statistic"], properties["Threshold"], properties["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
