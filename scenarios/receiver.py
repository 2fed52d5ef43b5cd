"""A loopback HTTP receiver that records every request it gets, for tests, the demo and the
benchmarks: merchant webhooks' endpoint, or a stand-in for a provider's API."""

from __future__ import annotations

import json
import threading
import time
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
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def do_GET(self) -> None:
                recorder.requests.append({"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                self._answer(*recorder.answers.get(self.path.rsplit("/", 1)[-1], (404, {"title": "not found"})))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = recorder.codes.pop(0) if recorder.codes else 202
                record = {"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                recorder.requests.append(record)
                self._answer(status, {})
                record.update(status=status, answered_at=time.time())

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
