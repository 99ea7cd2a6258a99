"""The SSRF guard: which addresses are refused, URL checks, and the resolver that checks every answer.

No test here opens a connection: names resolve through a :class:`StaticResolver`.
"""

from __future__ import annotations

import socket

import pytest

from agentadapter.agents.tools.errors import FetchRefused
from agentadapter.agents.tools.ssrf import AddressPolicy, GuardedResolver, StaticResolver, address_problem, check_url
from agentadapter.llm.errors import ConfigurationError

DEFAULT = AddressPolicy()
PRIVATE_OK = AddressPolicy(allow_private=True)


@pytest.mark.parametrize(("address", "problem"), [
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),       # IPv4-mapped IPv6
    ("2002:7f00:1::", "loopback"),          # 6to4 around 127.0.0.1
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.10", "private"),
    ("100.64.0.1", "private"),              # carrier-grade NAT
    ("fd12:3456::1", "private"),            # unique local
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("64:ff9b::a9fe:a9fe", "metadata"),     # NAT64 around 169.254.169.254
    ("100.100.100.200", "metadata"),
    ("168.63.129.16", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
])
def test_address_problems(address: str, problem: str | None) -> None:
    found = address_problem(address, DEFAULT)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_allowing_private_addresses_never_allows_metadata_or_this_machine() -> None:
    for address in ("127.0.0.1", "10.0.0.5", "192.168.1.1", "169.254.10.10", "fd12::1", "::ffff:10.1.1.1"):
        assert address_problem(address, PRIVATE_OK) is None
    for address in ("169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1", "240.0.0.1"):
        assert address_problem(address, PRIVATE_OK) is not None


def test_allowed_networks_are_exact_exemptions() -> None:
    policy = AddressPolicy(allowed_networks=("127.0.0.0/8", "169.254.169.254/32"))
    assert address_problem("127.0.0.1", policy) is None
    assert address_problem("::ffff:127.0.0.1", policy) is None
    assert address_problem("169.254.169.254", policy) is None  # only by naming it
    assert address_problem("10.0.0.1", policy) == "a private address"
    with pytest.raises(ConfigurationError, match="CIDR"):
        AddressPolicy(allowed_networks=("not-a-network",))


def test_allowed_hosts_match_names_and_domains() -> None:
    policy = AddressPolicy(allowed_hosts=("intranet.example", ".corp.example"))
    assert policy.host_allowed("intranet.example") and policy.host_allowed("INTRANET.example.")
    assert policy.host_allowed("wiki.corp.example") and policy.host_allowed("corp.example")
    assert not policy.host_allowed("evilcorp.example") and not policy.host_allowed("intranet.example.evil")


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "scheme"),
    ("ftp://example.com/x", "scheme"),
    ("gopher://127.0.0.1:6379/_INFO", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("/relative/path", "scheme"),
    ("http://user:pass@example.com/", "credentials"),
    ("http:///nohost", "invalid_url"),
    ("http://127.0.0.1/", "forbidden_address"),
    ("http://[::1]:8080/", "forbidden_address"),
    ("http://[::ffff:127.0.0.1]/", "forbidden_address"),
    ("http://169.254.169.254/latest/meta-data/", "forbidden_address"),
    ("http://0.0.0.0:8000/", "forbidden_address"),
    ("http://10.0.0.1/", "forbidden_address"),
    ("http://2130706433/", "invalid_url"),   # 127.0.0.1 as one number
    ("http://0x7f.1/", "invalid_url"),
    ("http://127.1/", "invalid_url"),
])
def test_urls_refused_before_any_lookup(url: str, reason: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        check_url(url, DEFAULT)
    assert caught.value.reason == reason


def test_urls_that_pass_the_first_check() -> None:
    assert str(check_url("https://example.com/a?b=1#frag", DEFAULT)) == "https://example.com/a?b=1"
    assert str(check_url("http://93.184.216.34/", DEFAULT)) == "http://93.184.216.34/"
    assert check_url("http://127.0.0.1:9/", AddressPolicy(allowed_hosts=("127.0.0.1",))).port == 9
    assert check_url("http://localhost/", DEFAULT).host == "localhost"  # names are checked when resolved


async def test_the_resolver_returns_only_checked_addresses() -> None:
    stub = StaticResolver({"public.example": ["93.184.216.34", "2606:2800:220:1::"]})
    guard = GuardedResolver(DEFAULT, stub)
    answers = await guard.resolve("public.example", 443, socket.AF_UNSPEC)
    assert [(a["host"], a["port"], a["family"], a["hostname"]) for a in answers] == [
        ("93.184.216.34", 443, socket.AF_INET, "public.example"),
        ("2606:2800:220:1::", 443, socket.AF_INET6, "public.example"),
    ]
    assert [a["host"] for a in await guard.resolve("public.example", 80, socket.AF_INET)] == ["93.184.216.34"]


@pytest.mark.parametrize(("answers", "problem"), [
    (["127.0.0.1"], "loopback"),
    (["10.1.2.3"], "private"),
    (["169.254.169.254"], "metadata"),
    (["93.184.216.34", "192.168.0.7"], "private"),  # one bad answer is enough
    (["::ffff:169.254.169.254"], "metadata"),
])
async def test_the_resolver_refuses_a_name_with_any_forbidden_answer(answers: list[str], problem: str) -> None:
    guard = GuardedResolver(DEFAULT, StaticResolver({"host.example": answers}))
    with pytest.raises(FetchRefused, match=problem) as caught:
        await guard.resolve("host.example", 80)
    assert caught.value.reason == "forbidden_address" and "host.example" in caught.value.message


async def test_metadata_names_stay_refused_when_private_addresses_are_allowed() -> None:
    guard = GuardedResolver(PRIVATE_OK, StaticResolver({"metadata.google.internal": "169.254.169.254",
                                                        "nas.lan": "192.168.1.20"}))
    assert [a["host"] for a in await guard.resolve("nas.lan", 80)] == ["192.168.1.20"]
    with pytest.raises(FetchRefused, match="metadata"):
        await guard.resolve("metadata.google.internal", 80)


async def test_allowed_hosts_skip_the_address_check_and_unknown_names_fail() -> None:
    stub = StaticResolver({"intranet.example": "10.0.0.8"})
    guard = GuardedResolver(AddressPolicy(allowed_hosts=("intranet.example",)), stub)
    assert [a["host"] for a in await guard.resolve("intranet.example", 80)] == ["10.0.0.8"]
    with pytest.raises(socket.gaierror):
        await guard.resolve("nowhere.example", 80)
    assert stub.lookups == ["intranet.example", "nowhere.example"]
