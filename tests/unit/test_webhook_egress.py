"""Which webhook URLs are refused (SSRF), table-driven: literal addresses in every form the OS
reads, names that resolve to forbidden addresses (a patched resolver: no DNS here), and the
public ones that pass. No sockets."""

from __future__ import annotations

import dataclasses

import pytest
from payrail.webhooks.egress import Attempt, check_url, ip_literal


def resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"no such host {host}")
        return answers[host]

    return resolve


DNS = resolver(
    {
        "hooks.example.com": ["93.184.216.34"],
        "v6.example.com": ["2606:4700:4700::1111"],
        "dual.example.com": ["93.184.216.34", "2606:4700:4700::1111"],
        "localhost": ["127.0.0.1", "::1"],
        "sneaky.example.com": ["93.184.216.34", "10.0.0.7"],  # one public, one private: refused
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
        "lan.example.com": ["192.168.1.20"],
        "scoped.example.com": ["fe80::1%eth0"],
        "empty.example.com": [],
    }
)

REFUSED = [
    # IPv4 literals, in every form inet_aton reads
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.255.255.254/", "loopback"),
    ("https://2130706433/", "loopback"),  # decimal
    ("https://0177.0.0.1/", "loopback"),  # octal
    ("https://0x7f.0.0.1/", "loopback"),  # hex
    ("https://0x7f000001/", "loopback"),  # hex, one number
    ("https://127.1/", "loopback"),  # short form
    ("https://017700000001/", "loopback"),  # octal, one number
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://192.168.0.1/", "private"),
    ("https://100.64.0.1/", "shared (carrier-grade NAT)"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://2852039166/", "link-local"),  # 169.254.169.254 in decimal
    ("https://0.0.0.0/", "unspecified"),
    ("https://0.1.2.3/", "this-network"),
    ("https://224.0.0.251/", "multicast"),
    ("https://239.255.255.250/", "multicast"),
    ("https://255.255.255.255/", "broadcast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://192.0.2.10/", "documentation"),
    ("https://198.51.100.1/", "documentation"),
    ("https://203.0.113.9/", "documentation"),
    ("https://198.18.0.1/", "benchmarking"),
    ("https://192.0.0.8/", "IETF protocol assignment"),
    ("https://192.88.99.1/", "6to4 relay anycast"),
    # IPv6 literals
    ("https://[::1]/", "loopback"),
    ("https://[::]/", "unspecified"),
    ("https://[fc00::1]/", "private"),
    ("https://[fd12:3456::1]/", "private"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fec0::1]/", "site-local"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[ff0e::1]/", "multicast"),
    ("https://[2001:db8::1]/", "documentation"),
    ("https://[3fff::1]/", "documentation"),
    ("https://[100::1]/", "discard-only"),
    ("https://[2001::1]/", "IETF protocol assignment"),  # Teredo
    # IPv6 addresses carrying a forbidden IPv4 address, judged by it
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://[::ffff:7f00:1]/", "loopback"),
    ("https://[::ffff:169.254.169.254]/", "link-local"),
    ("https://[::ffff:10.1.2.3]/", "private"),
    ("https://[64:ff9b::127.0.0.1]/", "loopback"),  # NAT64
    ("https://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
    ("https://[64:ff9b:1::1]/", "local-use NAT64"),
    ("https://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
    ("https://[2002:c0a8:101::1]/", "private"),  # 6to4 of 192.168.1.1
    ("https://[::7f00:1]/", "reserved"),  # deprecated IPv4-compatible
    # names, resolved (patched resolver)
    ("https://localhost/", "loopback"),
    ("https://localhost:8443/", "loopback"),
    ("https://sneaky.example.com/", "private"),
    ("https://metadata.example.com/", "link-local"),
    ("https://mapped.example.com/", "loopback"),
    ("https://scoped.example.com/", "link-local"),
]


@pytest.mark.parametrize(("url", "category"), REFUSED, ids=[url for url, _ in REFUSED])
def test_a_url_whose_host_is_not_public_is_refused_with_the_reason(url: str, category: str) -> None:
    reason = check_url(url, allow_private=False, resolver=DNS)
    assert reason is not None
    assert f" {category} address" in reason
    assert "public addresses only" in reason


MALFORMED = [
    ("http://hooks.example.com/", "must use https"),
    ("ftp://hooks.example.com/", "must use https"),
    ("hooks.example.com/webhook", "must use https"),
    ("https:///path-only", "must have a host"),
    ("https://user:secret@hooks.example.com/", "user name or password"),
    ("https://user@hooks.example.com/", "user name or password"),
    ("https://hooks.example.com@127.0.0.1/", "user name or password"),
    ("https://hooks.example.com:99999/", "not valid"),
    ("https://hooks.example.com:port/", "not valid"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("https://hooks.example.com/\r\nX-Injected: 1", "whitespace"),
    ("https://nowhere.example.com/", "does not resolve"),
    ("https://empty.example.com/", "does not resolve"),
    ("https://hooks.example.com/#frag", "fragment"),
    ("https://hooks.example.com/" + "a" * 2100, "longer than"),
]


@pytest.mark.parametrize(("url", "reason"), MALFORMED, ids=[url[:60] for url, _ in MALFORMED])
def test_a_url_that_is_not_a_plain_https_url_is_refused(url: str, reason: str) -> None:
    refusal = check_url(url, allow_private=False, resolver=DNS)
    assert refusal is not None
    assert reason in refusal


ACCEPTED = [
    "https://hooks.example.com/webhooks/payrail",
    "https://hooks.example.com:8443/webhooks?tenant=7",
    "https://HOOKS.example.com./x",  # case and a trailing dot
    "https://v6.example.com/",
    "https://dual.example.com/",
    "https://93.184.216.34/hook",
    "https://[2606:4700:4700::1111]:8443/hook",
    "https://[::ffff:93.184.216.34]/",  # mapped, judged by the public IPv4 it carries
    "https://[64:ff9b::93.184.216.34]/",  # NAT64 of a public address
    "https://[2002:5db8:d822::1]/",  # 6to4 of 93.184.216.34
    "https://1572395042/",  # 93.184.216.34 in decimal
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_a_public_https_url_is_accepted(url: str) -> None:
    assert check_url(url, allow_private=False, resolver=DNS) is None


def test_dev_allows_http_loopback_and_the_lan_but_never_the_metadata_service_or_odd_ranges() -> None:
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://lan.example.com/",
        "http://10.1.2.3/",
        "https://hooks.example.com/",
    ):
        assert check_url(url, allow_private=True, resolver=DNS) is None, url
    for url, category in (
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://metadata.example.com/", "link-local"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
    ):
        reason = check_url(url, allow_private=True, resolver=DNS)
        assert reason is not None, url
        assert category in reason, (url, reason)
    assert "user name" in (check_url("http://a:b@127.0.0.1/", allow_private=True, resolver=DNS) or "")
    assert "http or https" in (check_url("ftp://127.0.0.1/", allow_private=True, resolver=DNS) or "")


def test_ipv4_literals_are_read_as_the_os_reads_them() -> None:
    # Given the forms inet_aton accepts, the same address comes out of each
    for text in ("127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7F000001", "127.1", "127.0.1", "0177.1"):
        assert str(ip_literal(text)) == "127.0.0.1", text
    # And names stay names (for the resolver)
    for name in ("example.com", "1e100.net", "deadbeef.example", "0xdead.beef", "1.2.3.4.5"):
        assert ip_literal(name) is None, name


def test_an_attempt_is_delivered_only_with_a_2xx_and_no_error() -> None:
    assert Attempt(200, 5).delivered
    assert Attempt(204, 5).delivered
    assert not Attempt(500, 5).delivered
    assert not Attempt(302, 5, error="redirect not followed").delivered
    assert not Attempt(None, 5, error="timed out after 15 s").delivered
    with pytest.raises(dataclasses.FrozenInstanceError):
        Attempt(200, 5).status_code = 500  # type: ignore[misc]
