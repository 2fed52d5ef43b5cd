"""The sandbox bank (OAuth with PKCE, accounts, Plaid-style transactions/sync), served under /sandbox/bank.

* ``GET /authorize`` signs in the user named by ``login_hint`` without a form (a new user gets
  15 transactions) and redirects back with ``code`` and ``state``; S256 PKCE is required.
* ``POST /token``: ``authorization_code`` (single-use code, PKCE verifier checked) and
  ``refresh_token`` (refresh tokens rotate: the old one stops working). Access tokens start with
  ``sandbox-access-`` and expire; refresh tokens start with ``sandbox-refresh-``.
* ``GET /accounts`` and ``POST /transactions/sync`` (``cursor``, ``count``, default 5) with a
  Bearer access token; an expired one answers 401.
* Control endpoints for tests and demos (body ``{"user": login, ...}``):
  ``PUT /control/transactions`` ``{"add": n, "modify": n, "remove": n}``;
  ``PUT /control/faults`` ``{"kind": "rate_limited" | "unauthorized" | "server_error" |
  "mutation_during_pagination", "count": n, "after": k, "retry_after": s}`` makes the ``count``
  transactions/sync requests after the next ``k`` fail that way (``{"kind": null}`` clears);
  ``PUT /control/token-expiry`` expires every access token issued so far;
  ``GET /control/stats?user=`` counts requests and grants.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from payrail_sandbox import bank_store as store

router = APIGatewayHttpRouter()

NEW_USER_TRANSACTIONS = 15
DEFAULT_PAGE = 5
MAX_PAGE = 500
ACCESS_SECONDS = 3600
REFRESH_SECONDS = 30 * 86400
CODE_SECONDS = 300
FAULTS = {"rate_limited": 429, "unauthorized": 401, "server_error": 500, "mutation_during_pagination": 400}
TAGS = ["Sandbox bank"]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=body, headers=headers or {})


def _oauth_error(error: str, description: str, status: int = 400) -> Response[Any]:
    return _json(status, {"error": error, "error_description": description})


def _query(name: str) -> str:
    return router.current_event.get_query_string_value(name, "") or ""


def _body() -> dict[str, Any]:
    try:
        document = json.loads(router.current_event.decoded_body or "{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _form() -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(router.current_event.decoded_body or "").items()}


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@router.get(
    "/authorize", summary="Sandbox bank: sign the login_hint user in and redirect back with a code", tags=TAGS, include_in_schema=True
)
def authorize() -> Response[Any]:
    redirect_uri, state, challenge = _query("redirect_uri"), _query("state"), _query("code_challenge")
    login, client_id = _query("login_hint") or "sandbox-user@example.com", _query("client_id")
    if urlparse(redirect_uri).scheme not in ("http", "https") or not client_id:
        return _oauth_error("invalid_request", "client_id and an http(s) redirect_uri are required")
    if _query("response_type") != "code" or _query("code_challenge_method") != "S256" or len(challenge) < 43 or not state:
        return _oauth_error("invalid_request", "response_type=code, state and an S256 code_challenge are required")
    store.ensure_user(login, NEW_USER_TRANSACTIONS)
    code = secrets.token_urlsafe(24)
    store.save_code(code, {"login": login, "client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge}, CODE_SECONDS)
    separator = "&" if urlparse(redirect_uri).query else "?"
    return Response(status_code=302, headers={"Location": f"{redirect_uri}{separator}{urlencode({'code': code, 'state': state})}"})


def _issue(login: str) -> dict[str, Any]:
    user = store.get_user(login) or {}
    access, refresh = "sandbox-access-" + secrets.token_urlsafe(24), "sandbox-refresh-" + secrets.token_urlsafe(24)
    store.save_token(
        access,
        {
            "kind": "access",
            "login": login,
            "generation": int(user.get("token_generation", 0)),
            "valid_until": int(time.time()) + ACCESS_SECONDS,
        },
        ACCESS_SECONDS,
    )
    store.save_token(refresh, {"kind": "refresh", "login": login}, REFRESH_SECONDS)
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": ACCESS_SECONDS}


@router.post("/token", summary="Sandbox bank: exchange a code (with PKCE) or rotate a refresh token", tags=TAGS)
def token() -> Response[Any]:
    form = _form()
    grant = form.get("grant_type")
    if grant == "authorization_code":
        record = store.consume_code(form.get("code", ""))
        if (
            record is None
            or int(record["expires_at"]) < time.time()
            or record["redirect_uri"] != form.get("redirect_uri")
            or record["client_id"] != form.get("client_id")
            or _challenge(form.get("code_verifier", "")) != record["challenge"]
        ):
            return _oauth_error("invalid_grant", "the code is unknown, used, expired or does not match")
        login = str(record["login"])
    elif grant == "refresh_token":
        record = store.consume_token(form.get("refresh_token", ""), "refresh")
        if record is None:
            return _oauth_error("invalid_grant", "the refresh token is unknown or already used")
        login = str(record["login"])
    else:
        return _oauth_error("unsupported_grant_type", "authorization_code or refresh_token")
    store.count_token_grant(login, grant)
    return _json(200, _issue(login))


def _bearer_user() -> dict[str, Any] | None:
    """The user an unexpired access token belongs to (counting the request), or None."""
    scheme, _, value = (router.current_event.headers.get("authorization") or "").partition(" ")
    record = store.get_token(value.strip()) if scheme.lower() == "bearer" and value.strip() else None
    if record is None or record.get("kind") != "access" or int(record["valid_until"]) < time.time():
        return None
    user = store.get_user(str(record["login"]))
    if user is None or int(user.get("token_generation", 0)) != int(record["generation"]):
        return None
    return user


def _unauthorized() -> Response[Any]:
    return _json(401, {"error_code": "INVALID_ACCESS_TOKEN", "error_message": "the access token is expired or unknown"})


@router.get("/accounts", summary="Sandbox bank: the user's accounts", tags=TAGS)
def accounts() -> Response[Any]:
    user = _bearer_user()
    if user is None:
        return _unauthorized()
    return _json(200, {"accounts": [{"account_id": user["account_id"], "name": "Sandbox cheque", "type": "depository", "currency": "ZAR"}]})


@router.post("/transactions/sync", summary="Sandbox bank: changes since a cursor (added, modified, removed)", tags=TAGS)
def transactions_sync() -> Response[Any]:
    user = _bearer_user()
    if user is None:
        return _unauthorized()
    login = str(user["login"])
    user = store.count_sync_request(login)
    fault = user.get("fault")
    if fault and store.step_fault(login, fault):
        kind = str(fault["kind"])
        if kind == "rate_limited":
            return _json(429, {"error_code": "RATE_LIMIT_EXCEEDED"}, {"Retry-After": str(int(fault.get("retry_after", 1)))})
        if kind == "unauthorized":
            return _unauthorized()
        if kind == "mutation_during_pagination":
            return _json(400, {"error_code": "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"})
        return _json(500, {"error_code": "INTERNAL_SERVER_ERROR"})
    body = _body()
    cursor, count = str(body.get("cursor") or ""), body.get("count", DEFAULT_PAGE)
    if not (cursor == "" or cursor.isdigit()) or not isinstance(count, int) or not 1 <= count <= MAX_PAGE:
        return _json(400, {"error_code": "INVALID_FIELD", "error_message": "cursor must come from a previous answer; 1 <= count <= 500"})
    entries, has_more = store.log_after(login, int(cursor or 0), count)
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    first_kind: dict[str, str] = {}
    for entry in entries:
        transaction = dict(entry["transaction"])
        first_kind.setdefault(transaction["transaction_id"], str(entry["kind"]))
        latest[transaction["transaction_id"]] = (str(entry["kind"]), transaction)
    added, modified, removed = [], [], []
    for transaction_id, (kind, transaction) in latest.items():
        if kind == "removed":
            removed.append({"transaction_id": transaction_id})
        elif first_kind[transaction_id] == "added":
            added.append(transaction)
        else:
            modified.append(transaction)
    next_cursor = str(int(entries[-1]["sk"].removeprefix("LOG#"))) if entries else cursor
    return _json(200, {"added": added, "modified": modified, "removed": removed, "next_cursor": next_cursor, "has_more": has_more})


def _control_user() -> tuple[str, dict[str, Any]] | Response:
    body = _body()
    login = body.get("user")
    if not isinstance(login, str) or store.get_user(login) is None:
        return _json(404, {"error": "unknown sandbox user"})
    return login, body


@router.put("/control/transactions", summary="Sandbox bank control: add, modify or remove transactions", tags=TAGS)
def control_transactions() -> Response[Any]:
    found = _control_user()
    if isinstance(found, Response):
        return found
    login, body = found
    counts = {name: body.get(name, 0) for name in ("add", "modify", "remove")}
    if not all(isinstance(n, int) and 0 <= n <= 100_000 for n in counts.values()):
        return _json(400, {"error": "add, modify and remove are counts"})
    return _json(
        200,
        {
            "modified": store.modify_transactions(login, counts["modify"]),
            "removed": store.remove_transactions(login, counts["remove"]),
            "added": store.add_transactions(login, counts["add"]),
        },
    )


@router.put("/control/faults", summary="Sandbox bank control: make transactions/sync requests fail", tags=TAGS)
def control_faults() -> Response[Any]:
    found = _control_user()
    if isinstance(found, Response):
        return found
    login, body = found
    kind = body.get("kind")
    if kind is None:
        store.set_fault(login, None)
        return _json(200, {"fault": None})
    fault = {"kind": kind, "remaining": body.get("count", 1), "after": body.get("after", 0), "retry_after": body.get("retry_after", 1)}
    if kind not in FAULTS or not all(isinstance(fault[k], int) and fault[k] >= 0 for k in ("remaining", "after", "retry_after")):
        return _json(400, {"error": f"kind is one of {sorted(FAULTS)}; count, after and retry_after are whole numbers"})
    store.set_fault(login, fault)
    return _json(200, {"fault": fault})


@router.put("/control/token-expiry", summary="Sandbox bank control: expire every access token issued so far", tags=TAGS)
def control_token_expiry() -> Response[Any]:
    found = _control_user()
    if isinstance(found, Response):
        return found
    store.expire_tokens(found[0])
    return _json(200, {"expired": True})


@router.get("/control/stats", summary="Sandbox bank control: request counts and the number of transactions", tags=TAGS)
def control_stats() -> Response[Any]:
    login = _query("user")
    user = store.get_user(login) if login else None
    if user is None:
        return _json(404, {"error": "unknown sandbox user"})
    return _json(
        200,
        {
            "sync_requests": int(user.get("sync_requests", 0)),
            "token_grants": user.get("token_grants", {}),
            "transactions": store.count_transactions(login),
            "fault": user.get("fault"),
        },
    )
