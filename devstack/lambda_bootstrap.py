"""The runtime inside one local function process (never imported by the runtime itself).

Started as ``python -I lambda_bootstrap.py --result-fd N --layer DIR...`` in the function's code
directory, with exactly the function's environment, like Lambda's Python runtime it imports the
handler named by ``_HANDLER`` from ``LAMBDA_TASK_ROOT`` plus the layers, then reads one invocation
per line on stdin and writes one result per line to the result pipe. stdout and stderr are the
function's log.
"""

import argparse
import importlib
import json
import os
import sys
import time
import traceback


class LambdaContext:
    def __init__(self, request_id: str, deadline_ms: float) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:function:{name}"
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


class AwsCalls:
    """Every AWS API call the function makes (service:Operation), counted, and the wall time spent
    inside them, for the local runtime's per-function statistics and the benchmarks. The time is
    that of the union of the calls in flight, so calls made in parallel threads are not counted
    twice and an invocation's AWS time never exceeds its duration. It includes botocore's own
    work, the runtime's IAM check (AWS authorises a call inside it too) and moto's answer."""

    def __init__(self) -> None:
        import collections
        import threading

        self.calls: collections.Counter = collections.Counter()
        self.seconds = 0.0
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.seconds = 0.0
            self._since = time.perf_counter()  # a call still in flight counts from now on

    def enter(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._since

    def install(self) -> None:
        import botocore.client

        make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
        calls = self

        def counting(self, operation_name, api_params):  # type: ignore[no-untyped-def]
            calls.enter(f"{self.meta.service_model.endpoint_prefix}:{operation_name}")
            try:
                return make_api_call(self, operation_name, api_params)
            finally:
                calls.leave()

        botocore.client.BaseClient._make_api_call = counting  # type: ignore[attr-defined]


def _enforce_iam(identity_file: str):  # type: ignore[no-untyped-def]
    """Authorise every AWS call against the function's role (devstack/iam.py, loaded by path so
    the function cannot import the devstack package); returns the ledger of what was allowed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_devstack_iam", os.path.join(os.path.dirname(os.path.abspath(__file__)), "iam.py"))
    assert spec
    assert spec.loader
    iam = importlib.util.module_from_spec(spec)
    sys.modules["_devstack_iam"] = iam
    spec.loader.exec_module(iam)
    with open(identity_file, encoding="utf-8") as source:
        identity = iam.Identity.from_json(source.read())
    iam.run_as_process(identity)
    iam.install()
    return iam.LEDGERS.get(identity)


def _timing(calls: AwsCalls, started: float) -> dict:
    """The invocation's AWS calls, and its handler's wall time with the part spent inside them."""
    handler_ms = (time.perf_counter() - started) * 1000
    return {"aws_calls": dict(calls.calls), "handler_ms": handler_ms, "aws_ms": min(calls.seconds * 1000, handler_ms)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--iam", help="the function's identity (JSON) to authorise its AWS calls with")
    args = parser.parse_args()
    results = os.fdopen(args.result_fd, "w", buffering=1, encoding="utf-8")

    # Lambda's sys.path: the function's own directory first, then the layers, then the runtime's
    # packages. The bootstrap's own directory must not be importable by the function.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [os.environ["LAMBDA_TASK_ROOT"], *args.layer] + [p for p in sys.path if p and os.path.abspath(p) != here]

    calls = AwsCalls()
    calls.install()
    ledger = _enforce_iam(args.iam) if args.iam else None
    module_path, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_path.replace("/", ".")), function_name)
        ready: dict = {"ready": True}
        if ledger is not None:
            ready["iam"] = ledger.drain()  # the calls made while the handler's module was imported
        results.write(json.dumps(ready) + "\n")
    except Exception as error:
        traceback.print_exc()
        failed: dict = {"ready": False, "errorType": "Runtime.ImportModuleError", "errorMessage": f"{type(error).__name__}: {error}"}
        if ledger is not None:
            failed["iam"] = ledger.drain()
        results.write(json.dumps(failed) + "\n")
        return 1

    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        calls.clear()
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
            answer = {"ok": True, "result": result, **_timing(calls, started)}
            if ledger is not None:
                answer["iam"] = ledger.drain()
            encoded = json.dumps(answer)
        except Exception as error:
            traceback.print_exc()
            failure = {"ok": False, "errorType": type(error).__name__, "errorMessage": str(error), **_timing(calls, started)}
            if ledger is not None:
                failure["iam"] = ledger.drain()
            encoded = json.dumps(failure)
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(encoded + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
