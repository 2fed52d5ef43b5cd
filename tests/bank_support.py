"""The bank-sync tests' world: the template's resources in moto, the bank API, the sandbox bank,
the sync worker and the scheduled job loaded in-process, with HTTP between them routed through
the local gateway's own event building (devstack.inprocess), so no sockets are involved."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import httpx

from devstack.events import sqs_record
from devstack.inprocess import InProcessApi
from tests.support import LambdaContext, Resources, clear_caches, load_function

BASE = "http://127.0.0.1:3000"
FUNCTIONS = ("SandboxFunction", "BankApiFunction", "BankSyncWorkerFunction", "ScheduledSyncFunction")


class BankWorld:
    def __init__(self, moto_endpoint: str, resources: Resources | None = None) -> None:
        self.resources = resources or Resources(moto_endpoint)
        self._saved = dict(os.environ)
        environment: dict[str, str] = {}
        for logical_id in FUNCTIONS:
            environment.update(self.resources.environment(logical_id))
        os.environ.clear()
        os.environ.update(environment)
        clear_caches()
        self.handlers = {logical_id: load_function(self.resources, logical_id).lambda_handler for logical_id in FUNCTIONS}
        from payrail.bank import provider

        self.transport = InProcessApi(
            self.resources.functions, {k: v for k, v in self.handlers.items() if k in ("SandboxFunction", "BankApiFunction")}
        )
        provider.TRANSPORT = self.transport
        self.http = httpx.Client(transport=self.transport, base_url=BASE)
        self.queue_url = self.resources.ref("BankSyncQueue")
        self.table_name = self.resources.ref("Table")

    def close(self) -> None:
        from payrail.bank import provider

        provider.TRANSPORT = None
        self.http.close()
        os.environ.clear()
        os.environ.update(self._saved)
        clear_caches()

    # ---------------------------------------------------------------- the user's side
    def token(self, user_id: str) -> str:
        from payrail.auth.tokens import issue_access_token
        from payrail.settings import SignedInSettings

        return issue_access_token(self.resources.settings("BankApiFunction", SignedInSettings), user_id, "session-" + user_id)

    def auth(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def link(self, user_id: str, login: str) -> dict[str, Any]:
        """The whole linking flow: connect, the bank's authorize, the callback; the new connection."""
        start = self.http.get("/bank/connect", params={"login_hint": login}, headers=self.auth(user_id))
        assert start.status_code == 302, start.text
        binding = binding_cookie(start)
        at_bank = self.http.get(start.headers["location"])
        assert at_bank.status_code == 302, at_bank.text
        back = self.http.get(
            at_bank.headers["location"], headers={"Accept": "application/json", "Cookie": f"__Secure-payrail_oauth={binding}"}
        )
        assert back.status_code == 201, back.text
        return back.json()

    # ---------------------------------------------------------------- the sandbox bank
    def bank(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.http.put(f"/sandbox/bank/control/{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self, login: str) -> dict[str, Any]:
        response = self.http.get("/sandbox/bank/control/stats", params={"user": login})
        assert response.status_code == 200, response.text
        return response.json()

    # ---------------------------------------------------------------- the worker
    def sync_event(self, connection_id: str, message_id: str | None = None, sync_id: str | None = None) -> dict[str, Any]:
        """A bank-sync message as SQS delivers it; with ``sync_id``, as an on-demand request sends it."""
        body = {"connection_id": connection_id, **({"sync_id": sync_id} if sync_id else {})}
        message = {
            "MessageId": message_id or str(uuid.uuid4()),
            "ReceiptHandle": "local-" + uuid.uuid4().hex,
            "Body": json.dumps(body),
            # What SQS reports of every message received with AttributeNames=All.
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": str(int(time.time() * 1000)),
                "SenderId": "AIDALOCAL",
                "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
            },
            "MessageAttributes": {"correlation_id": {"DataType": "String", "StringValue": "test-" + connection_id}},
        }
        return {"Records": [sqs_record(message, f"arn:aws:sqs:us-east-1:123456789012:{self.queue_url.rsplit('/', 1)[-1]}")]}

    def sync(self, connection_id: str, sync_id: str | None = None) -> dict[str, Any]:
        """One worker invocation for one connection; its partial batch response."""
        return dict(self.handlers["BankSyncWorkerFunction"](self.sync_event(connection_id, sync_id=sync_id), LambdaContext()))

    def connection(self, connection_id: str) -> dict[str, Any]:
        from payrail.db import bank as store

        connection = store.get_connection(connection_id)
        assert connection is not None
        return connection.model_dump()

    def tokens(self, connection_id: str) -> dict[str, Any]:
        from payrail.db import bank as store

        tokens = store.get_tokens(connection_id)
        assert tokens is not None
        return tokens.model_dump()

    def stored_transactions(self, connection_id: str) -> list[dict[str, Any]]:
        dynamodb = self.resources.client("dynamodb")
        pages = dynamodb.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :txn)",
            ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}, ":txn": {"S": "TXN#"}},
        )
        from payrail.db import deserialize

        return [deserialize(item) for page in pages for item in page["Items"] if "removed_at" not in item]

    def table_dump(self) -> str:
        dynamodb = self.resources.client("dynamodb")
        items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=self.table_name) for item in page["Items"]]
        return json.dumps(items, default=str)


def binding_cookie(response: httpx.Response) -> str:
    """The OAuth binding cookie a /bank/connect answer sets, read from its Set-Cookie header."""
    name = "__Secure-payrail_oauth"
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie was set")
