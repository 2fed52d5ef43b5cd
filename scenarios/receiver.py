"""A loopback HTTP receiver that records every request it gets, for tests, the demo and the
benchmarks: merchant webhooks' endpoint, or a stand-in for a provider's API; and what the merchant
events it was sent say."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.stack import free_port


class Recorder:
    """An HTTP server on 127.0.0.1 that records every request and answers from a script:
    ``answers`` maps a path's last segment to (status, body); ``codes`` is a queue of status
    codes for POSTs (then 202). Each POST's record holds the status it was answered with and
    ``answered_at``, the wall-clock time (``time.time()``) just after the answer was written."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.codes: list[int] = []
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (its timeout): what it saw is its failed attempt

            def do_GET(self) -> None:
                recorder.requests.append({"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                self._answer(*recorder.answers.get(self.path.rsplit("/", 1)[-1], (404, {"title": "not found"})))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                record: dict[str, Any] = {
                    "method": "POST",
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                recorder.requests.append(record)
                status = recorder.answer_post(record)
                self._answer(status, {})
                record.update(status=status, answered_at=time.time())

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer_post(self, request: dict[str, Any]) -> int:
        """The status code a POST gets, once it is recorded: the next of ``codes``, then 202. A
        receiver with other manners (failing at random, slow) overrides it; it may note what it
        did in ``request`` and take its time (each request has its own thread)."""
        return self.codes.pop(0) if self.codes else 202

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


FINAL_PAYOUT_EVENTS = frozenset({"payout.paid", "payout.failed"})


def delivered_events(posts: list[dict[str, Any]], payout_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Each merchant event answered 2xx once, in the order of first 2xx: ``{"event": <body>,
    "answered_at": <time.time()>}``; only those about ``payout_ids`` when given."""
    events: dict[str, dict[str, Any]] = {}
    for post in posts:
        if 200 <= post.get("status", 0) < 300 and post["headers"]["webhook-id"] not in events:
            events[post["headers"]["webhook-id"]] = {"event": json.loads(post["body"]), "answered_at": post["answered_at"]}
    return [entry for entry in events.values() if payout_ids is None or entry["event"]["data"]["object"]["id"] in payout_ids]


def every_event_delivered(posts: list[dict[str, Any]], payout_ids: set[str]) -> bool:
    """Every event of each payout answered 2xx: its final one (``payout.paid`` / ``failed``) and one
    for each version before it (each version of a payout is one state change, one event).
    ``payout.processing`` is not always among them: when the provider's processing and paid
    webhooks race, paid may be applied first, and the payout goes from submitted to paid."""
    versions: dict[str, set[int]] = defaultdict(set)
    final: dict[str, int] = {}
    for entry in delivered_events(posts, payout_ids):
        view = entry["event"]["data"]["object"]
        versions[view["id"]].add(view["version"])
        if entry["event"]["type"] in FINAL_PAYOUT_EVENTS:
            final[view["id"]] = view["version"]
    return all(i in final and versions[i] == set(range(1, final[i] + 1)) for i in payout_ids)
