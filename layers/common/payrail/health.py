"""Is the product able to serve? The table and every queue must answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from payrail.db import table_status
from payrail.errors import DependencyFailure
from payrail.queues import queue_depth
from payrail.settings import HealthSettings


class HealthReport(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, str] = Field(description="Each dependency and what it answered: ok, or why not")


def check_dependencies(settings: HealthSettings) -> HealthReport:
    checks: dict[str, str] = {}
    try:
        status = table_status()
        checks["table"] = "ok" if status == "ACTIVE" else f"table is {status}"
    except DependencyFailure as error:
        checks["table"] = error.detail
    for url in settings.queues:
        name = "queue:" + url.rsplit("/", 1)[-1]
        try:
            queue_depth(url)
            checks[name] = "ok"
        except DependencyFailure as error:
            checks[name] = error.detail
    ok = all(answer == "ok" for answer in checks.values())
    return HealthReport(status="ok" if ok else "failing", checks=checks)
