"""The KMS adapter: data keys for envelope encryption, and errors turned into the project's own.

Nothing here logs key material; a plaintext data key lives only in the caller's memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from payrail import aws
from payrail.errors import DependencyFailure


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    ciphertext: bytes


def generate_data_key(key_id: str, context: Mapping[str, str]) -> DataKey:
    """A fresh AES-256 data key, in plaintext and encrypted under ``key_id`` with ``context`` bound to it."""
    try:
        answer = aws.client("kms").generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context))
    except (ClientError, BotoCoreError) as error:
        raise DependencyFailure(f"KMS GenerateDataKey failed: {type(error).__name__}") from error
    return DataKey(plaintext=bytes(answer["Plaintext"]), ciphertext=bytes(answer["CiphertextBlob"]))


def decrypt_data_key(ciphertext: bytes, context: Mapping[str, str]) -> bytes:
    """The plaintext of an encrypted data key; KMS refuses it when ``context`` differs from the one it was made with."""
    try:
        answer = aws.client("kms").decrypt(CiphertextBlob=ciphertext, EncryptionContext=dict(context))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"}:
            raise KeyRefused(code) from error
        raise DependencyFailure(f"KMS Decrypt failed: {code}") from error
    except BotoCoreError as error:
        raise DependencyFailure(f"KMS Decrypt failed: {type(error).__name__}") from error
    return bytes(answer["Plaintext"])


class KeyRefused(Exception):
    """KMS will not decrypt this data key (wrong context, wrong key, or tampered)."""
