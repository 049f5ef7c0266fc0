"""Chapter 12: the embedded DNS answers a container's very first query.

The engine binds 127.0.0.11:53 in the container's network namespace before PID 1 runs and hands
the sockets to the daemon (``minidocker/networks/handoff.py``); before that, the daemon attached them
once the container ran, and a container whose first instruction was a lookup failed about one run
in two ("bad address"). Here: the hand-over on its own (queries over UDP and TCP sent before the
server adopts the sockets are answered; no daemon listening: nothing bound, nothing left open; a
malformed hand-over: its descriptors closed), then against minidockerd a container whose command
*is* the lookup, 20 times, every time a success, and a container started again and again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.networks import handoff
from tests.bench.dns import ROOT, Namespace, serving
from tests.helpers_10_daemon import daemon_fixture

docker = pytest.importorskip("docker")

RUNS = 20
WEB = "c" * 64


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def netns() -> Iterator[Namespace]:
    namespace = Namespace()
    yield namespace
    namespace.close()


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCKER_RUN", str(tmp_path / "run"))
    return tmp_path / "run"


def test_queries_sent_before_the_server_adopts_the_sockets_are_answered(netns, run_dir) -> None:
    sock = handoff.listen()
    assert (handoff.socket_path().stat().st_mode & 0o777) == 0o600  # root's alone
    try:
        assert handoff.hand_over(WEB, netns.pid)  # as the engine does before PID 1 runs
        [handed] = handoff.receive(sock)
    finally:
        sock.close()
    assert handed.container_id == WEB
    assert handoff.netns_of(handed.udp) == (os.stat(f"/proc/{netns.pid}/ns/net").st_dev,
                                            os.stat(f"/proc/{netns.pid}/ns/net").st_ino)
    queries = '[{"name": "web"}, {"name": "web", "proto": "tcp"}]'
    asker = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-m", "tests.bench.dns",
                              "client", queries], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the UDP query waits in the socket's queue, the TCP connection in the backlog
        assert asker.poll() is None
        with serving(lambda asker, name: {"web": ["10.89.0.2"]}.get(name), []) as (loop, server):
            loop.call(server.adopt(WEB, handed.pidfd, handed.udp, handed.tcp))
            out, _ = asker.communicate(timeout=30)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    udp, tcp = json.loads(out)
    assert (udp["rcode"], udp["records"]) == ("NOERROR", ["10.89.0.2"])
    assert (tcp["rcode"], tcp["records"]) == ("NOERROR", ["10.89.0.2"])


def test_no_daemon_listening_binds_nothing_and_leaves_nothing_open(netns, run_dir) -> None:
    before = open_fds()
    assert not handoff.hand_over(WEB, netns.pid)  # no dns.sock: not even bound
    sock = handoff.listen()
    sock.close()  # a daemon gone, its socket file left behind: refused, the sockets closed
    assert handoff.socket_path().exists()
    assert not handoff.hand_over(WEB, netns.pid)
    assert open_fds() == before
    probe = netns.run(["sh", "-c", "cat /proc/net/udp"])
    assert ":0035 " not in probe.stdout  # port 53 is free again in the namespace


def test_a_malformed_hand_over_is_dropped_with_its_descriptors(run_dir) -> None:
    sock = handoff.listen()
    try:
        before = open_fds()
        one, two = socket.socketpair()
        good = b'{"id": "' + WEB.encode() + b'"}'
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(str(handoff.socket_path()))
            socket.send_fds(s, [good], [one.fileno()])  # one descriptor
            socket.send_fds(s, [b"not json"], [one.fileno(), two.fileno(), one.fileno()])
            socket.send_fds(s, [good], [one.fileno(), two.fileno(), one.fileno()])  # no pidfd
        one.close(), two.close()
        assert handoff.receive(sock) == []
        assert open_fds() == before
    finally:
        sock.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def client(daemon):
    sdk = docker.DockerClient(base_url=daemon.host, timeout=60)
    yield sdk
    for c in sdk.containers.list(all=True):
        c.remove(force=True)
    for n in sdk.networks.list():
        if n.name not in ("bridge", "host", "none"):
            n.remove()
    sdk.close()


def _first(client, command: str, name: str) -> tuple[int, str]:
    """Run ``command`` as the container's whole command on network ``first``; its exit code and output."""
    c = client.containers.run("busybox", ["sh", "-c", command], detach=True, name=name, network="first")
    code = c.wait(timeout=60)["StatusCode"]
    out = c.logs().decode()
    c.remove(force=True)
    return code, out


def test_a_containers_first_instruction_resolves_a_name_20_times_out_of_20(client, daemon):
    client.networks.create("first", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.241.0.0/24")]))
    serve = "mkdir -p /www && echo hello-first > /www/index.html && exec httpd -f -h /www"
    web = client.containers.run("busybox", ["sh", "-c", serve], detach=True, name="web", network="first")
    web.reload()
    address = web.attrs["NetworkSettings"]["Networks"]["first"]["IPAddress"]
    _first(client, "true", "warm")  # the image's files and the connection pool are there before we count
    before = descriptors(daemon)
    failures = []
    for i in range(RUNS):
        code, out = _first(client, "nslookup web", f"ask{i}")
        if code != 0 or address not in out:
            failures.append((i, code, out))
    assert failures == [], f"{len(failures)} of {RUNS} first lookups failed: {failures[:3]}"
    code, out = _first(client, "wget -q -O- http://web/", "fetch")  # the compose job's first instruction
    assert (code, out) == (0, "hello-first\n")
    # the daemon serves web's namespace only: nothing of the 21 containers gone is still open
    assert before["socket"] >= 2 and before["pidfd"] >= 1  # web's endpoint
    deadline = time.monotonic() + 10
    while (after := descriptors(daemon)) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert after == before
    assert "adopting its sockets" not in daemon.log_tail()


def descriptors(daemon) -> dict[str, int]:
    """The daemon's pidfds and its sockets that are not the host's UNIX ones (the API's connections
    come and go): its DNS endpoints hold two sockets (in their containers' namespaces) and a pidfd each."""
    unix = {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    counts = {"pidfd": 0, "socket": 0}
    fds = f"/proc/{daemon.process.pid}/fd"
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fds}/{fd}")
            if target == "anon_inode:[pidfd]":
                counts["pidfd"] += 1
            elif target.startswith("socket:[") and target[8:-1] not in unix:
                counts["socket"] += 1
    return counts


def test_a_container_started_again_is_served_in_each_new_namespace(client):
    client.networks.create("first", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.241.0.0/24")]))
    client.containers.run("busybox", "sleep 300", detach=True, name="web", network="first")
    c = client.containers.create("busybox", ["nslookup", "web"], name="asker", network="first")
    for _ in range(3):  # each start: a new namespace, its sockets handed over again
        c.start()
        assert c.wait(timeout=60)["StatusCode"] == 0, c.logs().decode()
