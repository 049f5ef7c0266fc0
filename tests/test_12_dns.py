"""Chapter 12: the embedded DNS server on its own (no daemon): a network namespace, a process, queries.

Each test makes a network namespace with ``ip netns add`` and a ``sleep`` in it, attaches an
:class:`~minidocker.networks.dns.EmbeddedDNS` (running in a loop thread of pytest's process, as in
the daemon) to that process, and asks from inside the namespace: a client process (dnspython, or
busybox's nslookup) talking to 127.0.0.11. Names we do not know go to an upstream of our own on the
host's 127.0.0.1 (:class:`tests.bench.dns.Upstream`), never to the internet.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.core.errors import NotFound
from minidocker.networks.resolvconf import for_container, host_upstreams, nameservers
from tests.bench.dns import Namespace, Upstream, measure, serving

ROOT = Path(__file__).resolve().parent.parent
WEB = "a" * 64  # container ids
DB = "b" * 64
NAMES = {
    WEB: {"web": ["10.89.0.2"], "db": ["10.89.0.3"], "api": ["10.89.0.4", "10.89.0.5", "10.89.0.6"],
          "bare": [], "many": [f"10.89.1.{i}" for i in range(1, 101)]},
    DB: {"db": ["10.89.0.3"]},  # "web" is on another network for DB: not ours, forwarded
}


def lookup(asker: str, name: str) -> list[str] | None:
    if name == "boom":
        raise RuntimeError("a broken lookup")
    return NAMES.get(asker, {}).get(name)


def reverse(asker: str, address: str) -> list[str] | None:
    found = [name for name, addresses in NAMES.get(asker, {}).items() if address in addresses]
    return found or None


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream({"example.test": ["192.0.2.7"], "web": ["192.0.2.80"],
                       "big.test": [f"192.0.2.{i}" for i in range(1, 101)]}, silent={"slow.test"})
    yield server
    server.close()


@pytest.fixture
def netns() -> Iterator[Namespace]:
    namespace = Namespace()
    yield namespace
    namespace.close()


@pytest.fixture
def dns_server(upstream: Upstream) -> Iterator[tuple]:
    with serving(lookup, [upstream.address], timeout=1.0, reverse=reverse) as (loop, server):
        yield loop, server


def test_a_known_name_gives_its_addresses_and_other_types_none(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    web, upper, dotted, aaaa, bare, ptr = netns.ask([
        {"name": "web"}, {"name": "WEB"}, {"name": "db."}, {"name": "web", "type": "AAAA"}, {"name": "bare"},
        {"name": "2.0.89.10.in-addr.arpa", "type": "PTR"}])
    assert (web["rcode"], web["records"]) == ("NOERROR", ["10.89.0.2"])
    assert upper["records"] == ["10.89.0.2"]  # names are case-insensitive
    assert dotted["records"] == ["10.89.0.3"]
    assert (aaaa["rcode"], aaaa["records"]) == ("NOERROR", [])  # known, no IPv6: no records, no error
    assert (bare["rcode"], bare["records"]) == ("NOERROR", [])
    assert (ptr["rcode"], ptr["records"]) == ("NOERROR", ["web."])


def test_busybox_nslookup_finds_a_name(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    rootfs = subprocess.run([sys.executable, "-m", "minidocker.rootfs"], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    result = netns.run([f"{rootfs}/bin/busybox", "nslookup", "web", "127.0.0.11"], timeout=30)
    assert "10.89.0.2" in result.stdout, result.stdout + result.stderr


def test_an_alias_of_three_returns_all_three_in_turn(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    answers = netns.ask([{"name": "api"}] * 3)
    for answer in answers:
        assert sorted(answer["records"]) == ["10.89.0.4", "10.89.0.5", "10.89.0.6"]
    assert {answer["records"][0] for answer in answers} == {"10.89.0.4", "10.89.0.5", "10.89.0.6"}


def test_what_is_not_ours_is_forwarded_and_relayed(dns_server, netns: Namespace, upstream: Upstream) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    external, missing = netns.ask([{"name": "example.test"}, {"name": "nowhere.test"}])
    assert (external["rcode"], external["records"]) == ("NOERROR", ["192.0.2.7"])
    assert missing["rcode"] == "NXDOMAIN"
    assert upstream.asked["udp"] >= 2


def test_a_name_on_another_network_is_not_answered_by_us(dns_server, upstream: Upstream) -> None:
    """``web`` is ours for WEB; for DB (not on its network) lookup says None: the upstream's answer."""
    loop, server = dns_server
    first, second = Namespace(), Namespace()
    try:
        loop.call(server.attach(WEB, first.pid))
        loop.call(server.attach(DB, second.pid))
        assert first.ask([{"name": "web"}])[0]["records"] == ["10.89.0.2"]
        assert second.ask([{"name": "web"}])[0]["records"] == ["192.0.2.80"]  # the upstream's
        assert second.ask([{"name": "db"}])[0]["records"] == ["10.89.0.3"]
    finally:
        first.close()
        second.close()


def test_an_upstream_that_never_answers_gives_servfail_in_time(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    slow = netns.ask([{"name": "slow.test", "timeout": 5}])[0]
    assert slow["rcode"] == "SERVFAIL"
    assert 0.9 < slow["elapsed"] < 2.0  # the server's timeout is 1 s


def test_tcp_and_truncation(dns_server, netns: Namespace, upstream: Upstream) -> None:
    """100 addresses do not fit 512 bytes: TC over UDP, all over TCP; forwarded ones too (the
    upstream truncates over UDP, so we ask it again over TCP)."""
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    tcp, udp, edns, big_tcp, big_udp = netns.ask([
        {"name": "web", "proto": "tcp"}, {"name": "many"}, {"name": "many", "edns": 4096},
        {"name": "big.test", "proto": "tcp"}, {"name": "big.test", "edns": 4096}])
    assert tcp["records"] == ["10.89.0.2"]
    assert udp["tc"] and udp["records"] == []
    assert not edns["tc"] and len(edns["records"]) == 100
    assert len(big_tcp["records"]) == 100
    assert len(big_udp["records"]) == 100 and upstream.asked["tcp"] >= 2


def test_garbage_is_answered_formerr_or_dropped_and_the_server_lives_on(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    answers = netns.ask([
        {"raw": "00", "timeout": 0.3},                               # too short: dropped
        {"raw": "abcd01000001000000000000" + "ff" * 40, "timeout": 1},  # header, then nonsense
        {"raw": "abcd81800000000000000000", "timeout": 0.3},          # a response: never answered
        {"raw": "ab" * 5000, "timeout": 0.3},                         # over 4096 bytes: dropped
        {"raw": "abcd01000001000000", "timeout": 0.3},                # a header cut short: dropped
        {"name": "web"},
    ])
    assert answers[0]["reply"] is None
    formerr = bytes.fromhex(answers[1]["reply"])
    assert formerr[:2] == b"\xab\xcd" and formerr[3] & 0x0F == 1  # same id, rcode FORMERR
    assert answers[2]["reply"] is None
    assert answers[3]["reply"] is None
    assert answers[4]["reply"] is None
    assert answers[5]["records"] == ["10.89.0.2"]
    # garbage over TCP: the connection ends, the server does not
    script = ("import socket; s = socket.create_connection(('127.0.0.11', 53));"
              " s.sendall(b'\\x00\\x05hello'); s.settimeout(3); print(len(s.recv(100)))")
    result = netns.run([sys.executable, "-c", script])
    assert result.returncode == 0, result.stderr
    assert netns.ask([{"name": "web", "proto": "tcp"}])[0]["records"] == ["10.89.0.2"]


def test_a_broken_lookup_or_a_bad_container_stops_no_one_else(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    gone = Namespace()
    gone.kill()
    try:
        with pytest.raises(NotFound, match="is gone"):
            loop.call(server.attach(DB, gone.pid))
    finally:
        gone.close()
    loop.call(server.attach(WEB, netns.pid))
    boom, web = netns.ask([{"name": "boom"}, {"name": "web"}])
    assert boom["rcode"] == "SERVFAIL"
    assert web["records"] == ["10.89.0.2"]


def test_detach_stops_answering(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    loop.call(server.attach(WEB, netns.pid))  # again: replaces, does not collide with itself
    assert netns.ask([{"name": "web"}])[0]["records"] == ["10.89.0.2"]
    loop.call(server.detach(WEB))
    udp, tcp = netns.ask([{"name": "web", "timeout": 0.5}, {"name": "web", "proto": "tcp", "timeout": 0.5}])
    assert "error" in udp and "error" in tcp
    assert loop.sync(lambda: server.attached) == []
    loop.call(server.detach(WEB))  # twice: nothing to do


def test_a_container_whose_process_exits_is_detached(dns_server, netns: Namespace) -> None:
    """Our sockets would keep its network namespace (and its veth) alive: the pidfd tells us at once."""
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    netns.kill()
    deadline = time.monotonic() + 5
    while loop.sync(lambda: server.attached) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loop.sync(lambda: server.attached) == []


def test_a_shared_namespace_is_served_once(dns_server, netns: Namespace) -> None:
    """``--network container:web``: a second container in the same namespace reuses the sockets."""
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid))
    loop.call(server.attach(DB, netns.pid))
    assert sorted(loop.sync(lambda: server.attached)) == [WEB, DB]
    loop.call(server.detach(WEB))
    assert netns.ask([{"name": "web"}])[0]["records"] == ["192.0.2.80"]  # now answered as DB
    loop.call(server.detach(DB))
    assert "error" in netns.ask([{"name": "web", "timeout": 0.5}])[0]


def test_an_internal_only_container_gets_no_forwarding(dns_server, netns: Namespace) -> None:
    loop, server = dns_server
    loop.call(server.attach(WEB, netns.pid, forward=False))
    web, external = netns.ask([{"name": "web"}, {"name": "example.test"}])
    assert web["records"] == ["10.89.0.2"]
    assert external["rcode"] == "REFUSED"


def test_resolv_conf_reading(tmp_path: Path) -> None:
    assert nameservers("nameserver 192.0.2.1\nnameserver bogus\n# nameserver 192.0.2.9\n"
                       "nameserver 192.0.2.1\nnameserver fe80::1%eth0\n") == ["192.0.2.1", "fe80::1"]
    stub, real = tmp_path / "resolv.conf", tmp_path / "systemd.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0\n")
    real.write_text("nameserver 192.0.2.53\n")
    assert host_upstreams(str(stub), str(real)) == ["192.0.2.53"]
    assert host_upstreams(str(tmp_path / "none"), str(real)) == []
    assert for_container("domain corp\nsearch a b\nnameserver 192.0.2.1\noptions rotate\n") == (
        "domain corp\nsearch a b\nnameserver 127.0.0.11\noptions ndots:0\n")


def test_answer_latency() -> None:
    """The median round trip of 300 queries from inside the namespace (``python -m tests.bench.dns``
    measures 1,000): what we answer ourselves, what we forward, and the upstream asked directly."""
    numbers = measure(300)
    print({what: f"{value * 1e6:.0f} µs" for what, value in numbers.items() if what != "queries"})
    assert numbers["answered"] < 0.05
    assert numbers["forwarded"] < 0.1
