"""Is the product able to serve? The table and every queue must answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from payrail.db import table
from payrail.errors import DependencyFailure
from payrail.queues import queue_depth
from payrail.settings import TableSettings, load


class HealthSettings(TableSettings):
    model_config = ConfigDict(extra="ignore", frozen=True)
    queue_urls: str = Field(default="", alias="QUEUE_URLS")

    @property
    def queues(self) -> list[str]:
        return [url for url in self.queue_urls.split(",") if url]


class HealthReport(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, str] = Field(description="Each dependency and what it answered: ok, or why not")


def check_dependencies() -> HealthReport:
    settings = load(HealthSettings)
    checks: dict[str, str] = {}
    try:
        status = table().describe().get("TableStatus", "UNKNOWN")
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
