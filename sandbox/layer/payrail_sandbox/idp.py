"""The sandbox OpenID Connect identity provider, served under /sandbox/idp.

It behaves like Google's for the authorization-code flow, so switching to Google is
configuration only: a discovery document, an authorize endpoint (which signs the user in without
a form: ``login_hint=<email>`` picks the user, else a default user), a token endpoint that
enforces the registered client, the redirect URI, single-use codes and the PKCE (S256)
verifier, and a JWKS of RS256 keys with ``kid``s. ``POST /keys/rotate`` starts signing with the next (already published) key.

``PUT /behaviour`` makes it behave like other providers, for tests: ``id_token_claims:
"minimal"`` issues ID tokens with only ``iss``/``sub``/``aud``/``exp``/``iat``/``nonce``, as
panva's OpenID-Certified ``oidc-provider`` does by default (``conformIdTokenClaims``: OIDC Core
5.4 serves scope claims from UserInfo in the code flow); ``userinfo`` chooses what the UserInfo
endpoint (``GET|POST /userinfo`` with the access token as Bearer) answers: the scope's claims,
``sub`` only, or another ``sub``; ``client_auth_methods`` is what the token endpoint accepts and
discovery advertises (``client_secret_basic`` decodes the form-urlencoded ``id:secret`` of RFC
6749 2.3.1, as oidc-provider does).

Its state lives in the table: codes (by digest, single use, 60 s) and the signing keys, whose
private halves are stored encrypted with KMS, never in plaintext.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import time
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode

import jwt
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities import parameters
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from payrail import kms
from payrail.auth.oauth_state import pkce_challenge
from payrail.db import ConditionFailed
from payrail.http import json_response
from pydantic import BaseModel, ConfigDict, Field

from payrail_sandbox import settings as sandbox_settings
from payrail_sandbox.settings import SandboxSettings
from payrail_sandbox.store import digest, key
from payrail_sandbox.store import sandbox_table as table

router = APIGatewayHttpRouter()

CODE_TTL_SECONDS = 60
ID_TOKEN_SECONDS = 3600
DEFAULT_EMAIL = "ada@example.com"
TAGS = ["Sandbox identity provider (dev only)"]
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,200}\.[A-Za-z]{2,24}$")
_KEYS_KEY = {"pk": key("idp"), "sk": "KEYS"}
_BEHAVIOUR_KEY = {"pk": key("idp"), "sk": "BEHAVIOUR"}
AuthMethod = Literal["client_secret_basic", "client_secret_post"]


class IdpBehaviour(BaseModel):
    """How the sandbox provider behaves (``PUT /behaviour``); the default is Google-like."""

    model_config = ConfigDict(extra="forbid")

    id_token_claims: Literal["full", "minimal"] = Field(
        default="full", description="minimal: only iss, sub, aud, exp, iat, nonce (oidc-provider's default)"
    )
    userinfo: Literal["scope", "sub_only", "other_sub"] = Field(
        default="scope", description="What UserInfo answers: the scope's claims, sub only, or another user's sub"
    )
    client_auth_methods: list[AuthMethod] = Field(
        default=["client_secret_post", "client_secret_basic"], min_length=1, description="Accepted at the token endpoint"
    )


def current_behaviour() -> IdpBehaviour:
    item = table().get(_BEHAVIOUR_KEY)
    return IdpBehaviour.model_validate(json.loads(item["behaviour"])) if item else IdpBehaviour()


def _settings() -> SandboxSettings:
    return sandbox_settings.of(router)


def _client_secret() -> str:
    return str(parameters.get_secret(_settings().oidc_client_secret_arn, max_age=300))


def _oauth_error(status: int, error: str, description: str) -> Response[dict]:
    return Response(status, "application/json", {"error": error, "error_description": description}, headers={"Cache-Control": "no-store"})


def _shown_error(error: str, description: str) -> Response[str]:
    return Response(
        400, "application/json", json.dumps({"error": error, "error_description": description}), headers={"Cache-Control": "no-store"}
    )


# -------------------------------------------------------------------- signing keys
def _new_key() -> tuple[dict[str, Any], rsa.RSAPrivateKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(8)
    public_jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public_jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    record = {
        "kid": kid,
        "public_jwk": json.dumps(public_jwk),
        "private": kms.encrypt(_settings().sandbox_key_id, pem, {"purpose": "sandbox-idp", "kid": kid}),
    }
    return record, private


def _keys_record() -> dict[str, Any]:
    """The signing keys, created on first use (a conditional put: concurrent first uses agree).

    Like Google, the JWKS always publishes the next key before it signs with it, so relying
    parties that cached the JWKS already know a key when rotation makes it active."""
    stored = table().get(_KEYS_KEY)
    if stored:
        return stored
    (active, _), (upcoming, _) = _new_key(), _new_key()
    with contextlib.suppress(ConditionFailed):
        table().put({**_KEYS_KEY, "active": active["kid"], "keys": [active, upcoming], "version": 1}, condition="attribute_not_exists(pk)")
    stored = table().get(_KEYS_KEY)
    assert stored is not None
    return stored


@cache
def _private_key(kid: str, ciphertext: str) -> Any:
    pem = kms.decrypt(ciphertext, {"purpose": "sandbox-idp", "kid": kid})
    return serialization.load_pem_private_key(pem, password=None)


def _signing_key() -> tuple[str, Any]:
    record = _keys_record()
    active = next(key for key in record["keys"] if key["kid"] == record["active"])
    return active["kid"], _private_key(active["kid"], active["private"])


def rotate_keys() -> str:
    """Start signing with the published next key and publish a new next key; older keys stay
    in the JWKS so tokens they signed still verify."""
    current = _keys_record()
    promoted = current["keys"][-1]["kid"]
    record, _ = _new_key()
    table().update(
        _KEYS_KEY,
        "SET #keys = list_append(#keys, :new), active = :kid, version = version + :one",
        condition="version = :version",
        names={"#keys": "keys"},
        values={":new": [record], ":kid": promoted, ":one": 1, ":version": current["version"]},
    )
    return str(promoted)


# -------------------------------------------------------------------- codes
def _code_key(code: str) -> dict[str, str]:
    return {"pk": key("idp", "CODE", digest(code)), "sk": "CODE"}


def _subject(email: str) -> str:
    return "sandbox-" + hashlib.sha256(email.lower().encode()).hexdigest()[:20]


# -------------------------------------------------------------------- routes
@router.get("/.well-known/openid-configuration", summary="OpenID Connect discovery document", tags=TAGS)
def discovery() -> Response[dict]:
    issuer = _settings().issuer
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "userinfo_endpoint": f"{issuer}/userinfo",
        "token_endpoint_auth_methods_supported": current_behaviour().client_auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub", "nonce", "azp"],
    }
    return Response(200, "application/json", document, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/jwks", summary="The provider's public signing keys", tags=TAGS)
def jwks() -> Response[dict]:
    keys = [json.loads(key["public_jwk"]) for key in _keys_record()["keys"]]
    return Response(200, "application/json", {"keys": keys}, headers={"Cache-Control": "public, max-age=300"})


@router.put("/behaviour", summary="Make the provider behave like another one (sandbox control)", tags=TAGS)
def put_behaviour(behaviour: IdpBehaviour) -> Response[IdpBehaviour]:
    table().put({**_BEHAVIOUR_KEY, "behaviour": behaviour.model_dump_json()})
    return json_response(behaviour)


@router.get("/behaviour", summary="How the provider behaves", tags=TAGS)
def get_behaviour() -> Response[IdpBehaviour]:
    return json_response(current_behaviour())


@router.post("/keys/rotate", summary="Add a new signing key and make it active (sandbox control)", tags=TAGS)
def rotate() -> Response[dict]:
    return Response(200, "application/json", {"active_kid": rotate_keys()})


@router.get("/authorize", summary="Sign the user in without a form and redirect back with a code", tags=TAGS)
def authorize(
    client_id: Annotated[str, Query(max_length=200)] = "",
    redirect_uri: Annotated[str, Query(max_length=500)] = "",
    response_type: Annotated[str, Query(max_length=20)] = "",
    scope: Annotated[str, Query(max_length=200)] = "",
    state: Annotated[str, Query(max_length=500)] = "",
    nonce: Annotated[str, Query(max_length=500)] = "",
    code_challenge: Annotated[str, Query(max_length=200)] = "",
    code_challenge_method: Annotated[str, Query(max_length=10)] = "",
    login_hint: Annotated[str, Query(max_length=320)] = "",
) -> Response[str]:
    settings = _settings()
    # Errors about the client or the redirect URI are shown, never redirected (RFC 6749 4.1.2.1).
    if client_id != settings.oidc_client_id:
        return _shown_error("invalid_client", "Unknown client_id.")
    if redirect_uri not in settings.redirect_uris:
        return _shown_error("invalid_request", "redirect_uri is not registered for this client.")

    def back(**query: str) -> Response[str]:
        return Response(302, "text/plain", "", headers={"Location": f"{redirect_uri}?{urlencode(query)}"})

    email = login_hint or DEFAULT_EMAIL
    if response_type != "code":
        return back(error="unsupported_response_type", state=state)
    if "openid" not in scope.split():
        return back(error="invalid_scope", error_description="scope must include openid", state=state)
    if code_challenge_method != "S256" or not re.fullmatch(r"[A-Za-z0-9_-]{43}", code_challenge):
        return back(error="invalid_request", error_description="PKCE with S256 is required", state=state)
    if not _EMAIL.fullmatch(email):
        return back(error="invalid_request", error_description="login_hint is not an email address", state=state)
    code = secrets.token_urlsafe(32)
    table().put(
        {
            **_code_key(code),
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "email": email.lower(),
            "expires_at": int(time.time()) + CODE_TTL_SECONDS,
        }
    )
    return back(code=code, state=state)


def _client_credentials(form: dict[str, str], authorization: str) -> tuple[str, str, str] | None:
    """(method, client_id, client_secret), or None when the Basic header is malformed."""
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except ValueError:
            return None
        client_id, separator, client_secret = decoded.partition(":")
        if not separator:
            return None
        # RFC 6749 2.3.1: each part is application/x-www-form-urlencoded before joining with ":".
        return "client_secret_basic", unquote_plus(client_id), unquote_plus(client_secret)
    return "client_secret_post", form.get("client_id", ""), form.get("client_secret", "")


def _access_token_key(access_token: str) -> dict[str, str]:
    return {"pk": key("idp", "AT", digest(access_token)), "sk": "AT"}


def _name_of(email: str) -> str:
    return email.split("@")[0].replace(".", " ").title()


@router.post("/token", summary="Exchange a code (with its PKCE verifier) for an ID token", tags=TAGS)
def token() -> Response[dict]:
    event = router.current_event
    form = dict(parse_qsl(event.decoded_body or "", keep_blank_values=True))
    settings = _settings()
    credentials = _client_credentials(form, (event.headers or {}).get("authorization", ""))
    if credentials is None:
        return _oauth_error(401, "invalid_client", "The Basic authorization header is malformed.")
    method, client_id, client_secret = credentials
    behaviour = current_behaviour()
    if method not in behaviour.client_auth_methods:
        return _oauth_error(401, "invalid_client", f"This client authenticates with {' or '.join(behaviour.client_auth_methods)}.")
    if client_id != settings.oidc_client_id or not secrets.compare_digest(client_secret.encode(), _client_secret().encode()):
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    if form.get("grant_type") != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type", "Only authorization_code is supported.")
    code, verifier = form.get("code", ""), form.get("code_verifier", "")
    if not code:
        return _oauth_error(400, "invalid_request", "code is required.")
    try:
        # Single use: the code is deleted as it is redeemed, and only while unexpired.
        grant = table().delete(_code_key(code), condition="attribute_exists(pk) AND expires_at > :now", values={":now": int(time.time())})
    except ConditionFailed:
        return _oauth_error(400, "invalid_grant", "The code is unknown, expired or already used.")
    assert grant is not None
    if grant["client_id"] != client_id or grant["redirect_uri"] != form.get("redirect_uri"):
        return _oauth_error(400, "invalid_grant", "The code was issued to another client or redirect URI.")
    if not verifier or not secrets.compare_digest(pkce_challenge(verifier), grant["code_challenge"]):
        return _oauth_error(400, "invalid_grant", "The PKCE code_verifier does not match the code_challenge.")
    now = int(time.time())
    email = grant["email"]
    claims: dict[str, Any] = {"iss": settings.issuer, "aud": client_id, "sub": _subject(email), "iat": now, "exp": now + ID_TOKEN_SECONDS}
    if behaviour.id_token_claims == "full":  # noqa: S105 - a behaviour name, not a secret
        claims.update({"azp": client_id, "email": email, "email_verified": True, "name": _name_of(email), "auth_time": now})
    if grant.get("nonce"):
        claims["nonce"] = grant["nonce"]
    kid, private_key = _signing_key()
    id_token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
    access_token = secrets.token_urlsafe(32)
    table().put({**_access_token_key(access_token), "email": email, "expires_at": now + ID_TOKEN_SECONDS})
    body = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ID_TOKEN_SECONDS,
        "id_token": id_token,
        "scope": "openid email profile",
    }
    return Response(200, "application/json", body, headers={"Cache-Control": "no-store"})


def _userinfo() -> Response[dict]:
    scheme, _, access_token = (router.current_event.headers or {}).get("authorization", "").partition(" ")
    grant = table().get(_access_token_key(access_token.strip())) if scheme.lower() == "bearer" and access_token.strip() else None
    if not grant or int(grant["expires_at"]) <= time.time():
        return Response(
            401,
            "application/json",
            {"error": "invalid_token", "error_description": "The access token is unknown or expired."},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"},
        )
    email, behaviour = str(grant["email"]), current_behaviour()
    if behaviour.userinfo == "other_sub":
        return Response(
            200, "application/json", {"sub": _subject("someone.else@example.com"), "email": email}, headers={"Cache-Control": "no-store"}
        )
    claims: dict[str, Any] = {"sub": _subject(email)}
    if behaviour.userinfo == "scope":
        claims.update({"email": email, "email_verified": True, "name": _name_of(email)})
    return Response(200, "application/json", claims, headers={"Cache-Control": "no-store"})


@router.get("/userinfo", summary="OpenID Connect UserInfo: the access token's user", tags=TAGS)
def userinfo_get() -> Response[dict]:
    return _userinfo()


@router.post("/userinfo", summary="OpenID Connect UserInfo (POST)", tags=TAGS)
def userinfo_post() -> Response[dict]:
    return _userinfo()
