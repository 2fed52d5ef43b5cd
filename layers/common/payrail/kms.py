"""The KMS adapter: encrypt and decrypt small secrets under a key, bound to an encryption
context so a ciphertext cannot be replayed for another purpose, and errors mapped once."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from botocore.exceptions import BotoCoreError, ClientError

from payrail import aws
from payrail.errors import DependencyFailure


def encrypt(key_id: str, plaintext: bytes, context: Mapping[str, str]) -> str:
    """Base64 ciphertext of ``plaintext`` (at most 4 KiB) under ``key_id``."""
    try:
        answer = aws.client("kms").encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise DependencyFailure(f"KMS encrypt failed: {type(error).__name__}") from error
    return base64.b64encode(answer["CiphertextBlob"]).decode()


def decrypt(ciphertext: str, context: Mapping[str, str]) -> bytes:
    try:
        answer = aws.client("kms").decrypt(CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise DependencyFailure(f"KMS decrypt failed: {type(error).__name__}") from error
    return bytes(answer["Plaintext"])
