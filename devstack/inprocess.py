"""An httpx transport that serves the template's HTTP API with handlers loaded in this process.

Integration tests and the in-process benchmark use it to drive the API (and to let one
function call another's routes, as the sync worker calls the sandbox bank) exactly as the
local gateway would, with the same payload-2.0 events, but without sockets or subprocesses.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from devstack.gateway import Router, build_event, convert_result, routes_from
from devstack.template import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]

# Powertools keeps the current event on the BaseRouter class, shared by every resolver in the
# process: in Lambda each function has a process of its own, here they share one. So calls are
# serialised (reentrant: a handler may call another function's route) and the caller's event is
# put back afterwards.
_LOCK = threading.RLock()


class _Headers:
    """The ``items()`` view ``build_event`` reads, over httpx's headers."""

    def __init__(self, headers: httpx.Headers) -> None:
        self._headers = headers

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers.multi_items())


class LocalContext:
    """The Lambda context a handler gets when it is called in-process (tests, benchmarks)."""

    function_version = "$LATEST"
    memory_limit_in_mb = 512

    def __init__(self, name: str = "inprocess", remaining_ms: int = 30_000) -> None:
        self.function_name = name
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = name
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = name
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def load_module(path: Path, name: str) -> ModuleType:
    """Import a function's handler file under a module name of its own, so two ``app.py`` never collide."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InProcessApi(httpx.BaseTransport):
    """Routes each request to the handler of the function whose ``HttpApi`` event matches it."""

    def __init__(self, functions: Mapping[str, FunctionSpec], handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)
        self.router = Router([r for r in routes_from(functions) if r.function in self.handlers])

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        split = urlsplit(str(request.url))
        matched = self.router.match(request.method, split.path)
        if matched is None:
            return httpx.Response(404, json={"title": "no route", "path": split.path})
        route, parameters = matched
        target = split.path + (f"?{split.query}" if split.query else "")
        event = build_event(
            route,
            parameters,
            request.method,
            target,
            _Headers(request.headers),  # type: ignore[arg-type]
            request.read(),
            "127.0.0.1",
            split.netloc,
        )
        with _LOCK:
            saved: tuple[Any, Any] = (getattr(BaseRouter, "current_event", None), getattr(BaseRouter, "lambda_context", None))
            try:
                raw = self.handlers[route.function](event, LocalContext())
            finally:
                BaseRouter.current_event, BaseRouter.lambda_context = saved
        result = convert_result(raw)
        return httpx.Response(result.status, headers=result.headers, content=result.body)
