"""Requests per second and latency percentiles over HTTP with N concurrent clients.

Bounded in count and time: each level sends at most ``requests`` requests and stops after
``max_seconds``. Clients are threads with their own keep-alive connection, like separate users.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

Request = Callable[[httpx.Client, int], httpx.Response]


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(
    base_url: str,
    send: Request,
    concurrency: int,
    requests: int,
    max_seconds: float = 60.0,
    ok: Callable[[httpx.Response], bool] | None = None,
) -> LoadResult:
    accept = ok or (lambda response: response.status_code < 400)
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client_loop() -> None:
        nonlocal errors
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.perf_counter()
                try:
                    good = accept(send(client, index))
                except httpx.HTTPError:
                    good = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors += 0 if good else 1

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return LoadResult(
        concurrency, len(latencies), errors, seconds, round(percentile(latencies, 0.5), 1), round(percentile(latencies, 0.99), 1)
    )


def median_of(results: list[LoadResult]) -> LoadResult:
    """The median of several runs of one level, figure by figure."""
    return LoadResult(
        concurrency=results[0].concurrency,
        requests=int(statistics.median(r.requests for r in results)),
        errors=int(statistics.median(r.errors for r in results)),
        seconds=statistics.median(r.seconds for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
    )
