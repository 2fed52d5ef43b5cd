"""The developer's first command: start the local stack and get a healthy API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from devstack.stack import free_port
from tests.support import ROOT

pytestmark = pytest.mark.e2e


def test_the_local_stack_serves_health_docs_and_stops_cleanly_on_ctrl_c() -> None:
    api_port, moto_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--parameter-overrides",
            f"PublicBaseUrl=http://127.0.0.1:{api_port}",
            "start",
            "--api-port",
            str(api_port),
            "--moto-port",
            str(moto_port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        started = time.monotonic()
        health = None
        while time.monotonic() - started < 30:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/health", headers={"X-Correlation-Id": "e2e-1"}, timeout=10)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.2)
        assert health is not None, "the stack did not answer within 30 s"
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.headers["x-correlation-id"] == "e2e-1"
        document = httpx.get(f"http://127.0.0.1:{api_port}/openapi.json", timeout=10).json()
        assert "/health" in document["paths"]
        assert document["servers"] == [{"url": f"http://127.0.0.1:{api_port}"}]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"API        http://127.0.0.1:{api_port}" in output
    assert "GET /health -> HealthFunction 200" in output
    assert "devstack: stopping" in output
    assert "Traceback" not in output
