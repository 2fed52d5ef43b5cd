"""Outbound webhook requests that cannot be turned against the network they leave from (SSRF).

* ``check_url`` judges a URL a client registers: outside the dev stage it must be ``https`` with a
  host, no userinfo, and every address the host resolves to must be public (no loopback, private,
  shared (CGNAT), link-local such as the instance metadata service 169.254.169.254, multicast,
  reserved, unspecified, broadcast or documentation addresses, nor their IPv6 equivalents, and no
  IPv6 address that carries a forbidden IPv4 one: mapped, NAT64, 6to4). IPv4 literals in every
  form the OS accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are read as the OS
  reads them, with ``inet_aton``, and judged by the address they mean.
* ``deliver`` sends one request: it resolves the host once, checks every address, and connects
  only to a checked one (the connection is pinned to it, so a DNS answer that changes between the
  check and the connection, DNS rebinding, changes nothing), with the URL's own host name for the
  ``Host`` header, TLS SNI and certificate verification. It follows no redirect, gives up after
  ``timeout`` seconds in all (a watchdog cuts the connection at the deadline, however slowly the
  endpoint trickles its answer), reads at most a few KiB of the answer, and returns an ``Attempt``
  whatever happens (the reason of a failure in a few words).

httpx does the HTTP; what it lacks is a way to choose the address a connection goes to, so
``_PinnedBackend`` (an httpcore network backend, httpcore's public extension point) connects to
the address checked for the host of the request, and refuses any host that was not checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

DEFAULT_TIMEOUT_SECONDS = 15.0
EXCERPT_BYTES = 200
MAX_BODY_BYTES = 4096  # what is read of an answer at most (the excerpt is its first 200 bytes)
MAX_URL_LENGTH = 2048


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(network), name) for network, name in pairs)


# Named so that a refusal says what the address is. ipaddress's own properties (is_loopback,
# is_link_local, is_multicast, is_reserved, is_private, is_global) decide the rest; the ranges
# marked "beyond ipaddress" are ones they let through, at least in some Python 3.12 release:
# is_global is True for multicast, for 100.64.0.0/10's neighbours below, for fec0::/10 and 3fff::/20.
_NAMED = _networks(
    ("0.0.0.0/8", "this-network"),  # RFC 791
    ("10.0.0.0/8", "private"),  # RFC 1918
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("fc00::/7", "private"),  # RFC 4193 unique local
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),  # RFC 6598
    ("192.0.0.0/24", "IETF protocol assignment"),  # RFC 6890
    ("192.0.2.0/24", "documentation"),  # RFC 5737
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("2001:db8::/32", "documentation"),  # RFC 3849
    ("3fff::/20", "documentation"),  # RFC 9637, beyond ipaddress
    ("198.18.0.0/15", "benchmarking"),  # RFC 2544
    ("192.88.99.0/24", "6to4 relay anycast"),  # RFC 7526, beyond ipaddress
    ("fec0::/10", "site-local"),  # RFC 3879, beyond ipaddress
    ("64:ff9b:1::/48", "local-use NAT64"),  # RFC 8215
    ("100::/64", "discard-only"),  # RFC 6666
    ("2001::/23", "IETF protocol assignment"),  # RFC 2928 (Teredo, ORCHID...)
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
# What the dev stage and the local stack may deliver to (receivers on loopback or the LAN).
_DEV_ALLOWED = ("loopback", "private")


def _carried(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    carried = address.ipv4_mapped or address.sixtofour
    if carried is None and address in _NAT64:
        carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return carried


def _category(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (None: it is), judging an IPv4 address an IPv6 one
    carries (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::) by that IPv4
    (beyond ipaddress, which calls them all reserved or all global)."""
    carried = _carried(address)
    if carried is not None:
        return _category(carried)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:  # beyond is_global, which is True for multicast
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and int(address) == 0xFFFFFFFF:
        return "broadcast"
    for network, name in _NAMED:
        if address.version == network.version and address in network:
            return name
    if address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "not globally reachable"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address a host names by itself: an IPv6 literal, or an IPv4 one in any form the OS
    accepts (inet_aton: dotted, decimal, octal, hex, and short forms like 127.1)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and (host[0].isdigit()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the OS resolver gives for ``host`` (getaddrinfo, TCP)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


@dataclass(frozen=True)
class Target:
    """A URL that passed the check, with the addresses its host resolved to (all of them checked)."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


class Refused(ValueError):
    """A URL or the addresses of its host are not allowed; ``str()`` is the reason for a client."""


def _split(url: str, allow_private: bool) -> tuple[str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise Refused("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise Refused(f"the URL is not valid ({error})") from error
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise Refused("the URL must use https" if not allow_private else "the URL must use http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("the URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("the URL must have a host")
    if parts.fragment:
        raise Refused("the URL must not have a fragment")
    return host, port or (443 if parts.scheme == "https" else 80)


def resolve_and_check(url: str, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """The URL's host resolved once and every address judged; raises Refused with the reason."""
    host, port = _split(url, allow_private)
    literal = ip_literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as error:
            raise Refused(f"the host {host} does not resolve") from error
        if not addresses:
            raise Refused(f"the host {host} does not resolve")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # a scope id (fe80::1%eth0) is link-local anyway
        except ValueError as error:
            raise Refused(f"the host {host} resolves to {text!r}, which is not an IP address") from error
        reason = _category(address)
        if reason is None or (allow_private and reason in _DEV_ALLOWED):
            continue
        what = "is" if literal is not None else f"resolves to {address}, which is"
        carried = _carried(address)
        if carried is not None:
            what += f" an IPv6 address carrying {carried},"
        article = "an" if reason[0] in "aeiouIAEOU" else "a"
        raise Refused(f"the host {host} {what} {article} {reason} address; webhook URLs must resolve to public addresses only")
    return Target(url=url, host=host.lower(), port=port, addresses=tuple(addresses))


def check_url(url: str, allow_private: bool, resolver: Resolver | None = None) -> str | None:
    """None when ``url`` may receive webhooks, else the reason it may not (for a 400 problem's
    detail). ``allow_private``: the dev stage and the local stack (http, loopback, private)."""
    try:
        resolve_and_check(url, allow_private, resolver)
    except Refused as refused:
        return str(refused)
    return None


# ==================================================================== delivery
@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the deliveries log shows it. ``error``: why no answer counted (a
    refused URL, a timeout, a connection or TLS failure, a redirect); None when the endpoint
    answered, whose ``status_code`` then says how. ``delivered``: a 2xx."""

    status_code: int | None
    duration_ms: int
    response_excerpt: str = ""
    error: str | None = None
    delivered: bool = field(init=False)

    def __post_init__(self) -> None:
        ok = self.error is None and self.status_code is not None and 200 <= self.status_code < 300
        object.__setattr__(self, "delivered", ok)


# The sockets of this thread's current request (new and reused connections), for its deadline.
_SOCKETS: contextvars.ContextVar[list[socket.socket] | None] = contextvars.ContextVar("payrail_egress_sockets", default=None)
# The addresses this thread's current request may connect to: (host, port) -> address.
_PINNED: contextvars.ContextVar[Mapping[tuple[str, int], str] | None] = contextvars.ContextVar("payrail_egress_pinned", default=None)


class _PinnedBackend(httpcore.SyncBackend):
    """Connects a request's host only to the address checked for it (never resolving it again)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = (_PINNED.get() or {}).get((host.strip("[]").lower(), port))
        if address is None:
            raise httpcore.ConnectError(f"{host}:{port} was not checked; refusing to connect")
        stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
        _watch(stream)
        return stream


def _watch(stream: Any) -> None:
    sockets = _SOCKETS.get()
    connection = stream.get_extra_info("socket") if stream is not None else None
    if sockets is not None and isinstance(connection, socket.socket):
        sockets.append(connection)


class _Deadline:
    """httpx's timeouts bound each read, not the request: an endpoint trickling its answer a byte
    at a time could hold a delivery for ever. At the deadline this shuts the request's sockets
    down, which ends whatever read is waiting."""

    def __init__(self, seconds: float) -> None:
        self.sockets: list[socket.socket] = []
        self.passed = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.passed = True
        for connection in list(self.sockets):
            with contextlib.suppress(OSError):  # already closed
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._token = _SOCKETS.set(self.sockets)
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        _SOCKETS.reset(self._token)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport (TLS, HTTP/1.1, pooling) over the pinned backend. A pooled
    connection is keyed by the URL's host name, so it is only ever reused for that host, and it
    goes to an address that was checked when it was opened."""

    def __init__(self, verify: ssl.SSLContext | bool = True, max_connections: int = 50) -> None:
        super().__init__(verify=verify, limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20))
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(),
        )


def make_client(verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """A client that connects only to checked addresses; no proxies from the environment (they
    would connect elsewhere), no redirects."""
    return httpx.Client(transport=PinnedTransport(verify=verify), trust_env=False, follow_redirects=False)


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def pooled_client() -> httpx.Client:
    """This process's client (its connection pool serves every delivery of a warm function)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = make_client()
        return _client


def _tls_reason(error: BaseException) -> str | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return "TLS handshake failed"
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate verification failed"
    if "SSL" in text or "TLS" in text:
        return "TLS handshake failed"
    return None


def _failure(error: Exception, timeout: float) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    tls = _tls_reason(error)
    if tls:
        return tls
    text = str(error)
    if isinstance(error, httpx.ConnectError):
        if "refused" in text.lower():
            return "connection refused"
        return f"connection failed ({text[:120]})" if text else "connection failed"
    if isinstance(error, httpx.RemoteProtocolError):
        return "the endpoint's answer is not valid HTTP"
    return f"{type(error).__name__}: {text[:120]}"


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    allow_private: bool = False,
    *,
    resolver: Resolver | None = None,
    client: httpx.Client | None = None,
) -> Attempt:
    """POST ``body`` to ``url`` once, on a checked address, within ``timeout`` seconds in all."""
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = resolve_and_check(url, allow_private, resolver)
    except Refused as refused:
        return Attempt(None, elapsed_ms(), error=f"refused: {refused}")
    # One of the checked addresses (IPv4 first: a Lambda function has no IPv6 egress by default).
    address = sorted(target.addresses, key=lambda a: ":" in a)[0]
    try:
        pinned_host = httpx.URL(url).raw_host.decode("ascii").lower()  # as httpcore will name it
    except (httpx.InvalidURL, UnicodeError) as error:
        return Attempt(None, elapsed_ms(), error=f"the URL is not valid ({error})")
    token = _PINNED.set({(pinned_host, target.port): address})
    remaining = max(0.001, timeout - (time.monotonic() - started))
    status: int | None = None
    excerpt = b""
    deadline = _Deadline(remaining)
    try:
        with deadline:
            http = client or pooled_client()
            request = http.build_request("POST", url, content=body, headers=dict(headers), timeout=httpx.Timeout(remaining))
            response = http.send(request, stream=True, follow_redirects=False)
            try:
                _watch(response.extensions.get("network_stream"))  # a reused connection's socket
                status = response.status_code
                for chunk in response.iter_raw():
                    excerpt += chunk
                    if len(excerpt) >= MAX_BODY_BYTES:
                        break
            finally:
                response.close()
    except Exception as error:  # every failure is an attempt with its reason, never an exception
        text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
        reason = f"timed out after {timeout:g} s" if deadline.passed else _failure(error, timeout)
        return Attempt(status, elapsed_ms(), text, reason)
    finally:
        _PINNED.reset(token)
    text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
    if deadline.passed:
        return Attempt(status, elapsed_ms(), text, f"timed out after {timeout:g} s")
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return Attempt(status, elapsed_ms(), text, f"redirect to {location[:200]!r} not followed" if location else "redirect not followed")
    # Any other status is a failed attempt that its status code explains (error stays None).
    return Attempt(status, elapsed_ms(), text)
