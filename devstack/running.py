"""A local stack in a process of its own (``python -m devstack start``), for tests, the demo,
benchmarks and the reliability suite: its own moto, its own ports, stopped like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from devstack.resources import local_client
from devstack.stack import free_port

ROOT = Path(__file__).resolve().parent.parent


class RunningStack:
    def __init__(
        self, workdir: Path, parameters: str = "", schedules: bool = False, timeout: float = 90, start_options: list[str] | None = None
    ) -> None:
        self.api_port, self.moto_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "devstack.log"
        self._log = self.log_path.open("w")
        overrides = f"PublicBaseUrl={self.api_url} AllowedOrigins={self.api_url} {parameters}".strip()
        command = [
            sys.executable,
            "-m",
            "devstack",
            "--template",
            str(ROOT / "template.yaml"),
            "--parameter-overrides",
            overrides,
            "start",
            "--api-port",
            str(self.api_port),
            "--moto-port",
            str(self.moto_port),
        ]
        if not schedules:
            command.append("--no-schedules")
        command += start_options or []
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        self._wait_until_healthy(timeout)
        self.state: dict[str, Any] = json.loads((workdir / ".devstack/state.json").read_text())

    def _wait_until_healthy(self, timeout: float) -> None:
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
        self.stop()
        raise RuntimeError(f"devstack did not become healthy in {timeout:.0f} s:\n{self.log_path.read_text()}")

    def physical(self, logical_id: str) -> str:
        return str(self.state["physical"][logical_id]["ref"])

    def client(self, service: str) -> Any:
        return local_client(service, self.moto_url)

    def fire(self, name: str) -> Any:
        """Run a schedule now; RuntimeError with the runtime's reason when the invocation failed."""
        response = httpx.post(f"{self.api_url}/_local/schedules/{name}", timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"firing {name} failed ({response.status_code}): {response.text[:500]}")
        return response.json()["result"]

    def chaos(self) -> dict[str, float]:
        """The faults the stack injected so far (duplicate deliveries, killed invocations)."""
        return dict(httpx.get(f"{self.api_url}/_local/chaos", timeout=10).json())

    def denied_calls(self) -> dict[str, int]:
        """The functions whose IAM role refused a call so far, with how many (``GET /_local/functions``)."""
        functions = httpx.get(f"{self.api_url}/_local/functions", timeout=10).json()
        return {name: stats["denied_calls"] for name, stats in functions.items() if stats["denied_calls"]}

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
