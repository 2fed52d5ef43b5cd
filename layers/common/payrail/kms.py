"""The KMS adapter: encrypt and decrypt small secrets under a key, and data keys for envelope
encryption, each bound to an encryption context so a ciphertext cannot be replayed for another
purpose or record; errors mapped once. Nothing here logs key material; a plaintext data key
lives only in the caller's memory."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from payrail import aws


def encrypt(key_id: str, plaintext: bytes, context: Mapping[str, str]) -> str:
    """Base64 ciphertext of ``plaintext`` (at most 4 KiB) under ``key_id``."""
    try:
        answer = aws.client("kms").encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise aws.failure("KMS encrypt", error) from error
    return base64.b64encode(answer["CiphertextBlob"]).decode()


def decrypt(ciphertext: str, context: Mapping[str, str]) -> bytes:
    try:
        answer = aws.client("kms").decrypt(CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise aws.failure("KMS decrypt", error) from error
    return bytes(answer["Plaintext"])


# -------------------------------------------------------------------- envelope encryption
@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    ciphertext: bytes


class KeyRefused(Exception):
    """KMS will not decrypt this data key (wrong context, wrong key, or tampered)."""


def generate_data_key(key_id: str, context: Mapping[str, str]) -> DataKey:
    """A fresh AES-256 data key, in plaintext and encrypted under ``key_id`` with ``context`` bound to it."""
    try:
        answer = aws.client("kms").generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise aws.failure("KMS GenerateDataKey", error) from error
    return DataKey(plaintext=bytes(answer["Plaintext"]), ciphertext=bytes(answer["CiphertextBlob"]))


def decrypt_data_key(ciphertext: bytes, context: Mapping[str, str]) -> bytes:
    """The plaintext of an encrypted data key; KeyRefused when ``context`` differs from the one it was made with."""
    try:
        answer = aws.client("kms").decrypt(CiphertextBlob=ciphertext, EncryptionContext=dict(context))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
            raise KeyRefused(code) from error
        raise aws.failure("KMS Decrypt", error) from error
    except BotoCoreError as error:
        raise aws.failure("KMS Decrypt", error) from error
    return bytes(answer["Plaintext"])
