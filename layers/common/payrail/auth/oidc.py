"""The OpenID Connect relying party: discovery, the code exchange, ID-token verification and
UserInfo.

The provider is configuration only (issuer, client id, client secret's location): the sandbox
provider locally and on the dev stage, Google in production.

The client authenticates at the token endpoint with ``client_secret_basic`` (HTTP Basic, the
OpenID Connect default) when the discovery document's ``token_endpoint_auth_methods_supported``
allows it, else with ``client_secret_post``. Claims the ID token leaves out (``email``, ``name``;
OIDC Core 5.4 lets a code-flow provider serve them from UserInfo only) are fetched from the
``userinfo_endpoint`` with the access token; its ``sub`` must equal the ID token's (5.3.2).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
from aws_lambda_powertools.utilities import parameters

from payrail.errors import DependencyFailure, Unauthorized
from payrail.settings import OidcSettings

ALGORITHMS = ["RS256"]  # pinned: never "none", never HS256 (which would accept the public key as a secret)
LEEWAY_SECONDS = 60
DISCOVERY_MAX_AGE_SECONDS = 3600
HTTP_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
# Token endpoint client authentication, in order of preference; OIDC Discovery's default when the
# document does not say is client_secret_basic (RFC 6749 2.3.1 calls the other NOT RECOMMENDED).
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
DEFAULT_CLIENT_AUTH_METHODS = ["client_secret_basic"]
# The profile claims sign-in stores; those the ID token lacks are asked of UserInfo.
PROFILE_CLAIMS = ("email", "name")
# Google documents both spellings of its issuer in ID tokens.
_ISSUER_ALIASES = {"https://accounts.google.com": {"https://accounts.google.com", "accounts.google.com"}}


class _JwksClient(jwt.PyJWKClient):
    """pyjwt's PyJWKClient (a JWK-set cache with a lifespan, one forced refetch per cooldown for
    an unknown ``kid``, under a lock), fetching over the service's httpx client instead of urllib:
    one outbound HTTP stack, with its timeouts, no redirects, and a client that tests can fake.
    The per-kid LRU (``cache_keys``) stays off: it never expires, so a key the provider removed
    would stay trusted."""

    def __init__(self, uri: str, lifespan: float, cooldown: float) -> None:
        super().__init__(uri, cache_keys=False, cache_jwk_set=True, lifespan=lifespan, cooldown_duration=cooldown)
        self.http: httpx.Client | None = None

    def fetch_data(self) -> Any:
        if self.http is None:
            raise DependencyFailure("No HTTP client for the identity provider's JWKS.")
        jwk_set = _get_json(self.http, self.uri)
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(jwk_set)
        self._last_successful_fetch = time.monotonic()
        return jwk_set


class _ProviderCache:
    """The discovery document and the JWKS client, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._discovery_at = 0.0
        self._jwks: _JwksClient | None = None

    def discovery(self, client: httpx.Client, issuer: str) -> dict[str, Any]:
        with self._lock:
            if self._discovery is None or time.monotonic() - self._discovery_at > DISCOVERY_MAX_AGE_SECONDS:
                url = issuer.rstrip("/") + "/.well-known/openid-configuration"
                self._discovery = _get_json(client, url)
                self._discovery_at = time.monotonic()
            return self._discovery

    def key(self, settings: OidcSettings, client: httpx.Client, kid: str) -> Any:
        with self._lock:
            jwks_uri = self._discovery.get("jwks_uri") if self._discovery else None
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise DependencyFailure("The identity provider's discovery document names no jwks_uri.")
            lifespan, cooldown = settings.jwks_lifespan_seconds, settings.jwks_refetch_cooldown_seconds
            current = self._jwks
            if current is None or (current.uri, current.jwk_set_cache and current.jwk_set_cache.lifespan, current.cooldown_duration) != (
                jwks_uri,
                lifespan,
                cooldown,
            ):
                current = self._jwks = _JwksClient(jwks_uri, lifespan, cooldown)
            current.http = client
        try:
            return current.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as error:
            raise DependencyFailure("The identity provider's JWKS cannot be fetched.") from error
        except jwt.PyJWKClientError as error:
            raise Unauthorized("The ID token is signed with an unknown key.") from error

    def reset(self) -> None:
        with self._lock:
            self._discovery, self._jwks = None, None


provider = _ProviderCache()


def _get_json(client: httpx.Client, url: str) -> dict[str, Any]:
    try:
        response = client.get(url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return dict(response.json())
    except (httpx.HTTPError, ValueError) as error:
        raise DependencyFailure(f"The identity provider did not answer {url}.") from error


def authorization_url(
    settings: OidcSettings, client: httpx.Client, state: str, nonce: str, code_challenge: str, login_hint: str | None
) -> str:
    endpoint = provider.discovery(client, settings.issuer)["authorization_endpoint"]
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if login_hint:
        query["login_hint"] = login_hint
    return str(httpx.URL(endpoint, params=query))


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint answered: the ID token, and the access token for UserInfo."""

    id_token: str
    access_token: str | None


def client_auth_method(discovery: dict[str, Any]) -> str:
    """How to authenticate at the token endpoint: the first of ours the provider supports."""
    supported = discovery.get("token_endpoint_auth_methods_supported") or DEFAULT_CLIENT_AUTH_METHODS
    for method in CLIENT_AUTH_METHODS:
        if method in supported:
            return method
    raise DependencyFailure("The identity provider's token endpoint supports neither client_secret_basic nor client_secret_post.")


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The HTTP Basic header of RFC 6749 2.3.1: id and secret each form-urlencoded, then joined."""
    joined = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(joined.encode()).decode()


def _provider_json(send: Callable[[], httpx.Response], endpoint: str, refused: tuple[int, ...], refusal: str) -> Any:
    """The JSON body of a 200 from the identity provider's ``endpoint``: Unauthorized with
    ``refusal`` for a status in ``refused``, DependencyFailure for no answer, another status or
    a body that is not JSON."""
    try:
        response = send()
    except httpx.HTTPError as error:
        raise DependencyFailure(f"The identity provider's {endpoint} did not answer.") from error
    if response.status_code in refused:
        raise Unauthorized(refusal)
    if response.status_code != 200:
        raise DependencyFailure(f"The identity provider's {endpoint} answered {response.status_code}.")
    try:
        return response.json()
    except ValueError as error:
        raise DependencyFailure(f"The identity provider's {endpoint} answered something other than JSON.") from error


def exchange_code(settings: OidcSettings, client: httpx.Client, code: str, code_verifier: str) -> TokenSet:
    """The tokens for an authorization code; Unauthorized when the provider refuses it."""
    discovery = provider.discovery(client, settings.issuer)
    client_secret = str(parameters.get_secret(settings.client_secret_arn, max_age=300))
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": code_verifier, "redirect_uri": settings.redirect_uri}
    headers = {"Accept": "application/json"}
    if client_auth_method(discovery) == "client_secret_basic":
        headers["Authorization"] = basic_credentials(settings.client_id, client_secret)
    else:
        form.update(client_id=settings.client_id, client_secret=client_secret)
    body = _provider_json(
        lambda: client.post(discovery["token_endpoint"], data=form, timeout=HTTP_TIMEOUT, headers=headers),
        "token endpoint",
        (400, 401),
        "The identity provider refused the code exchange.",
    )
    id_token, access_token = body.get("id_token"), body.get("access_token")
    if not isinstance(id_token, str):
        raise Unauthorized("The identity provider returned no ID token.")
    return TokenSet(id_token=id_token, access_token=access_token if isinstance(access_token, str) and access_token else None)


def userinfo(settings: OidcSettings, client: httpx.Client, access_token: str, subject: str) -> dict[str, Any]:
    """The UserInfo claims for the access token (empty when the provider has no UserInfo
    endpoint); Unauthorized when they describe another ``sub`` than the ID token's."""
    endpoint = provider.discovery(client, settings.issuer).get("userinfo_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return {}
    claims = _provider_json(  # a signed or encrypted (application/jwt) answer is not supported
        lambda: client.get(
            endpoint, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"}, timeout=HTTP_TIMEOUT
        ),
        "UserInfo endpoint",
        (401, 403),
        "The identity provider's UserInfo endpoint refused the access token.",
    )
    if not isinstance(claims, dict):
        raise DependencyFailure("The identity provider's UserInfo answer is not a JSON object.")
    if claims.get("sub") != subject:
        raise Unauthorized("The identity provider's UserInfo describes another user than its ID token (sub mismatch).")
    return claims


def profile_claims(settings: OidcSettings, client: httpx.Client, tokens: TokenSet, id_claims: dict[str, Any]) -> dict[str, str]:
    """``email`` and ``name``: from the ID token, and from UserInfo for those it lacks (only then
    is UserInfo called). A claim neither gives is left out."""
    profile = {name: str(id_claims[name]) for name in PROFILE_CLAIMS if isinstance(id_claims.get(name), str) and id_claims[name]}
    if len(profile) < len(PROFILE_CLAIMS) and tokens.access_token:
        extra = userinfo(settings, client, tokens.access_token, str(id_claims["sub"]))
        for name in PROFILE_CLAIMS:
            if name not in profile and isinstance(extra.get(name), str) and extra[name]:
                profile[name] = extra[name]
    return profile


def verify_id_token(settings: OidcSettings, client: httpx.Client, id_token: str, nonce: str) -> dict[str, Any]:
    """The claims of a valid ID token: signature by ``kid`` from the provider's JWKS with pinned
    algorithms, ``iss``, ``aud``, ``azp``, ``exp``, ``iat`` (small leeway) and ``nonce``."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.InvalidTokenError as error:
        raise Unauthorized("The ID token is malformed.") from error
    if header.get("alg") not in ALGORITHMS:
        raise Unauthorized("The ID token's algorithm is not accepted.")
    provider.discovery(client, settings.issuer)
    key = provider.key(settings, client, str(header.get("kid")))
    expected = settings
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=ALGORITHMS,
            audience=expected.client_id,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_iss": False},
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthorized("The ID token has expired.") from error
    except jwt.InvalidTokenError as error:
        raise Unauthorized("The ID token is not valid.") from error
    if claims["iss"] not in _ISSUER_ALIASES.get(expected.issuer, {expected.issuer}):
        raise Unauthorized("The ID token is from another issuer.")
    if claims["iat"] > time.time() + LEEWAY_SECONDS:
        raise Unauthorized("The ID token was issued in the future.")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != expected.client_id:
        raise Unauthorized("The ID token was issued to another party.")
    if not nonce or claims.get("nonce") != nonce:
        raise Unauthorized("The ID token's nonce does not match this sign-in attempt.")
    return claims
