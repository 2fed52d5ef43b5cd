"""ID-token verification against the provider's JWKS: every forgery the issue lists fails."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from payrail.auth import oidc
from payrail.errors import Unauthorized
from payrail.settings import OidcSettings

ISSUER = "http://127.0.0.1:3000/sandbox/idp"
CLIENT = "payrail-sandbox"
NONCE = "nonce-123"
PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SETTINGS = OidcSettings(issuer=ISSUER, client_id=CLIENT, client_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:x")


class FakeProvider:
    """The provider's discovery document and JWKS, counting JWKS fetches."""

    def __init__(self) -> None:
        self.jwks_fetches = 0
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(PROVIDER_KEY.public_key(), as_dict=True)
        self.jwks = {"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}

    def get(self, url: str, timeout: Any = None) -> Any:
        provider = self

        class Answer:
            def raise_for_status(self) -> None:
                return None

            def json(self) -> dict:
                if url.endswith("/jwks"):
                    provider.jwks_fetches += 1
                    return provider.jwks
                return {
                    "issuer": ISSUER,
                    "jwks_uri": f"{ISSUER}/jwks",
                    "token_endpoint": f"{ISSUER}/token",
                    "authorization_endpoint": f"{ISSUER}/authorize",
                }

        return Answer()


@pytest.fixture
def provider() -> FakeProvider:
    oidc.provider.reset()
    yield FakeProvider()
    oidc.provider.reset()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "azp": CLIENT,
        "sub": "user-1",
        "email": "ada@example.com",
        "iat": now,
        "exp": now + 600,
        "nonce": NONCE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = PROVIDER_KEY, kid: str = "k1", algorithm: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def test_a_genuine_token_verifies(provider: FakeProvider) -> None:
    assert oidc.verify_id_token(SETTINGS, provider, _sign(_claims()), NONCE)["sub"] == "user-1"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("description", "changes"),
    [
        ("wrong issuer", {"iss": "https://evil.example"}),
        ("wrong audience", {"aud": "another-client"}),
        ("another authorized party", {"azp": "another-client"}),
        ("several audiences without azp", {"aud": [CLIENT, "other"], "azp": None}),
        ("expired", {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
        ("issued in the future", {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}),
        ("wrong nonce", {"nonce": "another-nonce"}),
        ("no nonce", {"nonce": None}),
        ("no subject", {"sub": None}),
    ],
)
def test_a_token_with_bad_claims_is_refused(provider: FakeProvider, description: str, changes: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        oidc.verify_id_token(SETTINGS, provider, _sign(_claims(**changes)), NONCE)  # type: ignore[arg-type]


def test_alg_none_is_refused(provider: FakeProvider) -> None:
    unsigned = jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        oidc.verify_id_token(SETTINGS, provider, unsigned, NONCE)  # type: ignore[arg-type]


def test_an_hs256_token_signed_with_the_public_key_is_refused(provider: FakeProvider) -> None:
    public_pem = PROVIDER_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # pyjwt itself refuses to HMAC with a PEM key, so build the forgery by hand, as an attacker would.
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode()) + "." + b64(json.dumps(_claims()).encode())
    forged = signing_input + "." + b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(Unauthorized):
        oidc.verify_id_token(SETTINGS, provider, forged, NONCE)  # type: ignore[arg-type]


def test_a_token_signed_by_another_key_is_refused(provider: FakeProvider) -> None:
    with pytest.raises(Unauthorized):
        oidc.verify_id_token(SETTINGS, provider, _sign(_claims(), key=OTHER_KEY), NONCE)  # type: ignore[arg-type]


def test_unknown_kids_refetch_the_jwks_at_most_once_per_cooldown(provider: FakeProvider) -> None:
    oidc.verify_id_token(SETTINGS, provider, _sign(_claims()), NONCE)  # type: ignore[arg-type]
    assert provider.jwks_fetches == 1
    for attempt in range(5):
        with pytest.raises(Unauthorized):
            oidc.verify_id_token(SETTINGS, provider, _sign(_claims(), key=OTHER_KEY, kid=f"made-up-{attempt}"), NONCE)  # type: ignore[arg-type]
    assert provider.jwks_fetches == 1


def test_a_rotated_key_is_found_by_one_refetch_after_the_cooldown(provider: FakeProvider) -> None:
    settings = SETTINGS.model_copy(update={"jwks_refetch_cooldown_seconds": 0})
    oidc.verify_id_token(settings, provider, _sign(_claims()), NONCE)  # type: ignore[arg-type]
    new_jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_KEY.public_key(), as_dict=True)
    provider.jwks["keys"].append({**new_jwk, "kid": "k2", "alg": "RS256"})
    assert oidc.verify_id_token(settings, provider, _sign(_claims(), key=OTHER_KEY, kid="k2"), NONCE)["sub"] == "user-1"  # type: ignore[arg-type]
    assert provider.jwks_fetches == 2


def test_a_key_the_provider_removed_is_refused_once_the_cached_jwks_expires(provider: FakeProvider) -> None:
    # Given a warm cache that knows k1, with a short lifespan for the test
    settings = SETTINGS.model_copy(update={"jwks_lifespan_seconds": 0.3})
    assert oidc.verify_id_token(settings, provider, _sign(_claims()), NONCE)["sub"] == "user-1"  # type: ignore[arg-type]
    # When the provider rotates the (compromised) k1 out of its JWKS
    new_jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_KEY.public_key(), as_dict=True)
    provider.jwks = {"keys": [{**new_jwk, "kid": "k2", "alg": "RS256", "use": "sig"}]}
    # Then, within the lifespan, k1 is still served from the cache (no refetch per token)
    assert oidc.verify_id_token(settings, provider, _sign(_claims()), NONCE)["sub"] == "user-1"  # type: ignore[arg-type]
    assert provider.jwks_fetches == 1
    # And once it has expired, a token signed with k1 is refused, while k2 verifies
    time.sleep(0.4)
    with pytest.raises(Unauthorized):
        oidc.verify_id_token(settings, provider, _sign(_claims()), NONCE)  # type: ignore[arg-type]
    assert oidc.verify_id_token(settings, provider, _sign(_claims(), key=OTHER_KEY, kid="k2"), NONCE)["sub"] == "user-1"  # type: ignore[arg-type]
    assert provider.jwks_fetches == 2
