"""AWS clients, created once per process with timeouts that suit Lambda.

The endpoint comes from the standard ``AWS_ENDPOINT_URL`` variable when it is set (the local
runtime points it at moto), so no code here knows whether it talks to AWS or to a stand-in.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from payrail.errors import DependencyFailure

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
)
# One session for every client: each session loads the endpoint rules and the list of services
# again (about 100 ms of a cold start per extra client). A session is not thread-safe, so clients
# are made from it one at a time.
_CREATING = threading.Lock()


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    with _CREATING:
        return session().client(service, config=_CONFIG)  # type: ignore[call-overload]


def failure(what: str, error: ClientError | BotoCoreError) -> Exception:
    """What an adapter raises for a failed call. An ``AccessDeniedException`` is a bug in the
    function's IAM policy, not an outage: it stays the ClientError (a 500 on the API, a failed
    record on a queue) instead of a DependencyFailure, which would tell the caller to retry."""
    if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "AccessDeniedException":
        return error
    code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
    return DependencyFailure(f"{what} failed: {code or type(error).__name__}")
