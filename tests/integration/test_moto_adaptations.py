"""What the runtime changes in moto for speed (devstack.moto_overheads, devstack.moto_sqs) answers
every call as moto itself does."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest
from moto.kms import models as kms_models

from devstack.moto_overheads import DeferredPrivateKey
from devstack.moto_sqs import release_long_polls
from devstack.resources import local_client


def test_a_symmetric_key_makes_no_key_pair_until_one_is_asked_for(moto_endpoint: str) -> None:
    # Given the adaptation (the session's moto has it), a symmetric and an RSA key
    kms = local_client("kms", moto_endpoint)
    symmetric = kms.create_key(Description="envelope")["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    backend: Any = kms_models.kms_backends["123456789012"]["us-east-1"]
    # Then the symmetric key's pair is not made yet, the RSA key's is
    deferred = backend.keys[symmetric].private_key
    assert isinstance(deferred, DeferredPrivateKey)
    assert deferred._key is None
    assert not isinstance(backend.keys[rsa].private_key, DeferredPrivateKey)
    # And the symmetric key encrypts and decrypts as before
    blob = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    assert deferred._key is None
    # And asking for what only the pair answers makes it, once, as moto would have
    public = kms.get_public_key(KeyId=symmetric)["PublicKey"]
    assert deferred._key is not None
    assert kms.get_public_key(KeyId=symmetric)["PublicKey"] == public
    assert base64.b64encode(public)  # DER bytes of the pair moto made
    signature = kms.sign(KeyId=rsa, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert kms.verify(KeyId=rsa, Message=b"m", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]


def test_moto_still_tells_its_services_apart_with_the_listing_made_once(moto_endpoint: str) -> None:
    from moto import backends

    assert backends.list_of_moto_modules() is backends.list_of_moto_modules()
    assert {"sqs", "kms", "dynamodb"} <= set(backends.list_of_moto_modules())
    sqs = local_client("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName="listed-once")["QueueUrl"]
    assert url in sqs.list_queues(QueueNamePrefix="listed-once")["QueueUrls"]


def test_a_long_poll_answers_a_message_at_once_and_a_release_at_once(moto_endpoint: str) -> None:
    from devstack.moto_sqs import adapt_moto_sqs

    adapt_moto_sqs()
    sqs = local_client("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    answers: list[tuple[float, list[Any]]] = []

    def poll() -> None:
        started = time.perf_counter()
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])
        answers.append((time.perf_counter() - started, messages))

    # Given a long poll waiting on an empty queue, a message sent answers it at once
    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.3)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    waiting.join(timeout=5)
    assert answers[0][0] < 2
    assert [m["Body"] for m in answers[0][1]] == ["now"]
    # And a delayed message comes when it is visible, within moto's 1 s rescan, inside the same poll
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    waiting = threading.Thread(target=poll)
    waiting.start()
    waiting.join(timeout=5)
    assert 0.5 < answers[1][0] < 3
    assert [m["Body"] for m in answers[1][1]] == ["later"]
    # And a release ends a waiting poll at once, with nothing
    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.3)
    release_long_polls()
    waiting.join(timeout=5)
    assert not waiting.is_alive()
    assert answers[2][0] < 2
    assert answers[2][1] == []


def test_a_receive_checks_retention_as_moto_does_without_reading_every_attribute(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import backends
    from moto.sqs.models import Queue, SQSBackend

    from devstack.moto_sqs import adapt_moto_sqs

    adapt_moto_sqs()
    sqs = local_client("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    backend = backends.get_backend("sqs")["123456789012"]["us-east-1"]
    queue = backend.get_queue("retention")
    check = SQSBackend.is_message_valid_based_on_retention_period
    # The check answers as moto's own for a message within the retention period and one past it
    fresh, stale = queue._messages[0], queue._messages[-1]
    stale.sent_timestamp -= 61_000
    for message in (fresh, stale):
        assert check(backend, "retention", message) == check.moto(backend, "retention", message)
    assert check(backend, "retention", fresh) is True
    assert check(backend, "retention", stale) is False
    # And a receive hands out those within it (moto stops at the first past it) without computing
    # the queue's attributes: moto's own check computes them three times per message handed out,
    # each a scan of the whole queue
    computed = []
    attributes = Queue.attributes
    monkeypatch.setattr(Queue, "attributes", property(lambda q: computed.append(q.name) or attributes.fget(q)))
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30)["Messages"]
    assert sorted(m["Body"] for m in received) == [f"m{i}" for i in range(9)]
    assert computed == []
