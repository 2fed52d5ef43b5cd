"""Running a template function locally: a pool of warm processes per function, as Lambda keeps
warm execution environments, each started with only the function's code, layers and environment."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devstack.template import REGION, FunctionSpec

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")

# What Lambda itself puts in every Python function's environment, besides the template's variables.
RUNTIME_VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "_HANDLER",
    "TZ",
    "LANG",
    "PATH",
)
# And what the local runtime adds, as `sam local` does: AWS calls go to moto.
LOCAL_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_SAM_LOCAL")


class InvocationError(Exception):
    """The function raised, timed out, or could not start."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def function_environment(spec: FunctionSpec, function_name: str, endpoint: str) -> dict[str, str]:
    """Exactly what the function's process sees: the template's variables, Lambda's own, and the
    local endpoint; nothing of the developer's shell."""
    environment = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{uuid.uuid4().hex}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        "LANG": "C.UTF-8",  # Lambda says en_US.UTF-8; C.UTF-8 exists everywhere, so Python adds no LC_CTYPE
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_SAM_LOCAL": "true",
    }
    environment.update(spec.environment)
    return environment


class Worker:
    """One warm execution environment: a process that runs one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        log: Callable[[str], None],
        identity_file: Path | None = None,
        on_iam: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.spec = spec
        read_fd, write_fd = os.pipe()
        command = [sys.executable, "-I", "-u", str(BOOTSTRAP), "--result-fd", str(write_fd)]
        for layer in spec.layer_dirs:
            command += ["--layer", str(layer)]
        if identity_file is not None:
            command += ["--iam", str(identity_file)]
            if os.environ.get("DEVSTACK_IAM_TRACE"):  # devstack's own diagnostic, see devstack.iam._trace
                environment = {**environment, "DEVSTACK_IAM_TRACE": os.environ["DEVSTACK_IAM_TRACE"]}
        self._on_iam = on_iam or (lambda _: None)
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and bootstrap
            command,
            cwd=spec.code_dir,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            text=True,
            bufsize=1,
        )
        os.close(write_fd)
        self._killed = False
        self.last_aws_calls: dict[str, int] = {}
        self.last_timing: Timing | None = None
        self._results = os.fdopen(read_fd, "r", encoding="utf-8")
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._pump_logs, args=(log,), daemon=True).start()
        threading.Thread(target=self._pump_results, daemon=True).start()
        self.init = self._answers.get()
        if self.init and self.init.get("iam"):
            self._on_iam(self.init["iam"])
        if not self.init or not self.init.get("ready"):
            self.kill()
            problem = self.init or {"errorType": "Runtime.ExitError", "errorMessage": "the function process exited while starting"}
            raise InvocationError(problem["errorType"], problem["errorMessage"])

    def _pump_logs(self, log: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            log(line.rstrip("\n"))

    def _pump_results(self) -> None:
        for line in self._results:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    @property
    def alive(self) -> bool:
        # Popen.poll() answers "running" while another thread holds its wait lock (a kill in
        # progress), so a killed worker also remembers that it was killed.
        return not self._killed and self.process.poll() is None

    def invoke(self, event: Any, request_id: str, timeout: float, kill_after: float | None = None) -> Any:
        deadline_ms = (time.time() + timeout) * 1000
        crash = threading.Timer(kill_after, self.kill) if kill_after is not None else None  # an injected crash (devstack.chaos)
        if crash:
            crash.start()
        try:
            return self._invoke(event, request_id, deadline_ms, timeout)
        finally:
            if crash:
                crash.cancel()

    def _invoke(self, event: Any, request_id: str, deadline_ms: float, timeout: float) -> Any:
        assert self.process.stdin is not None
        self.last_aws_calls, self.last_timing = {}, None  # a timed-out or crashed invocation reports none
        started = time.perf_counter()
        try:
            self.process.stdin.write(json.dumps({"event": event, "request_id": request_id, "deadline_ms": deadline_ms}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise InvocationError("Runtime.ExitError", "the function process has exited") from error
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise InvocationError("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds") from None
        if answer is None:
            self._killed = True
            raise InvocationError("Runtime.ExitError", "the function process exited during the invocation")
        self.last_aws_calls = answer.get("aws_calls", {})
        if "aws_ms" in answer:
            self.last_timing = Timing((time.perf_counter() - started) * 1000, float(answer["handler_ms"]), float(answer["aws_ms"]))
        if answer.get("iam"):
            self._on_iam(answer["iam"])
        if not answer["ok"]:
            raise InvocationError(answer["errorType"], answer["errorMessage"])
        return answer["result"]

    def kill(self) -> None:
        self._killed = True
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self._answers.put(None)  # wake an invocation waiting on this process


@dataclass(frozen=True)
class Timing:
    """One invocation's wall time as the runtime saw it (event sent to answer read), the handler's
    part of it as the function's process measured it, and the part spent inside AWS calls."""

    duration_ms: float
    handler_ms: float
    aws_ms: float

    @property
    def own_ms(self) -> float:
        """The handler's own work and the runtime around it: everything but the AWS calls."""
        return self.duration_ms - self.aws_ms


SAMPLES = 1000  # the invocations the p50s are taken over: each function's most recent ones
# The timing of the last invocation each thread made through a pool (None: it reported none), for
# a caller that adds its own part, as the gateway does per route.
_THIS_THREAD = threading.local()


def last_timing() -> Timing | None:
    """The timing of the last invocation this thread made (None if it timed out or crashed)."""
    return getattr(_THIS_THREAD, "timing", None)


def p50(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 3) if ordered else 0.0


@dataclass
class InvocationStats:
    cold_starts: int = 0
    invocations: int = 0
    errors: int = 0
    aws_calls: dict[str, int] = field(default_factory=dict)
    # AWS calls the function's IAM role did not allow (devstack.iam), and the first of them.
    denied_calls: int = 0
    denied: list[dict[str, Any]] = field(default_factory=list)
    # The latency budget of the invocations that answered (timed_invocations of them), in all:
    # duration = AWS time + own time.
    timed_invocations: int = 0
    duration_ms: float = 0.0
    aws_ms: float = 0.0
    own_ms: float = 0.0
    handler_ms: float = 0.0

    def __post_init__(self) -> None:
        self._recent: deque[Timing] = deque(maxlen=SAMPLES)

    def add_timing(self, timing: Timing) -> None:
        self.timed_invocations += 1
        self.duration_ms += timing.duration_ms
        self.aws_ms += timing.aws_ms
        self.own_ms += timing.own_ms
        self.handler_ms += timing.handler_ms
        self._recent.append(timing)

    def report(self) -> dict[str, Any]:
        """What ``GET /_local/functions`` shows: the counters, the totals, and per-invocation p50s
        over the most recent invocations."""
        report = asdict(self)
        for name in ("duration_ms", "aws_ms", "own_ms", "handler_ms"):
            report[name] = round(report[name], 3)
            report[f"{name.removesuffix('_ms')}_p50_ms"] = p50([getattr(t, name) for t in self._recent])
        return report

    def add_calls(self, calls: dict[str, int]) -> None:
        for operation, count in calls.items():
            self.aws_calls[operation] = self.aws_calls.get(operation, 0) + count


class FunctionPool:
    """Warm workers for one function, up to ``max_concurrency`` at once (Lambda's concurrency)."""

    def __init__(
        self,
        spec: FunctionSpec,
        function_name: str,
        endpoint: str,
        log: Callable[[str], None],
        max_concurrency: int = 8,
        identity_file: Path | None = None,
    ) -> None:
        """``identity_file``: the function's role (a ``devstack.iam.Identity`` as JSON); every AWS
        call the function makes is authorised against it. None: nothing is enforced."""
        self.spec = spec
        self.identity_file = identity_file
        # What the role's calls used (grant ids, see devstack.iam.grants_of), over every invocation.
        self.iam_used: dict[str, int] = {}
        self.function_name = function_name
        self.environment = function_environment(spec, function_name, endpoint)
        self.log = log
        self.max_concurrency = max_concurrency
        self.stats = InvocationStats()
        self._idle: list[Worker] = []
        self._count = 0
        self._lock = threading.Condition()
        self._closed = False

    def _acquire(self) -> Worker:
        with self._lock:
            while not self._idle and self._count >= self.max_concurrency:
                self._lock.wait()
            if self._closed:
                raise InvocationError("Runtime.Shutdown", "the local runtime is shutting down")
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            worker = Worker(self.spec, self.environment, self.log, self.identity_file, self._record_iam)
            self.stats.cold_starts += 1
            return worker
        except BaseException:
            with self._lock:
                self._count -= 1
                self._lock.notify()
            raise

    def _record_iam(self, report: dict[str, Any]) -> None:
        with self._lock:
            for grant, count in report.get("used", {}).items():
                self.iam_used[grant] = self.iam_used.get(grant, 0) + count
            self.stats.denied_calls += int(report.get("denied_calls", 0))
            room = 50 - len(self.stats.denied)
            self.stats.denied.extend(list(report.get("denied", []))[: max(0, room)])

    def _release(self, worker: Worker) -> None:
        with self._lock:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
                worker.kill()
            self._lock.notify()

    def invoke(self, event: Any, request_id: str | None = None, kill_after: float | None = None) -> Any:
        _THIS_THREAD.timing = None
        worker = self._acquire()
        self.stats.invocations += 1
        try:
            return worker.invoke(event, request_id or str(uuid.uuid4()), float(self.spec.timeout), kill_after)
        except InvocationError:
            self.stats.errors += 1
            raise
        finally:
            with self._lock:
                self.stats.add_calls(worker.last_aws_calls)
                if worker.last_timing is not None:
                    self.stats.add_timing(worker.last_timing)
                    _THIS_THREAD.timing, worker.last_timing = worker.last_timing, None
            self._release(worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for worker in idle:
            worker.kill()
