"""The local runtime itself, on a small template of its own (tests/fixtures/runtime)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError

from devstack.chaos import Chaos
from devstack.events import LONG_POLL_SECONDS, Schedule, SqsMappingError, SqsPoller
from devstack.functions import LOCAL_VARIABLES, RUNTIME_VARIABLES
from devstack.moto_sqs import release_long_polls
from devstack.stack import LocalStack, StackError, free_port, port_is_free
from devstack.template import load_yaml
from tests.support import ROOT, wait_for

FIXTURE = ROOT / "tests/fixtures/runtime/template.yaml"
STACK_LOG: list[str] = []  # what the functions of the module's stack logged


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    os.environ["DEVELOPER_SHELL_ONLY"] = "must-not-leak"
    # The tests drive the SQS poller and the schedule themselves, so nothing runs in the background.
    local = LocalStack(
        FIXTURE,
        api_port=free_port(),
        moto_port=free_port(),
        schedules=False,
        pollers=False,
        log=STACK_LOG.append,
        stack_name="runtime-test",
    )
    local.start()
    yield local
    local.stop()
    os.environ.pop("DEVELOPER_SHELL_ONLY", None)


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=15) as client:
        yield client


def test_payload_v2_round_trip_carries_every_part_of_the_request(api: httpx.Client) -> None:
    # Given a request with query, path parameter, repeated headers, cookies and a binary body
    body = bytes(range(256))
    response = api.post(
        "/echo/ada%20lovelace?limit=2&tag=a&tag=b",
        content=body,
        headers=[
            ("Content-Type", "application/octet-stream"),
            ("X-Repeated", "1"),
            ("X-Repeated", "2"),
            ("Cookie", "session=abc; theme=dark"),
            ("X-Correlation-Id", "corr-123"),
        ],
    )
    # Then the function saw an API Gateway payload format 2.0 event
    assert response.status_code == 201
    event = response.json()["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{name}"
    assert event["rawPath"] == "/echo/ada%20lovelace"
    assert event["rawQueryString"] == "limit=2&tag=a&tag=b"
    assert event["queryStringParameters"] == {"limit": "2", "tag": "a,b"}
    assert event["pathParameters"] == {"name": "ada lovelace"}
    assert event["headers"]["x-repeated"] == "1,2"
    assert event["headers"]["x-correlation-id"] == "corr-123"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["requestId"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    # And the response's cookies and multi-value headers all reached the client
    assert response.headers.get_list("set-cookie") == ["session=abc; HttpOnly; Path=/", "theme=dark; Path=/"]
    assert response.headers.get_list("x-multi") == ["one", "two"]
    assert response.headers["x-who"] == "echo"


def test_json_body_arrives_as_text(api: httpx.Client) -> None:
    response = api.put("/echo/x", json={"amount": 12550})
    event = response.json()["event"]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"amount": 12550}


def test_binary_response_is_decoded_for_the_client(api: httpx.Client) -> None:
    assert api.get("/echo/binary").content == bytes(range(256))


def test_exact_route_beats_greedy_and_greedy_takes_the_rest(api: httpx.Client) -> None:
    assert api.get("/files/special").json()["event"]["routeKey"] == "GET /files/special"
    greedy = api.get("/files/a/b/c.txt").json()["event"]
    assert greedy["routeKey"] == "GET /files/{path+}"
    assert greedy["pathParameters"] == {"path+": "a/b/c.txt"}


def test_a_handler_that_raises_gets_a_500_problem_and_the_gateway_keeps_serving(api: httpx.Client) -> None:
    response = api.get("/echo/boom", headers={"X-Correlation-Id": "trace-me"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 500
    assert problem["correlation_id"] == "trace-me"
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert api.get("/echo/still-alive").status_code == 201


def test_unknown_route_is_a_404_problem(api: httpx.Client) -> None:
    response = api.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_resources_behind_a_false_condition_are_not_served(api: httpx.Client) -> None:
    # Stage defaults to prod in this template, so the dev-only function does not exist
    assert api.get("/dev-only").status_code == 404


def test_function_environment_is_exactly_what_the_template_gives(api: httpx.Client, stack: LocalStack) -> None:
    environment = json.loads(api.get("/echo/env").text)
    template_variables = {"FROM_GLOBALS", "TABLE_NAME", "GREETING", "QUEUE_URL", "QUEUE_ARN", "JOINED", "DEV_ONLY"}
    assert set(environment) == template_variables | set(RUNTIME_VARIABLES) | set(LOCAL_VARIABLES)
    assert "DEVELOPER_SHELL_ONLY" not in environment
    assert environment["FROM_GLOBALS"] == "global-value"
    assert environment["GREETING"] == "hello from us-east-1"
    assert environment["TABLE_NAME"] == stack.physical("Table")
    assert environment["QUEUE_URL"] == stack.physical("WorkQueue")
    assert environment["QUEUE_ARN"].startswith("arn:aws:sqs:us-east-1:123456789012:")
    assert environment["JOINED"] == "a,b"
    assert environment["DEV_ONLY"] == "no"
    assert environment["AWS_ENDPOINT_URL"] == stack.moto_url
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"


def test_each_function_imports_its_own_app_module(api: httpx.Client) -> None:
    assert api.get("/echo/who").json()["who"] == "echo"
    assert api.get("/echo/who").json()["layer"] == "layer"
    assert api.get("/other").json()["who"] == "other"


def _deliveries(stack: LocalStack, body: str) -> int:
    item = stack.client("dynamodb").get_item(TableName=stack.physical("Table"), Key={"pk": {"S": "seen#" + body}}).get("Item")
    return int(item["deliveries"]["N"]) if item else 0


def test_only_the_failed_record_is_redelivered_and_a_poison_message_lands_in_the_dlq(stack: LocalStack) -> None:
    # Given a batch with two good records and one that always fails
    sqs = stack.client("sqs")
    queue = stack.physical("WorkQueue")
    for body in ("ok-1", "fail-always", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    poller = next(p for p in stack.pollers if p.function == "ConsumerFunction")
    # When the poller delivers until the failing record has been received maxReceiveCount times
    deadline_hits = 0
    while _deliveries(stack, "fail-always") < 2 and deadline_hits < 100:
        if poller.poll_once() == 0:
            deadline_hits += 1
    # Then the good records were delivered once and deleted; the failing one twice
    assert _deliveries(stack, "ok-1") == 1
    assert _deliveries(stack, "ok-2") == 1
    assert _deliveries(stack, "fail-always") == 2
    # And on its next receive the redrive policy moves it to the dead-letter queue
    dlq = stack.physical("WorkDLQ")

    def dead_lettered() -> list[dict]:
        poller.poll_once()
        return sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", [])

    assert [m["Body"] for m in wait_for(dead_lettered, timeout=10)] == ["fail-always"]
    assert _deliveries(stack, "fail-always") == 2


def test_injected_duplicates_are_delivered_again(stack: LocalStack) -> None:
    # Given a poller that duplicates every processed message (a reliability run's fault)
    sqs = stack.client("sqs")
    queue = stack.physical("WorkQueue")
    sqs.send_message(
        QueueUrl=queue, MessageBody="dup-1", MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": "c-1"}}
    )
    template_poller = next(p for p in stack.pollers if p.function == "ConsumerFunction")
    chaos = Chaos(duplicate_rate=1.0)
    poller = SqsPoller(
        sqs,
        "ConsumerFunction",
        queue,
        template_poller.queue_arn,
        {"BatchSize": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
        stack.invoke,
        lambda _: None,
        threading.Event(),
        chaos,
    )
    # When it polls twice
    wait_for(lambda: poller.poll_once(), timeout=10)
    wait_for(lambda: poller.poll_once(), timeout=10)
    # Then the consumer saw the message twice, and the injected copy carried its attributes
    assert _deliveries(stack, "dup-1") == 2
    assert chaos.duplicates_injected == 2
    copy = wait_for(lambda: sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"]).get("Messages"), timeout=10)[0]
    assert copy["MessageAttributes"]["correlation_id"]["StringValue"] == "c-1"
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=copy["ReceiptHandle"])


def test_a_killed_invocation_keeps_its_message_for_a_retry(stack: LocalStack) -> None:
    # Given a poller that kills every invocation at once (a crash mid-way)
    sqs = stack.client("sqs")
    queue = stack.physical("WorkQueue")
    sqs.send_message(QueueUrl=queue, MessageBody="crash-1")
    template_poller = next(p for p in stack.pollers if p.function == "ConsumerFunction")
    killer = SqsPoller(
        sqs,
        "ConsumerFunction",
        queue,
        template_poller.queue_arn,
        {"BatchSize": 5},
        stack.invoke,
        lambda _: None,
        threading.Event(),
        Chaos(kill_rate=1.0, kill_window=0.0),
    )
    wait_for(lambda: killer.poll_once(), timeout=10)
    assert _deliveries(stack, "crash-1") == 0
    # Then the message was not deleted: after its visibility timeout a healthy poller delivers it
    assert wait_for(lambda: template_poller.poll_once() >= 0 and _deliveries(stack, "crash-1"), timeout=20) == 1


def _consumer_poller(stack: LocalStack, **changes: Any) -> SqsPoller:
    """A poller of the consumer's mapping, like the stack's own, with ``changes`` (keyword arguments)."""
    template = next(p for p in stack.pollers if p.function == "ConsumerFunction")
    arguments: dict[str, Any] = {
        "chaos": None,
        "identity": template.identity,
        "listening": None,
    } | changes
    return SqsPoller(
        stack.client("sqs"),
        "ConsumerFunction",
        template.queue_url,
        template.queue_arn,
        {"BatchSize": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
        arguments.pop("invoke", stack.invoke),
        lambda _: None,
        arguments.pop("stop", threading.Event()),
        **arguments,
    )


def _denying(stack: LocalStack, action: str) -> Any:
    """The consumer's role with an explicit deny of ``action`` on its queue."""
    identity = stack.identities["ConsumerFunction"]
    queue_arn = next(p for p in stack.pollers if p.function == "ConsumerFunction").queue_arn
    deny = {"Statement": [{"Effect": "Deny", "Action": action, "Resource": queue_arn}]}
    return dataclasses.replace(identity, policies=[*identity.policies, {"name": "deny", "document": deny, "managed": False}])


@pytest.mark.parametrize("action", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"])
def test_a_role_that_cannot_poll_its_queue_cannot_have_the_event_source(stack: LocalStack, action: str) -> None:
    # Given the consumer's role, which SAM's AWSLambdaSQSQueueExecutionRole lets poll its queue
    assert next(p for p in stack.pollers if p.function == "ConsumerFunction").identity == stack.identities["ConsumerFunction"]
    _consumer_poller(stack).check_role()
    # When one of the three actions Lambda needs on the queue is denied, creating the mapping fails
    with pytest.raises(SqsMappingError, match=rf"does not have permissions to call {action.split(':')[1]} on SQS"):
        _consumer_poller(stack, identity=_denying(stack, action)).check_role()


def test_a_stack_whose_role_cannot_poll_its_queue_does_not_start(tmp_path: Path) -> None:
    # Given a copy of the runtime template whose consumer may not receive from its queue
    shutil.copytree(FIXTURE.parent, tmp_path / "runtime")
    document = load_yaml(FIXTURE)
    deny = {"Effect": "Deny", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["WorkQueue", "Arn"]}}
    document["Resources"]["ConsumerFunction"]["Properties"]["Policies"].append({"Statement": [deny]})
    variant = tmp_path / "runtime/template.yaml"
    variant.write_text(yaml.safe_dump(document))  # load_yaml gave the intrinsics their long form
    local = LocalStack(
        variant,
        api_port=free_port(),
        moto_port=free_port(),
        schedules=False,
        pollers=False,
        log=lambda _: None,
        stack_name="runtime-no-poll",
    )
    # Then it refuses to start, naming the function and what its role lacks
    with pytest.raises(StackError, match=r"ConsumerFunction: the provided execution role does not have permissions to call ReceiveMessage"):
        local.start()


def test_every_receive_and_delete_is_authorised_against_the_functions_role(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queue = stack.physical("WorkQueue")
    invoked: list[Any] = []
    # Given a poller whose role may not receive from the queue
    sqs.send_message(QueueUrl=queue, MessageBody="denied-receive")
    refused = _consumer_poller(stack, identity=_denying(stack, "sqs:ReceiveMessage"), invoke=lambda *a, **_: invoked.append(a))
    # When it polls, the receive fails as on AWS, the function is never invoked and the message stays
    with pytest.raises(ClientError) as denied:
        refused.poll_once()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "sqs:ReceiveMessage" in str(denied.value)
    assert invoked == []
    # And a poller whose role may receive but not delete delivers, then fails to delete: the
    # message comes back after the visibility timeout (2 s) and is delivered again
    undeleting = _consumer_poller(stack, identity=_denying(stack, "sqs:DeleteMessage"))
    with pytest.raises(ClientError, match="sqs:DeleteMessage"):
        wait_for(lambda: undeleting.poll_once(wait=2) or None, timeout=20)
    assert _deliveries(stack, "denied-receive") == 1
    template = next(p for p in stack.pollers if p.function == "ConsumerFunction")
    assert wait_for(lambda: template.poll_once(wait=2) >= 0 and _deliveries(stack, "denied-receive") == 2, timeout=20)


def test_an_idle_mapping_waits_in_one_long_poll_delivers_at_once_and_stops_with_its_stack(stack: LocalStack) -> None:
    # Given a mapping of three running pollers sharing the turn to listen, over a counting client,
    # and a warm consumer (a cold start could outlast the queue's 2 s visibility timeout)
    sqs = stack.client("sqs")
    queue = stack.physical("WorkQueue")
    stack.invoke("ConsumerFunction", {"Records": []})
    receives: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def receive_message(self, **arguments: Any) -> Any:
            receives.append(arguments["WaitTimeSeconds"])
            return sqs.receive_message(**arguments)

    stop = threading.Event()
    listening = threading.Lock()
    invoked: list[float] = []
    finished: list[float] = []

    def timed_invoke(function: str, event: dict[str, Any]) -> Any:
        invoked.append(time.perf_counter())
        try:
            return stack.invoke(function, event)
        finally:
            finished.append(time.perf_counter())

    pollers = [_consumer_poller(stack, stop=stop, listening=listening, invoke=timed_invoke) for _ in range(3)]
    for poller in pollers:
        poller.sqs = Counting()
        poller.start()
    try:
        # When the queue stays empty for a while, one long poll is all the mapping sends
        time.sleep(1.5)
        assert receives == [LONG_POLL_SECONDS]
        # And a message sent is delivered at once, not at the end of the long poll
        sent = time.perf_counter()
        sqs.send_message(QueueUrl=queue, MessageBody="woken")
        wait_for(lambda: _deliveries(stack, "woken") and len(finished) == len(invoked), timeout=20)
        assert invoked[0] - sent < 1.0
        time.sleep(0.5)  # the poller that delivered deletes, finds the queue empty, and waits its turn
    finally:
        # Then stopping releases the long poll in progress: every poller ends at once
        stopping = time.perf_counter()
        stop.set()
        release_long_polls()
        for poller in pollers:
            poller.join(timeout=10)
    assert not any(poller.is_alive() for poller in pollers)
    assert time.perf_counter() - stopping < 1.0


def test_a_schedule_fires_an_eventbridge_scheduled_event(stack: LocalStack) -> None:
    # Given the schedule ticking fast (the template says once a minute)
    stop = threading.Event()
    schedule = Schedule("ConsumerFunction", "Tick", {"Schedule": "rate(1 minute)"}, stack.invoke, lambda _: None, stop)
    schedule.interval = 0.2
    schedule.start()
    try:
        # Then the function receives scheduled events on its own
        def ticks() -> list[dict]:
            items = stack.client("dynamodb").scan(TableName=stack.physical("Table"))["Items"]
            return [json.loads(i["detail"]["S"]) for i in items if i["pk"]["S"].startswith("tick#")]

        fired = wait_for(ticks, timeout=10)
    finally:
        stop.set()
    assert fired[0]["detail-type"] == "Scheduled Event"
    assert fired[0]["source"] == "aws.events"
    assert fired[0]["resources"][0].endswith(":rule/Tick")
    # And it can be fired on demand
    assert stack.fire("Tick") == {"fired": "Scheduled Event"}


def _devstack(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_invoke_runs_one_function_with_an_event_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"hello": "world"}))
    result = _devstack("--template", str(FIXTURE), "invoke", "OtherFunction", "-e", str(event), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"who": "other", "module": "app"}


def test_a_malformed_template_is_a_one_line_error(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources: [unclosed\n")
    result = _devstack("--template", str(broken), "invoke", "X", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("devstack:")
    assert "not valid YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_handler_file_is_a_one_line_error(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(FIXTURE.read_text().replace("CodeUri: other", "CodeUri: missing"))
    for folder in ("echo", "consumer", "layer"):
        (tmp_path / folder).symlink_to(FIXTURE.parent / folder)
    result = _devstack("--template", str(template), "invoke", "OtherFunction", cwd=tmp_path)
    assert result.returncode == 2
    assert "OtherFunction: handler file missing/app.py does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_a_one_line_error(stack: LocalStack, tmp_path: Path) -> None:
    result = _devstack(
        "--template", str(FIXTURE), "start", "--api-port", str(stack.api_port), "--moto-port", str(free_port()), cwd=tmp_path
    )
    assert result.returncode == 2
    assert f"port {stack.api_port} (API) is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_stopped_servers_port_is_free_at_once_though_its_connections_linger() -> None:
    # Given a server that served one connection and closed it first, as moto closes each one
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = server.accept()
    assert not port_is_free("127.0.0.1", port)  # listening: taken
    served.close()
    client.close()
    # When the server stops, its side of the connection left in TIME_WAIT
    server.close()
    # Then the port counts as free, as the next stack's servers can bind it at once
    assert port_is_free("127.0.0.1", port)


def test_each_functions_aws_calls_are_counted(stack: LocalStack) -> None:
    # Given the consumer writes one item per record
    before = dict(stack.pools["ConsumerFunction"].stats.aws_calls)
    records = [
        {"messageId": f"m{i}", "receiptHandle": "r", "body": f"count-{i}", "attributes": {}, "messageAttributes": {}} for i in range(3)
    ]
    # When it is invoked with three records
    stack.invoke("ConsumerFunction", {"Records": records})
    # Then exactly three DynamoDB UpdateItem calls were counted for it
    after = stack.pools["ConsumerFunction"].stats.aws_calls
    assert after.get("dynamodb:UpdateItem", 0) - before.get("dynamodb:UpdateItem", 0) == 3
    assert sum(after.values()) - sum(before.values()) == 3


def _budget_delta(api: httpx.Client, name: str, before: dict[str, Any]) -> dict[str, float]:
    after = api.get("/_local/functions").json()[name]
    return {key: after[key] - before[key] for key in ("timed_invocations", "duration_ms", "aws_ms", "own_ms", "handler_ms")}


def test_an_invocation_splits_into_aws_time_and_own_time(stack: LocalStack, api: httpx.Client) -> None:
    # Given a function that makes three DynamoDB calls per batch of three records
    before = api.get("/_local/functions").json()["ConsumerFunction"]
    records = [
        {"messageId": f"t{i}", "receiptHandle": "r", "body": f"timed-{i}", "attributes": {}, "messageAttributes": {}} for i in range(3)
    ]
    # When it is invoked once
    stack.invoke("ConsumerFunction", {"Records": records})
    # Then the runtime reports that invocation's time inside AWS calls and its own time, which
    # add up to its duration; the AWS time lies within the handler's time (measured in the
    # function's process), and that within the duration (measured by the runtime)
    spent = _budget_delta(api, "ConsumerFunction", before)
    assert spent["timed_invocations"] == 1
    assert spent["aws_ms"] > 0
    assert spent["own_ms"] > 0
    assert spent["aws_ms"] + spent["own_ms"] == pytest.approx(spent["duration_ms"], abs=0.01)
    assert spent["aws_ms"] <= spent["handler_ms"] <= spent["duration_ms"]
    stats = api.get("/_local/functions").json()["ConsumerFunction"]
    assert stats["aws_p50_ms"] > 0
    assert stats["own_p50_ms"] > 0


def test_a_function_without_aws_calls_spends_no_aws_time(stack: LocalStack, api: httpx.Client) -> None:
    # Given a function that calls no AWS service
    before = api.get("/_local/functions").json()["EchoFunction"]
    # When it answers a request
    assert api.get("/echo/quiet").status_code == 201
    # Then all of its duration is its own time
    spent = _budget_delta(api, "EchoFunction", before)
    assert spent["timed_invocations"] == 1
    assert spent["aws_ms"] == 0
    assert spent["own_ms"] == pytest.approx(spent["duration_ms"], abs=0.01)
    assert spent["duration_ms"] > 0


def test_each_route_reports_its_requests_budget_with_the_gateways_own_part(api: httpx.Client) -> None:
    # Given a route whose function reads the table
    route, function = "GET /read/{pk}", "ReaderFunction"
    totals = ("requests", "request_ms", "aws_ms", "own_ms")
    before = api.get("/_local/routes").json().get(route, dict.fromkeys(totals, 0))
    invoked_before = api.get("/_local/functions").json()[function]
    # When one request goes through it
    assert api.get("/read/public%23routed").status_code == 200
    # Then the gateway reports it under its route key and function
    after = api.get("/_local/routes").json()[route]
    spent = {key: after[key] - before[key] for key in totals}
    invoked = _budget_delta(api, function, invoked_before)
    assert after["function"] == function
    assert spent["requests"] == invoked["timed_invocations"] == 1
    # with the same AWS time as the runtime measured, and an own time that adds the gateway's
    # part to the runtime's: reading the request, building the event, writing the answer
    assert spent["aws_ms"] == pytest.approx(invoked["aws_ms"], abs=0.01)
    assert spent["aws_ms"] > 0
    assert spent["request_ms"] == pytest.approx(spent["aws_ms"] + spent["own_ms"], abs=0.01)
    assert spent["request_ms"] > invoked["duration_ms"]
    assert spent["own_ms"] > invoked["own_ms"]
    # and p50s per request, each request's own time being what its AWS calls did not take
    assert 0 < after["aws_p50_ms"] <= after["request_p50_ms"]
    assert 0 < after["own_p50_ms"] <= after["request_p50_ms"]
    # Control routes are not API routes and are not counted
    assert not any(key.startswith(("GET /_local", "POST /_local")) for key in api.get("/_local/routes").json())


# ---------------------------------------------------------------- IAM enforcement
def test_a_call_its_role_allows_goes_through(api: httpx.Client) -> None:
    # ReaderFunction may read items whose partition key starts with public#
    response = api.get("/read/public%23menu")
    assert response.status_code == 200, response.text
    assert response.json() == {"found": False}


def test_a_call_outside_the_roles_key_prefix_fails_as_aws_fails_it(api: httpx.Client, stack: LocalStack) -> None:
    # Given a function whose role allows GetItem only on public#* keys
    before = api.get("/_local/functions").json()["ReaderFunction"]["denied_calls"]
    # When it reads another partition
    response = api.get("/read/secret%23payroll")
    # Then the call failed inside the function with AWS's AccessDeniedException, naming who, what and where
    assert response.status_code == 500
    answer = response.json()
    assert answer["code"] == "AccessDeniedException"
    table_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.physical('Table')}"
    assert answer["message"] == (
        f"User: arn:aws:sts::123456789012:assumed-role/runtime-test-ReaderFunctionRole/{stack.physical('ReaderFunction')}"
        f" is not authorized to perform: dynamodb:GetItem on resource: {table_arn}"
        " because no identity-based policy allows the dynamodb:GetItem action"
    )
    # And the runtime counted it, listed it and logged it as an error with an AccessDenied metric
    stats = api.get("/_local/functions").json()["ReaderFunction"]
    assert stats["denied_calls"] == before + 1
    assert {"function": "ReaderFunction", "action": "dynamodb:GetItem", "resource": table_arn} in [
        {k: d[k] for k in ("function", "action", "resource")} for d in stats["denied"]
    ]
    logged = [json.loads(line.split("] ", 1)[1]) for line in STACK_LOG if "[ReaderFunction]" in line and "AccessDenied" in line]
    assert logged
    assert logged[-1]["level"] == "ERROR"
    assert logged[-1]["action"] == "dynamodb:GetItem"
    assert logged[-1]["AccessDenied"] == 1
    assert logged[-1]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "AccessDenied", "Unit": "Count"}]


def test_invoke_enforces_the_role_and_iam_false_turns_enforcement_off(tmp_path: Path) -> None:
    # Given ReaderFunction invoked on its own to read a partition its role does not cover
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pathParameters": {"pk": "secret#x"}}))
    command = [sys.executable, "-m", "devstack", "--template", str(FIXTURE), "invoke", "ReaderFunction", "-e", str(event)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert json.loads(json.loads(result.stdout)["body"])["code"] == "AccessDeniedException"
    # And a stack started without enforcement (start --no-iam) lets the same call through
    local = LocalStack(
        FIXTURE, moto_port=free_port(), schedules=False, pollers=False, log=lambda _: None, iam=False, stack_name="runtime-no-iam"
    )
    local.start(serve_http=False)
    try:
        assert local.invoke("ReaderFunction", {"pathParameters": {"pk": "secret#x"}})["statusCode"] == 200
    finally:
        local.stop()
