"""Powertools logger, metrics and tracer, set up once for every function.

The correlation id travels with a request from the API through SQS (as the ``correlation_id``
message attribute) to the workers and the provider calls; :func:`correlation_id` gives the
current one to code that needs to pass it on.
"""

from __future__ import annotations

import re
import uuid
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

# Every handler publishes the cold-start metric, so an invocation with no other metric is normal.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
metrics = Metrics()
# Only the libraries this service calls out with are patched: patching everything X-Ray supports
# imports every one of them that happens to be installed, on every cold start.
tracer = Tracer(patch_modules=("botocore", "httpx"))

CORRELATION_HEADER = "x-correlation-id"
CORRELATION_ATTRIBUTE = "correlation_id"
_SANE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def sane_correlation_id(candidate: Any) -> str | None:
    """``candidate`` if it is safe to echo and log, else None."""
    if isinstance(candidate, str) and _SANE_CORRELATION_ID.fullmatch(candidate):
        return candidate
    return None


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def set_correlation_id(value: str) -> None:
    logger.set_correlation_id(value)


def correlation_id() -> str:
    """The current invocation's correlation id (a fresh one outside any invocation)."""
    current = logger.get_correlation_id()
    if not current:
        current = new_correlation_id()
        logger.set_correlation_id(current)
    return current
