"""``python -m devstack start | invoke | fire``: the local equivalents of ``sam local start-api``,
``sam local invoke`` and an EventBridge schedule firing now."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.chaos import Chaos
from devstack.functions import FunctionPool, InvocationError
from devstack.policies import identities
from devstack.stack import STATE_FILE, LocalStack, StackError, attach, free_port
from devstack.template import TemplateError, parse_overrides


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="devstack", description="Run template.yaml locally on moto, without Docker.")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--config-env", default="dev", help="samconfig.toml environment whose parameters apply (default dev)")
    parser.add_argument("--parameter-overrides", default="", help='template parameters, as sam takes them: "Key=Value Other=Value"')
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="serve the API, poll the queues and fire the schedules")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--api-port", type=int, default=3000)
    start.add_argument("--moto-port", type=int, default=5000)
    start.add_argument("--no-schedules", action="store_true", help="do not fire schedules on their own (fire them on demand)")
    start.add_argument("--concurrency", type=int, default=8, help="warm processes per function at most (default 8)")
    start.add_argument(
        "--no-iam", action="store_true", help="do not authorise the functions' AWS calls against their IAM roles (on by default)"
    )
    chaos = start.add_argument_group("fault injection (reliability runs)")
    chaos.add_argument(
        "--duplicate-deliveries", type=float, default=0.0, metavar="RATE", help="send processed SQS messages again at this rate"
    )
    chaos.add_argument("--kill-rate", type=float, default=0.0, metavar="RATE", help="kill SQS-triggered invocations mid-way at this rate")
    chaos.add_argument("--max-visibility-timeout", type=int, metavar="SECONDS", help="cap every queue's visibility timeout")

    invoke = commands.add_parser("invoke", help="invoke one function with an event file and print its result")
    invoke.add_argument("function")
    invoke.add_argument("-e", "--event", type=Path, help="event JSON file (default: {})")

    fire = commands.add_parser("fire", help="fire a schedule now (by event name or function)")
    fire.add_argument("name")
    return parser.parse_args(argv)


def _start(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    stack = LocalStack(
        args.template,
        api_port=args.api_port,
        moto_port=args.moto_port,
        parameter_overrides=overrides,
        environment=args.config_env,
        host=args.host,
        schedules=not args.no_schedules,
        concurrency=args.concurrency,
        state_file=STATE_FILE,
        chaos=Chaos(duplicate_rate=args.duplicate_deliveries, kill_rate=args.kill_rate),
        max_visibility_timeout=args.max_visibility_timeout,
        iam=not args.no_iam,
    )
    stack.start()
    tables = ", ".join(stack.resources_of("AWS::DynamoDB::Table").values())
    print(
        f"\n  API        {stack.api_url}\n  API docs   {stack.api_url}/docs\n  moto       {stack.moto_url}\n"
        f"  table      {tables}\n  functions  {len(stack.functions)}, routes from {args.template}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    if stack.chaos.active:
        print(f"devstack: injected faults {stack.chaos.counters()}", flush=True)
    print("devstack: stopping", flush=True)
    stack.stop()
    return 0


def _running_state() -> dict[str, Any] | None:
    if not STATE_FILE.exists():
        return None
    state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    try:
        urllib.request.urlopen(state["moto_url"] + "/moto-api/", timeout=1).close()  # noqa: S310 - loopback
    except (urllib.error.URLError, OSError):
        return None
    return state


def _throwaway_stack(args: argparse.Namespace, overrides: dict[str, str]) -> LocalStack:
    """The template's resources in a moto of their own, no gateway, pollers or schedules: for one
    invocation when no stack is running."""
    stack = LocalStack(
        args.template,
        moto_port=free_port(),
        parameter_overrides=overrides,
        environment=args.config_env,
        schedules=False,
        pollers=False,
        log=lambda line: print(line, file=sys.stderr),
    )
    return stack.start(serve_http=False)


def _invoke(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    event = json.loads(args.event.read_text()) if args.event else {}
    state = _running_state()
    if state:
        template, provisioner = attach(args.template, state)
        functions = template.functions()
        if args.function not in functions:
            raise StackError(f"no function named {args.function}; known: {', '.join(sorted(functions))}")
        with tempfile.TemporaryDirectory(prefix="devstack-iam-") as folder:
            identity_file = Path(folder) / "identity.json"
            identity_file.write_text(identities(template)[args.function].to_json())
            pool = FunctionPool(
                functions[args.function],
                provisioner.ref(args.function),
                state["moto_url"],
                lambda line: print(line, file=sys.stderr),
                1,
                identity_file,
            )
            try:
                result = pool.invoke(event)
            finally:
                pool.close()
    else:
        with _throwaway_stack(args, overrides) as stack:
            result = stack.invoke(args.function, event)
    print(json.dumps(result, indent=2))
    return 0


def _fire(args: argparse.Namespace, overrides: dict[str, str]) -> int:
    state = _running_state()
    if state:
        request = urllib.request.Request(f"{state['api_url']}/_local/schedules/{args.name}", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - the local stack on loopback
            print(answer.read().decode())
        return 0
    with _throwaway_stack(args, overrides) as stack:
        print(json.dumps(stack.fire(args.name), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        overrides = parse_overrides(args.parameter_overrides)
        command = {"start": _start, "invoke": _invoke, "fire": _fire}[args.command]
        return command(args, overrides)
    except (StackError, TemplateError) as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 2
    except InvocationError as error:
        print(f"devstack: the function failed: {error}", file=sys.stderr)
        return 1
    except urllib.error.HTTPError as error:
        print(f"devstack: {error.read().decode(errors='replace')}", file=sys.stderr)
        return 1
