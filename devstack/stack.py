"""The whole local stack: moto, the template's resources, the functions, the gateway, the
pollers and the schedules, started and stopped together."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import iam
from devstack.chaos import Chaos
from devstack.events import Schedule, SqsMappingError, SqsPoller
from devstack.functions import FunctionPool, InvocationError
from devstack.gateway import Gateway, HttpResponse, Router, routes_from
from devstack.iam import Identity, write_usage
from devstack.moto_dynamodb import adapt_moto_dynamodb
from devstack.moto_overheads import trim_moto_overheads
from devstack.moto_sqs import adapt_moto_sqs, release_long_polls
from devstack.policies import identities
from devstack.resources import Physical, Provisioner, local_client
from devstack.streams import DynamoDBStreamPoller, StreamMapping, StreamMappingError
from devstack.template import FunctionSpec, Template, TemplateError, load_yaml, samconfig_parameters

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

STATE_FILE = Path(".devstack/state.json")
LAMBDA_SQS_POLLERS = 5
CONTROL_PREFIX = "/_local/"


class StackError(Exception):
    """A one-line reason the stack cannot start."""


def _log_to_stdout() -> Callable[[str], None]:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            now = time.time()
            print(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} {line}", flush=True)

    return log


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on the port now. The probe binds as the gateway and moto's
    server do, with SO_REUSEADDR: the TIME_WAIT connections a stopped stack leaves behind (moto
    closes every connection it serves) do not hold the port, only a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


LOCAL_API_URL = "http://127.0.0.1:3000"


def local_parameters(api_url: str = LOCAL_API_URL) -> dict[str, str]:
    """What the local runtime gives the parameters a deployed stack leaves empty: the public URL
    (on AWS, the custom domain or the API's own endpoint) is the local API's address, which is
    also the one browser origin (the console)."""
    return {"PublicBaseUrl": api_url, "AllowedOrigins": api_url}


def template_parameters(
    template_path: Path, environment: str, overrides: Mapping[str, str], api_url: str = LOCAL_API_URL
) -> dict[str, str]:
    """The local runtime's own values (for the parameters the template declares), then the stage's
    parameters from samconfig.toml, then the command line's."""
    declared = _declared_parameters(template_path.resolve())
    local = {name: value for name, value in local_parameters(api_url).items() if name in declared}
    return {**local, **samconfig_parameters(template_path.parent / "samconfig.toml", environment), **overrides}


def _declared_parameters(path: Path) -> frozenset[str]:
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return frozenset()
    return _declared_at(path, stamp)


@functools.cache
def _declared_at(path: Path, stamp: int) -> frozenset[str]:
    return frozenset(load_yaml(path).get("Parameters") or {})


class LocalStack:
    def __init__(
        self,
        template_path: Path,
        api_port: int = 3000,
        moto_port: int = 5000,
        parameter_overrides: Mapping[str, str] | None = None,
        environment: str = "dev",
        host: str = "127.0.0.1",
        schedules: bool = True,
        pollers: bool = True,
        concurrency: int = 8,
        log: Callable[[str], None] | None = None,
        state_file: Path | None = None,
        stack_name: str = "payrail-local",
        chaos: Chaos | None = None,
        max_visibility_timeout: int | None = None,
        iam: bool = True,
    ) -> None:
        """``iam``: authorise every AWS call of every function against its role (devstack.iam)."""
        self.template_path = template_path
        self.iam = iam
        self.identities: dict[str, Identity] = {}
        self._identity_dir: tempfile.TemporaryDirectory[str] | None = None
        self.host = host
        self.api_port = api_port
        self.moto_port = moto_port
        self.api_url = f"http://{host}:{api_port}"
        self.moto_url = f"http://{host}:{moto_port}"
        self.parameters = template_parameters(template_path, environment, parameter_overrides or {}, self.api_url)
        self.run_schedules = schedules
        self.run_pollers = pollers
        self.concurrency = concurrency
        self.log = log or _log_to_stdout()
        self.state_file = state_file
        self.stack_name = stack_name
        self.chaos = chaos or Chaos()
        self.max_visibility_timeout = max_visibility_timeout
        self.stop_event = threading.Event()
        self.pools: dict[str, FunctionPool] = {}
        self.schedules: dict[str, Schedule] = {}
        self.pollers: list[SqsPoller] = []
        self.stream_pollers: list[DynamoDBStreamPoller] = []
        self.functions: dict[str, FunctionSpec] = {}
        self._moto: ThreadedMotoServer | None = None
        self._gateway: Gateway | None = None
        self._serving: threading.Thread | None = None
        self.template: Template | None = None
        self.provisioner: Provisioner | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self, serve_http: bool = True) -> LocalStack:
        for name, port in (("API", self.api_port), ("moto", self.moto_port)):
            if (serve_http or name == "moto") and not port_is_free(self.host, port):
                raise StackError(f"port {port} ({name}) is already in use; pick another with --{name.lower()}-port")
        self.template = Template(self.template_path, self.parameters, self.stack_name)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's own request log
        adapt_moto_dynamodb()
        trim_moto_overheads()
        adapt_moto_sqs()
        # Imported here: moto's server takes most of a second to import, and ``devstack invoke``
        # against a running stack (make invoke) never starts one.
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()
        try:
            self.provisioner = Provisioner(self.template, self.moto_url, self.api_url, self.max_visibility_timeout)
            self.provisioner.provision_all()
            self.functions = self.template.functions()
            for spec in self.functions.values():
                if not spec.handler_file.exists():
                    raise StackError(f"{spec.logical_id}: handler file {spec.handler_file.relative_to(self.template.root)} does not exist")
            identity_files = self._write_identities()
            for logical_id, spec in self.functions.items():
                self.pools[logical_id] = FunctionPool(
                    spec,
                    self.provisioner.ref(logical_id),
                    self.moto_url,
                    self._function_log(logical_id),
                    self.concurrency,
                    identity_files.get(logical_id),
                )
            if serve_http:
                self._gateway = Gateway(
                    (self.host, self.api_port), Router(routes_from(self.functions)), self.invoke, self.log, self._control
                )
            self._start_event_sources()
            self._write_state()
            # Served last: a stack that answers /health has its event sources and its state file.
            if self._gateway is not None:
                self._serving = threading.Thread(target=self._gateway.serve_forever, daemon=True, name="gateway")
                self._serving.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_identities(self) -> dict[str, Path]:
        """Each function's role, resolved against this stack's resources, in a file its processes read."""
        if not self.iam:
            return {}
        assert self.template is not None
        self.identities = identities(self.template)
        iam.install()  # the event source mappings poll with their function's role, in this process
        self._identity_dir = tempfile.TemporaryDirectory(prefix="devstack-iam-")
        files = {}
        for logical_id, identity in self.identities.items():
            files[logical_id] = Path(self._identity_dir.name) / f"{logical_id}.json"
            files[logical_id].write_text(identity.to_json())
        return files

    def _record_usage(self) -> None:
        """With ``DEVSTACK_IAM_USAGE`` set, what each role's calls used and had denied goes to a file
        in that folder, for the coverage check over a whole test run (python -m devstack.coverage)."""
        folder = os.environ.get("DEVSTACK_IAM_USAGE")
        if not folder or not self.identities:
            return
        identities, self.identities = self.identities, {}  # recorded once, however often stop() runs
        records = [
            {
                "source": identities[name].source,
                "function": name,
                "used": pool.iam_used,
                "denied_calls": pool.stats.denied_calls,
                "denied": pool.stats.denied,
            }
            for name, pool in self.pools.items()
            if name in identities
        ]
        # What the event source mappings (SQS and stream pollers) did with the functions' roles, in this process.
        records += [
            {"source": identities[name].source, "function": name, **iam.LEDGERS.get(identities[name]).drain()}
            for name in sorted({p.function for p in self.pollers} | {p.function for p in self.stream_pollers})
            if name in identities
        ]
        write_usage(Path(folder), "stack", records)

    def _function_log(self, logical_id: str) -> Callable[[str], None]:
        return lambda line: self.log(f"[{logical_id}] {line}")

    def _start_event_sources(self) -> None:
        assert self.provisioner is not None
        sqs = local_client("sqs", self.moto_url)
        for logical_id, spec in self.functions.items():
            for name, properties in spec.events_of("Schedule").items():
                if properties.get("Enabled", True) is False or properties.get("State") == "DISABLED":
                    continue
                schedule = Schedule(logical_id, name, properties, self.invoke, self.log, self.stop_event)
                self.schedules[name] = schedule
                if self.run_schedules:
                    schedule.start()
            for properties in spec.events_of("SQS").values():
                if properties.get("Enabled", True) is False:
                    continue
                queue_arn = properties["Queue"]
                # Lambda polls an SQS queue with five concurrent pollers (or the mapping's
                # ScalingConfig.MaximumConcurrency); one would serialise every batch.
                concurrency = int((properties.get("ScalingConfig") or {}).get("MaximumConcurrency", LAMBDA_SQS_POLLERS))
                listening = threading.Lock()  # the mapping's pollers take turns to wait on an empty queue
                mapping = [
                    SqsPoller(
                        sqs,
                        logical_id,
                        self.provisioner.queue_url_for_arn(queue_arn),
                        queue_arn,
                        properties,
                        self.invoke,
                        self.log,
                        self.stop_event,
                        self.chaos,
                        identity=self.identities.get(logical_id),
                        listening=listening,
                    )
                    for _ in range(concurrency)
                ]
                try:
                    mapping[0].check_role()
                except SqsMappingError as error:
                    raise StackError(str(error)) from error
                self.pollers += mapping
                if self.run_pollers:
                    for poller in mapping:
                        poller.start()
            for properties in spec.events_of("DynamoDB").values():
                self._stream_poller(logical_id, properties)

    def _stream_poller(self, logical_id: str, properties: dict[str, Any]) -> None:
        """A DynamoDB event source mapping: its role checked as Lambda checks it on creation, its
        shards' iterators taken now (so LATEST is the records written from now on)."""
        assert self.provisioner is not None
        mapping = StreamMapping.from_properties(properties)
        if not mapping.enabled:
            return
        poller = DynamoDBStreamPoller(
            local_client("dynamodbstreams", self.moto_url),
            local_client("sqs", self.moto_url),
            logical_id,
            self.provisioner.getatt(logical_id, "Arn"),
            mapping,
            self.invoke,
            self.log,
            self.stop_event,
            self.identities.get(logical_id),
            self.provisioner.queue_url_for_arn,
        )
        try:
            poller.check_role()
        except StreamMappingError as error:
            raise StackError(str(error)) from error
        poller.subscribe()
        self.stream_pollers.append(poller)
        if self.run_pollers:
            poller.start()

    def stop(self) -> None:
        self.stop_event.set()
        release_long_polls()  # the SQS pollers' pending receives answer now, not in up to 20 s
        if self._gateway:
            if self._serving is not None:  # shutdown() waits for a serve_forever that must have begun
                self._gateway.shutdown()
                self._serving = None
            self._gateway.server_close()
            self._gateway = None
        for poller in [*self.pollers, *self.stream_pollers]:
            if poller.is_alive():
                poller.join(timeout=3)
        for pool in self.pools.values():
            pool.close()
        self._record_usage()
        if self._identity_dir is not None:
            self._identity_dir.cleanup()
            self._identity_dir = None
        if self._moto:
            self._moto.stop()
            self._moto = None
        if self.state_file and self.state_file.exists():
            self.state_file.unlink()

    def __enter__(self) -> LocalStack:
        return self if self._moto else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- use
    def invoke(self, logical_id: str, event: dict[str, Any], kill_after: float | None = None) -> Any:
        if logical_id not in self.pools:
            raise StackError(f"no function named {logical_id}; known: {', '.join(sorted(self.pools))}")
        return self.pools[logical_id].invoke(event, kill_after=kill_after)

    def fire(self, name: str) -> Any:
        """Fire a schedule now, by its event name or by its function's logical id."""
        for event_name, schedule in self.schedules.items():
            if name in (event_name, schedule.function):
                return schedule.fire()
        raise StackError(f"no schedule named {name}; known: {', '.join(sorted(self.schedules)) or 'none'}")

    def physical(self, logical_id: str) -> str:
        assert self.provisioner is not None
        return self.provisioner.ref(logical_id)

    def resources_of(self, kind: str) -> dict[str, str]:
        assert self.template is not None
        return {logical_id: self.physical(logical_id) for logical_id in self.template.enabled_resources(kind)}

    def client(self, service: str) -> Any:
        return local_client(service, self.moto_url)

    def _control(self, method: str, path: str, _: bytes) -> HttpResponse | None:
        """``POST /_local/schedules/{name}`` fires a schedule; ``GET /_local/functions`` lists them
        (invocations, cold starts, AWS calls, the calls their roles denied, and each one's latency
        budget: the time inside its AWS calls and its own time, in all and as p50s per invocation);
        ``GET /_local/routes`` the same split per route, per request, the gateway's own part included."""
        if not path.startswith(CONTROL_PREFIX):
            return None
        parts = path[len(CONTROL_PREFIX) :].strip("/").split("/")
        try:
            if method == "POST" and len(parts) == 2 and parts[0] == "schedules":
                payload: Any = {"result": self.fire(parts[1])}
            elif method == "GET" and parts == ["functions"]:
                payload = {name: pool.stats.report() for name, pool in self.pools.items()}
            elif method == "GET" and parts == ["routes"] and self._gateway is not None:
                payload = self._gateway.route_times.report()
            elif method == "GET" and parts == ["chaos"]:
                payload = self.chaos.counters()
            else:
                return HttpResponse(404, [("Content-Type", "application/json")], b'{"error": "unknown control route"}')
        except (StackError, InvocationError) as error:
            return HttpResponse(400, [("Content-Type", "application/json")], json.dumps({"error": str(error)}).encode())
        return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(payload).encode())

    def _write_state(self) -> None:
        if not self.state_file or not self.provisioner:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "api_url": self.api_url,
            "moto_url": self.moto_url,
            "parameters": self.parameters,
            "stack_name": self.stack_name,
            "physical": {k: asdict(v) for k, v in self.provisioner.physical.items()},
        }
        self.state_file.write_text(json.dumps(state, indent=2))


def attach(template_path: Path, state: dict[str, Any]) -> tuple[Template, Provisioner]:
    """The template resolved against an already running stack's resources (for invoke)."""
    template = Template(template_path, state["parameters"], state["stack_name"])
    provisioner = Provisioner(template, state["moto_url"], state["api_url"])
    provisioner.physical = {k: Physical(**v) for k, v in state["physical"].items()}
    return template, provisioner


def fail(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr)
    raise SystemExit(2)


__all__ = ["LocalStack", "StackError", "TemplateError", "attach", "fail", "free_port"]
