"""Envelope encryption of a connection's provider tokens.

Each save asks KMS for a fresh AES-256 data key (``GenerateDataKey`` under the TokensKey, with
the connection id as encryption context), seals the tokens with AES-256-GCM using the
connection id as associated data, and stores only the ciphertext, the nonce and the encrypted
data key. A sealed blob copied onto another connection fails twice over: KMS refuses the
encryption context and GCM refuses the associated data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payrail import kms

NONCE_BYTES = 12


@dataclass(frozen=True)
class ProviderTokens:
    access_token: str
    refresh_token: str
    access_expires_at: int

    def __repr__(self) -> str:  # never let a token reach a log line through repr()
        return f"ProviderTokens(access_expires_at={self.access_expires_at})"


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    encrypted_key: bytes


class TokensUnreadable(Exception):
    """The sealed tokens do not open for this connection (moved, tampered or the key refused)."""


def _context(connection_id: str) -> dict[str, str]:
    return {"connection_id": connection_id}


def seal(tokens: ProviderTokens, connection_id: str, key_id: str) -> Sealed:
    data_key = kms.generate_data_key(key_id, _context(connection_id))
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(
        {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token, "access_expires_at": tokens.access_expires_at}
    ).encode()
    ciphertext = AESGCM(data_key.plaintext).encrypt(nonce, plaintext, connection_id.encode())
    return Sealed(ciphertext=ciphertext, nonce=nonce, encrypted_key=data_key.ciphertext)


def open_sealed(sealed: Sealed, connection_id: str) -> ProviderTokens:
    try:
        key = kms.decrypt_data_key(sealed.encrypted_key, _context(connection_id))
        plaintext = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, connection_id.encode())
    except (kms.KeyRefused, InvalidTag) as error:
        raise TokensUnreadable("The connection's tokens cannot be decrypted.") from error
    document = json.loads(plaintext)
    return ProviderTokens(document["access_token"], document["refresh_token"], int(document["access_expires_at"]))
