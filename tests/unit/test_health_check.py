"""The health check's cache: one round of dependency checks per interval per instance, shared by
concurrent callers, failures included."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from payrail.health import HealthCheck, HealthReport
from payrail.settings import HealthSettings

SETTINGS = HealthSettings(TABLE_NAME="t", HEALTH_CHECK_INTERVAL_SECONDS=5)


class Rounds:
    def __init__(self, status: str = "ok", seconds: float = 0.0) -> None:
        self.count = 0
        self.status = status
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, settings: HealthSettings) -> HealthReport:
        with self.lock:
            self.count += 1
        time.sleep(self.seconds)
        checks = {"table": "ok", "queues": "ok" if self.status == "ok" else "failing"}
        return HealthReport(status=self.status, checks=checks)  # type: ignore[arg-type]


def test_requests_within_the_interval_share_one_round_and_the_next_interval_runs_another() -> None:
    # Given a check whose clock we move
    now = [1000.0]
    rounds = Rounds()
    check = HealthCheck(run=rounds, clock=lambda: now[0])
    # When 50 requests come within 4.9 s, then one at 5 s after the round
    answers = [check.report(SETTINGS) for _ in range(50)]
    now[0] += 4.9
    answers.append(check.report(SETTINGS))
    assert rounds.count == 1
    now[0] += 0.1
    answers.append(check.report(SETTINGS))
    # Then the first 51 shared one round and the 52nd ran the second
    assert rounds.count == 2
    assert {answer.status for answer in answers} == {"ok"}


def test_concurrent_requests_wait_for_the_round_in_progress_instead_of_starting_their_own() -> None:
    # Given a round of checks that takes 0.2 s
    rounds = Rounds(seconds=0.2)
    check = HealthCheck(run=rounds)
    # When 16 requests arrive at once
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: check.report(SETTINGS), range(16)))
    # Then one round ran and all 16 got its answer
    assert rounds.count == 1
    assert len({id(answer) for answer in answers}) == 1


def test_a_failing_round_is_cached_too_so_a_failing_dependency_is_not_asked_more_often() -> None:
    rounds = Rounds(status="degraded")
    check = HealthCheck(run=rounds)
    answers = [check.report(SETTINGS) for _ in range(20)]
    assert rounds.count == 1
    assert {answer.status for answer in answers} == {"degraded"}


def test_an_interval_of_zero_checks_on_every_request() -> None:
    rounds = Rounds()
    check = HealthCheck(run=rounds)
    for _ in range(3):
        check.report(SETTINGS.model_copy(update={"check_interval_seconds": 0}))
    assert rounds.count == 3
