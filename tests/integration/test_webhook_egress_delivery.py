"""One webhook delivery attempt (payrail.webhooks.egress.deliver) against receivers on loopback:
what counts as delivered, what each failure is called, that nothing is followed or read beyond
its bounds, that TLS is verified against the URL's host name, and that the connection goes to the
address that was checked (DNS rebinding)."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore._backends.sync
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from payrail.webhooks.egress import EXCERPT_BYTES, deliver, make_client

from devstack.stack import free_port

BODY = b'{"id":"evt_1","type":"payout.paid"}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1", "user-agent": "Payrail-Webhooks/test"}


class Receiver:
    """A webhook receiver on 127.0.0.1 (plain HTTP, or TLS with ``context``) that records requests."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if self.path == "/slow":
                    time.sleep(1.5)
                if self.path == "/trickle":  # an answer a byte at a time, each well within any read timeout
                    with contextlib.suppress(OSError):
                        for byte in b"HTTP/1.1 200 OK\r\nx-padding: " + b"a" * 60:
                            self.wfile.write(bytes([byte]))
                            time.sleep(0.05)
                    self.close_connection = True
                    return
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                status, payload = {"/fail": (500, b"boom: upstream exploded")}.get(self.path, (200, b"thanks " + "é".encode() * 300))
                if self.path == "/huge":
                    payload = b"x" * 5_000_000
                self.send_response(status)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client stopped reading, as it should
                    self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def local(host: str, *addresses: str):  # type: ignore[no-untyped-def]
    def resolve(name: str, port: int) -> list[str]:
        assert name == host, name
        return list(addresses)

    return resolve


# ------------------------------------------------------------------ outcomes
def test_a_2xx_is_delivered_with_the_first_200_bytes_of_the_answer(receiver: Receiver) -> None:
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/ok", BODY, HEADERS, allow_private=True)
    assert attempt.delivered
    assert attempt.status_code == 200
    assert attempt.error is None
    assert attempt.response_excerpt == ("thanks " + "é" * 300).encode()[:EXCERPT_BYTES].decode("utf-8", "replace")
    assert 0 <= attempt.duration_ms < 5000
    sent = receiver.requests[-1]
    assert sent["body"] == BODY
    assert sent["headers"]["webhook-id"] == "msg_1"
    assert sent["headers"]["user-agent"] == "Payrail-Webhooks/test"


def test_the_host_header_is_the_urls_own_host_name(receiver: Receiver) -> None:
    attempt = deliver(
        f"http://receiver.test:{receiver.port}/ok", BODY, HEADERS, allow_private=True, resolver=local("receiver.test", "127.0.0.1")
    )
    assert attempt.delivered
    assert receiver.requests[-1]["headers"]["host"] == f"receiver.test:{receiver.port}"


def test_a_500_is_a_failed_attempt_with_its_status_and_excerpt(receiver: Receiver) -> None:
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/fail", BODY, HEADERS, allow_private=True)
    assert not attempt.delivered
    assert attempt.status_code == 500
    assert attempt.response_excerpt == "boom: upstream exploded"


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    before = len(receiver.requests)
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/redirect", BODY, HEADERS, allow_private=True)
    assert not attempt.delivered
    assert attempt.status_code == 302
    assert attempt.error == "redirect to 'http://169.254.169.254/latest/meta-data/' not followed"
    assert len(receiver.requests) == before + 1  # the one request, nothing after it


def test_a_slow_endpoint_times_out_within_the_timeout(receiver: Receiver) -> None:
    started = time.monotonic()
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/slow", BODY, HEADERS, timeout=0.3, allow_private=True)
    assert time.monotonic() - started < 1.4
    assert not attempt.delivered
    assert attempt.status_code is None
    assert attempt.error == "timed out after 0.3 s"
    assert 250 <= attempt.duration_ms < 1400


def test_an_endpoint_trickling_its_answer_is_cut_off_at_the_deadline(receiver: Receiver) -> None:
    # Given an answer that would take about 4 s, each byte 50 ms after the last
    started = time.monotonic()
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/trickle", BODY, HEADERS, timeout=0.5, allow_private=True)
    # Then the attempt ends at the deadline of the whole request, not of each read
    assert time.monotonic() - started < 1.5
    assert not attempt.delivered
    assert attempt.error == "timed out after 0.5 s"


def test_a_huge_answer_is_not_read_to_its_end(receiver: Receiver) -> None:
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/huge", BODY, HEADERS, allow_private=True)
    assert attempt.delivered
    assert attempt.response_excerpt == "x" * EXCERPT_BYTES


def test_a_closed_port_is_connection_refused() -> None:
    attempt = deliver(f"http://127.0.0.1:{free_port()}/ok", BODY, HEADERS, timeout=2, allow_private=True)
    assert not attempt.delivered
    assert attempt.status_code is None
    assert attempt.error == "connection refused"


def test_a_refused_url_is_an_attempt_that_never_connects(receiver: Receiver) -> None:
    before = len(receiver.requests)
    attempt = deliver(f"http://127.0.0.1:{receiver.port}/ok", BODY, HEADERS)  # not dev: http and loopback refused
    assert not attempt.delivered
    assert attempt.error == "refused: the URL must use https"
    attempt = deliver(f"https://localhost:{receiver.port}/ok", BODY, HEADERS, resolver=local("localhost", "127.0.0.1"))
    assert attempt.error is not None
    assert "127.0.0.1, which is a loopback address" in attempt.error
    assert len(receiver.requests) == before


# ------------------------------------------------------------------ the connection goes where the check said
def test_dns_rebinding_cannot_move_the_connection_to_a_private_address(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a name that resolves to a public address at the check and to loopback afterwards
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    connected: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connected.append(address)
        raise ConnectionRefusedError(111, "Connection refused")  # no internet here: record where it went

    monkeypatch.setattr(httpcore._backends.sync.socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("the name was resolved again"))
    before = len(receiver.requests)
    # When it is delivered to
    attempt = deliver(f"https://rebind.example.com:{receiver.port}/ok", BODY, HEADERS, timeout=2, resolver=rebinding)
    # Then the name was resolved once, and the only connection went to the address that was checked
    assert lookups == ["rebind.example.com"]
    assert connected == [("93.184.216.34", receiver.port)]
    assert attempt.error == "connection refused"
    assert len(receiver.requests) == before


def test_an_answer_that_is_private_at_the_check_is_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    connected: list[Any] = []
    monkeypatch.setattr(httpcore._backends.sync.socket, "create_connection", lambda *a, **k: connected.append(a))
    attempt = deliver("https://rebind.example.com/ok", BODY, HEADERS, resolver=local("rebind.example.com", "93.184.216.34", "10.0.0.5"))
    assert attempt.error is not None
    assert "10.0.0.5, which is a private address" in attempt.error
    assert connected == []


def test_the_client_connects_to_no_host_that_was_not_checked(receiver: Receiver) -> None:
    # The pooled client, used directly, without a check: it refuses to connect at all
    with make_client() as client, pytest.raises(httpx.ConnectError, match="was not checked"):
        client.post(f"http://127.0.0.1:{receiver.port}/ok", content=BODY)


# ------------------------------------------------------------------ TLS: SNI and verification against the host name
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, ssl.SSLContext, list[str]]]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Payrail test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file, ca_file = folder / "leaf.pem", folder / "leaf.key", folder / "ca.pem"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    names: list[str] = []
    server_context.sni_callback = lambda _socket, name, _context: names.append(name)  # type: ignore[assignment,func-returns-value]
    server = Receiver(server_context)
    trusting = ssl.create_default_context(cafile=str(Path(ca_file)))
    yield server, trusting, names
    server.stop()


def test_tls_goes_to_the_checked_address_with_the_host_name_for_sni_and_verification(
    tls: tuple[Receiver, ssl.SSLContext, list[str]],
) -> None:
    server, trusting, names = tls
    with make_client(verify=trusting) as client:
        attempt = deliver(
            f"https://hooks.test:{server.port}/ok",
            BODY,
            HEADERS,
            allow_private=True,
            resolver=local("hooks.test", "127.0.0.1"),
            client=client,
        )
    assert attempt.delivered, attempt
    assert names[-1] == "hooks.test"
    assert server.requests[-1]["headers"]["host"] == f"hooks.test:{server.port}"


def test_a_certificate_for_another_name_fails_verification(tls: tuple[Receiver, ssl.SSLContext, list[str]]) -> None:
    server, trusting, _ = tls
    before = len(server.requests)
    with make_client(verify=trusting) as client:
        attempt = deliver(
            f"https://other.test:{server.port}/ok",
            BODY,
            HEADERS,
            allow_private=True,
            resolver=local("other.test", "127.0.0.1"),
            client=client,
        )
    assert not attempt.delivered
    assert attempt.error is not None
    assert attempt.error.startswith("TLS certificate verification failed")
    assert "other.test" in attempt.error
    assert len(server.requests) == before


def test_the_default_client_trusts_only_public_certificate_authorities(tls: tuple[Receiver, ssl.SSLContext, list[str]]) -> None:
    server, _, _ = tls
    attempt = deliver(f"https://hooks.test:{server.port}/ok", BODY, HEADERS, allow_private=True, resolver=local("hooks.test", "127.0.0.1"))
    assert attempt.error is not None
    assert attempt.error.startswith("TLS certificate verification failed")


def test_an_ip_literal_in_every_form_connects_to_the_address_it_means(receiver: Receiver) -> None:
    # 2130706433 is 127.0.0.1: in dev it is allowed, and it is that address that is connected to
    attempt = deliver(f"http://2130706433:{receiver.port}/ok", BODY, HEADERS, allow_private=True)
    assert attempt.delivered, attempt  # the receiver listens on 127.0.0.1 only
    assert receiver.requests[-1]["headers"]["host"] == f"2130706433:{receiver.port}"
