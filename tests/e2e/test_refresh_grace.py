"""Issue 19 item 3: two refreshes with the same token at once must not sign the user out.

Within a short grace window a just-rotated refresh token, presented again, gets the same
successor pair back; after the window, reuse still revokes the whole family (RFC 9700 4.14.2)."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.signin import sign_in_tokens

pytestmark = pytest.mark.e2e


def _concurrent_refreshes(stack: RunningStack, refresh_token: str, count: int) -> list[httpx.Response]:
    barrier = threading.Barrier(count)
    answers: list[httpx.Response | None] = [None] * count

    def one(index: int) -> None:
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            barrier.wait()
            answers[index] = client.post("/auth/refresh", json={"refresh_token": refresh_token})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_concurrent_refreshes_with_one_token_all_get_the_same_working_successor(api: httpx.Client, stack: RunningStack) -> None:
    # Given a signed-in user whose two tabs refresh with the same token at the same moment
    tokens = sign_in_tokens(api, "two.tabs@example.com")
    # When three refreshes race
    answers = _concurrent_refreshes(stack, tokens["refresh_token"], 3)
    # Then every one succeeds with the same successor pair, none is told "session revoked"
    assert [answer.status_code for answer in answers] == [200, 200, 200], [answer.text for answer in answers]
    pairs = {(answer.json()["refresh_token"], answer.json()["access_token"]) for answer in answers}
    assert len(pairs) == 1
    successor, access = pairs.pop()
    assert successor != tokens["refresh_token"]
    # And the successor still works: the session was not revoked
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    assert api.post("/auth/refresh", json={"refresh_token": successor}).status_code == 200


def test_a_retry_within_the_grace_window_gets_the_same_pair(api: httpx.Client) -> None:
    # Given a refresh whose answer the client lost
    tokens = sign_in_tokens(api, "lost.answer@example.com")
    first = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    # When the client retries with the same token at once
    retry = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    # Then it gets the very same successor pair, and that successor keeps working
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == first.json()["refresh_token"]
    assert retry.json()["access_token"] == first.json()["access_token"]
    assert api.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}).status_code == 200
