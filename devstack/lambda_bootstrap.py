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


def _count_aws_calls() -> dict:
    """Count every AWS API call the function makes (service:Operation), for the local runtime's
    per-function statistics and the benchmarks."""
    import collections

    import botocore.client

    calls: collections.Counter = collections.Counter()
    make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self, operation_name, api_params):  # type: ignore[no-untyped-def]
        calls[f"{self.meta.service_model.endpoint_prefix}:{operation_name}"] += 1
        return make_api_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[attr-defined]
    return calls


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

    calls = _count_aws_calls()
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
        try:
            result = handler(request["event"], context)
            answer = {"ok": True, "result": result, "aws_calls": dict(calls)}
            if ledger is not None:
                answer["iam"] = ledger.drain()
            encoded = json.dumps(answer)
        except Exception as error:
            traceback.print_exc()
            failure = {"ok": False, "errorType": type(error).__name__, "errorMessage": str(error), "aws_calls": dict(calls)}
            if ledger is not None:
                failure["iam"] = ledger.drain()
            encoded = json.dumps(failure)
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(encoded + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
