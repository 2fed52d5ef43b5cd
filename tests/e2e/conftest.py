"""The running local stack, started once for the end-to-end tests and driven over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.resources import local_client
from devstack.stack import free_port
from tests.support import ROOT, TEMPLATE


class RunningStack:
    """``python -m devstack start`` in a process of its own (its own moto, its own state)."""

    def __init__(self, workdir: Path) -> None:
        self.api_port, self.moto_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.workdir = workdir
        self.log_path = workdir / "devstack.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack",
                "--template",
                str(TEMPLATE),
                "--parameter-overrides",
                f"PublicBaseUrl={self.api_url} AllowedOrigins={self.api_url}",
                "start",
                "--api-port",
                str(self.api_port),
                "--moto-port",
                str(self.moto_port),
                "--no-schedules",
            ],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._wait_until_healthy()
        self.state: dict[str, Any] = json.loads((workdir / ".devstack/state.json").read_text())

    def _wait_until_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devstack exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.api_url + "/health", timeout=10).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"devstack did not become healthy:\n{self.log_path.read_text()}")

    def physical(self, logical_id: str) -> str:
        return str(self.state["physical"][logical_id]["ref"])

    def client(self, service: str) -> Any:
        return local_client(service, self.moto_url)

    def fire(self, name: str) -> Any:
        response = httpx.post(f"{self.api_url}/_local/schedules/{name}", timeout=120)
        response.raise_for_status()
        return response.json()["result"]

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture
def api(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client
