"""API Gateway (HTTP API, payload format 2.0) in front of the local functions.

Routes come from the template's ``HttpApi`` events. Matching follows API Gateway: an exact path
beats one with parameters, which beats a greedy ``{proxy+}``; ``ANY`` matches every method;
``$default`` catches the rest.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.functions import SAMPLES, last_timing, p50
from devstack.template import ACCOUNT_ID

TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|[\w.+-]*\+json|[\w.+-]*\+xml))")
CORRELATION_HEADER = "x-correlation-id"
SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    pattern: re.Pattern[str]

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def precedence(self) -> tuple[int, int, int, int]:
        if self.path == "$default":
            return (3, 0, 0, 0)
        greedy = "+}" in self.path
        parameters = self.path.count("{")
        literal_length = len(re.sub(r"\{[^}]+\}", "", self.path))
        return (1 if greedy else 0, parameters, -literal_length, 1 if self.method == "ANY" else 0)


def route(method: str, path: str, function: str) -> Route:
    if path == "$default":
        return Route("ANY", path, function, re.compile(".*"))
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            name = part[1:-1]
            regex += f"(?P<{name[:-1]}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return Route(method.upper(), path, function, re.compile(f"^{regex}$"))


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: r.precedence)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in self.routes:
            if candidate.method not in ("ANY", method):
                continue
            found = candidate.pattern.match(path)
            if found:
                # API Gateway names a greedy parameter with its "+"; restore that.
                parameters = {
                    (name + "+" if "{" + name + "+}" in candidate.path else name): unquote(value)
                    for name, value in found.groupdict().items()
                }
                return candidate, parameters
        return None


def _comma_join(pairs: list[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def build_event(
    matched: Route,
    parameters: dict[str, str],
    method: str,
    raw_target: str,
    headers: Message,
    body: bytes,
    source_ip: str,
    host: str,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway would send for this request."""
    split = urlsplit(raw_target)
    header_pairs = [(name.lower(), value) for name, value in headers.items()]
    cookies = [c.strip() for name, value in header_pairs if name == "cookie" for c in value.split(";") if c.strip()]
    request_headers = _comma_join([(n, v) for n, v in header_pairs if n != "cookie"])
    now = datetime.now(UTC)
    request_id = uuid.uuid4().hex[:16] + "="
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": split.path,
        "rawQueryString": split.query,
        "headers": request_headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": split.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": request_headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if split.query:
        event["queryStringParameters"] = _comma_join(parse_qsl(split.query, keep_blank_values=True))
    if parameters:
        event["pathParameters"] = parameters
    if body:
        content_type = request_headers.get("content-type", "")
        if TEXT_TYPES.match(content_type) or (not content_type and _is_utf8(body)):
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def convert_result(result: Any) -> HttpResponse:
    """A Lambda result as API Gateway turns it into an HTTP response (payload format 2.0 rules)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("Content-Type", "application/json")], text.encode())
    headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(v)) for v in values]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return HttpResponse(int(result["statusCode"]), headers, body)


def problem(status: int, title: str, detail: str, correlation_id: str) -> HttpResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "correlation_id": correlation_id}
    return HttpResponse(
        status, [("Content-Type", "application/problem+json"), ("X-Correlation-Id", correlation_id)], json.dumps(body).encode()
    )


Invoke = Callable[[str, dict[str, Any]], Any]
Control = Callable[[str, str, bytes], HttpResponse | None]


class RouteTimes:
    """Each route's latency budget per request, the gateway's part included: the request's wall
    time at the gateway (body read to response written) split into the time inside the function's
    AWS calls and everything else, the *own time* (gateway, runtime and handler)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}

    def add(self, route_key: str, function: str, request_ms: float, aws_ms: float) -> None:
        with self._lock:
            self._routes.setdefault(route_key, _Route(function)).add(request_ms, aws_ms)

    def report(self) -> dict[str, dict[str, Any]]:
        """What ``GET /_local/routes`` shows: the totals over every timed request, and p50s per
        request over each route's most recent ones."""
        with self._lock:
            return {key: self._routes[key].report() for key in sorted(self._routes)}


@dataclass
class _Route:
    function: str
    requests: int = 0
    request_ms: float = 0.0
    aws_ms: float = 0.0

    def __post_init__(self) -> None:
        self._recent: deque[tuple[float, float]] = deque(maxlen=SAMPLES)

    def add(self, request_ms: float, aws_ms: float) -> None:
        self.requests += 1
        self.request_ms += request_ms
        self.aws_ms += aws_ms
        self._recent.append((request_ms, aws_ms))

    def report(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "requests": self.requests,
            "request_ms": round(self.request_ms, 3),
            "aws_ms": round(self.aws_ms, 3),
            "own_ms": round(self.request_ms - self.aws_ms, 3),
            "request_p50_ms": p50([request for request, _ in self._recent]),
            "aws_p50_ms": p50([aws for _, aws in self._recent]),
            "own_p50_ms": p50([request - aws for request, aws in self._recent]),
        }


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    # A stopped stack's port is free again at once (no TIME_WAIT refusal between back-to-back runs),
    # and the listen backlog holds every connection the benchmarks and chaos open at once (Python's
    # default of 5 resets some of 64 simultaneous ones).
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], router: Router, invoke: Invoke, log: Callable[[str], None], control: Control | None = None
    ) -> None:
        self.router = router
        self.invoke = invoke
        self.log = log
        self.control = control
        self.route_times = RouteTimes()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write (see _serve) and nothing waits for Nagle's algorithm:
    # BaseHTTPRequestHandler writes them separately, and the second, small write waited for the
    # client's delayed ACK, ~40 ms on every request from httpx.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request is written by _serve instead."""

    def _serve(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        target, timed = "-", None
        correlation_id = self.headers.get(CORRELATION_HEADER) or ""
        correlation_id = correlation_id if SANE_ID.match(correlation_id) else uuid.uuid4().hex
        response = self.server.control(self.command, self.path, body) if self.server.control else None
        if response is None:
            matched = self.server.router.match(self.command, path)
            if matched is None:
                response = problem(404, "Not found", f"No route for {self.command} {path}.", correlation_id)
            else:
                target = matched[0].function
                event = build_event(
                    matched[0],
                    matched[1],
                    self.command,
                    self.path,
                    self.headers,
                    body,
                    self.client_address[0],
                    self.headers.get("Host", "127.0.0.1"),
                )
                try:
                    result = self.server.invoke(target, event)
                    timed = (matched[0].route_key, last_timing())
                    response = convert_result(result)
                except Exception as error:  # the function failed: answer like a gateway, keep serving
                    self.server.log(f"{target} failed: {error}")
                    response = problem(
                        500, "Internal error", "The function failed; quote the correlation id when reporting it.", correlation_id
                    )
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        # end_headers() would write the headers on their own; the body joins them in one write.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(response.body)
        self.flush_headers()
        elapsed = (time.perf_counter() - started) * 1000
        if timed is not None and timed[1] is not None:
            self.server.route_times.add(timed[0], target, elapsed, timed[1].aws_ms)
        # The path only: query strings carry authorization codes, states and emails.
        self.server.log(f"{self.command} {path} -> {target} {response.status} {elapsed:.0f} ms")

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the routes (TRACE, PROPFIND, ...), as at API Gateway, where the
        # $default route takes what no other route matches.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)


def routes_from(functions: Mapping[str, Any]) -> list[Route]:
    """Every ``HttpApi`` event of every function as a route."""
    found: list[Route] = []
    for logical_id, spec in functions.items():
        for properties in spec.events_of("HttpApi").values():
            found.append(route(properties.get("Method", "ANY"), properties.get("Path", "$default"), logical_id))
    return found
