"""Chapter 05: a bridge, veth pairs, NAT, published ports, DNS files; cleanup even after a crash.

Traffic stays on this machine: containers, the host's own addresses, and a client in a test
network namespace. Every global name (bridge, subnet, nftables table) is this run's own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.core import paths as _paths
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec
from minidocker.namespaces import stage as namespaces
from minidocker.network import firewall, netfiles, ports
from minidocker.network.ipam import Ipam, process_identity
from minidocker.network.stage import Network, NetworkConfig

HTTPD = "ip -4 -o addr show eth0 | awk '{print $4}'; exec httpd -f -p 80 -h /etc"


def _routed(network: ipaddress.IPv4Network) -> bool:
    with open("/proc/net/route") as f:
        for line in list(f)[1:]:
            fields = line.split()
            dst = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            if int(mask) and network.overlaps(ipaddress.IPv4Network(f"{dst}/{mask}")):  # not default
                return True
    return False


@pytest.fixture(scope="module", autouse=True)
def run_network() -> Iterator[NetworkConfig]:
    """This run's own bridge, subnet and nftables table (conftest sets them; a fallback if not)."""
    pid = os.getpid()
    free = next(f"10.200.{n}.0/24" for step in range(256)
                if not _routed(ipaddress.IPv4Network(f"10.200.{(n := (pid + step) % 256)}.0/24")))
    names = {"MINIDOCKER_BRIDGE": f"mdt{pid}", "MINIDOCKER_SUBNET": free,
             "MINIDOCKER_NFT_TABLE": f"minidocker_test_{pid}"}
    added = [key for key in names if not os.environ.get(key)]
    os.environ.update({key: names[key] for key in added})
    yield NetworkConfig.from_env()
    for key in added:
        os.environ.pop(key, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> str:
    """GET ``url``, retrying while the server is still starting (connection refused/reset)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def container(rootfs: str, script: str, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A running ``minidocker.network`` (with --init, so SIGTERM stops it) and its first line."""
    cmd = [sys.executable, "-m", "minidocker.network", "--init", *options, rootfs, "--", "/bin/sh", "-c",
           script]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read() if proc.poll() is not None else "no output"
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=15)


def nothing_left(config: NetworkConfig) -> None:
    """No bridge, veth, table or lease of this run remains."""
    from tests import leaks

    assert not leaks.links(), leaks.links()
    assert not leaks.nftables()
    assert not leaks.leases()


# -- pure logic ------------------------------------------------------------------------------------

def test_parse_publish():
    parse = ports.parse_publish
    assert parse("8080:80") == ports.PortMapping(80, 8080, "", "tcp")
    assert parse("127.0.0.1:8080:80/udp") == ports.PortMapping(80, 8080, "127.0.0.1", "udp")
    assert parse("80") == ports.PortMapping(80, 0) and parse("127.0.0.1::80").host_ip == "127.0.0.1"
    assert parse("0.0.0.0:1:2").host_ip == "" and str(parse("1:2")) == "0.0.0.0:1->2/tcp"
    for bad, words in (("8080:80/sctp", "protocol"), ("x:80", "host port"), ("80:99999", "container port"),
                       ("1-5:1-5", "ranges"), ("[::1]:80:80", "IPv6"), ("300.1.1.1:80:80", "host address")):
        with pytest.raises(EngineError, match=words):
            parse(bad)


def test_reserve_refuses_a_port_in_use_and_holds_nothing():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        free = free_port()
        with pytest.raises(EngineError, match=f"port {port}/tcp is already in use"):
            ports.reserve([ports.PortMapping(81, free), ports.PortMapping(80, port)])
    taken = ports.reserve([ports.PortMapping(81, free)])  # the first one was given back
    assert [m.host_port for m, _ in taken] == [free]
    with pytest.raises(EngineError, match="already in use"):  # and now we hold it
        ports.reserve([ports.PortMapping(82, free)])
    taken[0][1].close()


def test_resolv_conf_drops_loopback_nameservers():
    text, warnings = netfiles.resolv_conf("# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                                          "nameserver ::1\nsearch example.org\noptions ndots:2\n")
    assert text == "# x\nsearch example.org\noptions ndots:2\nnameserver 10.0.0.2\n" and not warnings
    text, warnings = netfiles.resolv_conf("nameserver 127.0.0.1\n")
    assert text == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" and "8.8.8.8" in warnings[0]


def test_ipam_leases_release_and_reconcile(tmp_path):
    ipam = Ipam(tmp_path, "10.99.0.0/29")  # 6 hosts: the gateway .1 and 5 containers
    dead = subprocess.Popen(["true"])
    dead.wait()
    with ipam.locked():
        got = [ipam.allocate(f"c{i}", os.getpid()).ip for i in range(4)]
        ghost = ipam.allocate("ghost", dead.pid)  # its process is gone: a crashed engine
        with pytest.raises(EngineError, match="no free address"):
            ipam.allocate("one-too-many", os.getpid())
        assert got == ["10.99.0.2", "10.99.0.3", "10.99.0.4", "10.99.0.5"] and ghost.ip == "10.99.0.6"
        ipam.release("c1")
        assert ipam.allocate("c5", os.getpid()).ip == "10.99.0.3"  # the lowest free one
        impostor = ipam.lease("c2")
        impostor.owner = [str(os.getpid()), "1", impostor.owner[2]]  # our pid, another start time
        ipam.update(impostor)
        assert {lease.container_id for lease in ipam.reconcile()} == {"ghost", "c2"}
    assert process_identity(os.getpid())[0] == str(os.getpid()) and process_identity(dead.pid) == []
    assert json.loads((tmp_path / "ipam.json").read_text())["leases"].keys() == {"c0", "c3", "c5"}


def test_ipam_is_safe_across_processes(tmp_path):
    """Forked processes allocating at once never get the same address (the flock at work)."""
    children = []
    for i in range(12):
        pid = os.fork()
        if pid == 0:
            try:
                ipam = Ipam(tmp_path, "10.99.0.0/24")
                with ipam.locked():
                    ipam.allocate(f"c{i}", os.getppid())
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    ips = [lease.ip for lease in Ipam(tmp_path, "10.99.0.0/24").leases()]
    assert len(ips) == 12 and len(set(ips)) == 12


def test_dnat_rules_text():
    rules = firewall.dnat_rules("t", "abc", "10.0.0.2", [ports.PortMapping(80, 8080),
                                                          ports.PortMapping(53, 5353, "127.0.0.1", "udp")])
    assert rules.splitlines() == [
        'add rule ip t publish tcp dport 8080 counter dnat to 10.0.0.2:80 comment "abc"',
        'add rule ip t publish ip daddr 127.0.0.1 udp dport 5353 counter dnat to 10.0.0.2:53 '
        'comment "abc"']


# -- containers on the bridge ----------------------------------------------------------------------

def test_bridge_container_has_eth0_address_route_and_mtu(stage, rootfs, run_network):
    script = ("ip -4 -o addr show eth0; ip route; cat /sys/class/net/eth0/mtu /sys/class/net/eth0/address; "
              "ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gateway-ok")
    result = stage("network", rootfs, "--", "/bin/sh", "-c", script)
    assert result.returncode == 0, result.stderr
    subnet = ipaddress.IPv4Network(run_network.subnet)
    gateway = str(subnet.network_address + 1)
    assert f"inet {subnet.network_address + 2}/{subnet.prefixlen}" in result.stdout
    assert f"default via {gateway} dev eth0" in result.stdout
    with open("/proc/net/route") as f:
        uplink = next((line.split()[0] for line in f if line.split()[1] == "00000000"), None)
    mtu = Path(f"/sys/class/net/{uplink}/mtu").read_text().strip() if uplink else "1500"
    lines = result.stdout.splitlines()
    assert mtu in lines and "02:42:0a:c8:" in result.stdout and lines[-1] == "gateway-ok"
    nothing_left(run_network)


def test_container_to_container(rootfs, stage, run_network):
    """Container A serves a page with busybox httpd; container B fetches it from A's address."""
    with container(rootfs, HTTPD) as (_, address):
        ip = address.split("/")[0]
        script = f"for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{ip}/passwd && exit; sleep 0.2; done"
        fetched = stage("network", rootfs, "--", "/bin/sh", "-c", script)
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == Path(rootfs, "etc/passwd").read_text()
    nothing_left(run_network)


def test_published_port_from_the_host_and_hairpin(rootfs, stage, run_network):
    """127.0.0.1 (route_localnet + masquerade), the gateway address, and a container via the gateway."""
    port = free_port()
    gateway = str(ipaddress.IPv4Network(run_network.subnet).network_address + 1)
    passwd = Path(rootfs, "etc/passwd").read_text()
    with container(rootfs, HTTPD, "-p", f"{port}:80"):
        assert fetch(f"http://127.0.0.1:{port}/passwd") == passwd
        assert fetch(f"http://{gateway}:{port}/passwd") == passwd
        hairpin = stage("network", rootfs, "--", "wget", "-qO-", f"http://{gateway}:{port}/passwd")
        assert hairpin.stdout == passwd, hairpin.stderr
        rules = subprocess.run(["nft", "list", "chain", "ip", run_network.table, "publish"],
                               capture_output=True, text=True).stdout
        connections = re.search(rf"tcp dport {port} counter packets (\d+) ", rules)
        assert connections and int(connections.group(1)) >= 3  # NAT sees each connection's first packet
    nothing_left(run_network)


CLIENT = ("import sys, urllib.request\nfrom minidocker.core import syscalls as _syscalls\n"
          "_syscalls.unshare(_syscalls.CLONE_NEWNET)\nprint('ready', flush=True)\n"
          "for url in sys.stdin:\n"
          "    try:\n        body = urllib.request.urlopen(url.strip(), timeout=1).read()\n"
          "        print('ok', len(body), flush=True)\n"
          "    except Exception as e:\n        print('error', e, flush=True)\n")
# Answers every HTTP request on port 8080 with the address it came from.
WHO_ASKS = ("import socket\nfrom minidocker.core import syscalls as _syscalls\n"
            "_syscalls.unshare(_syscalls.CLONE_NEWNET)\n"
            "server = socket.create_server(('0.0.0.0', 8080))\nprint('ready', flush=True)\n"
            "while True:\n    conn, peer = server.accept()\n    conn.recv(4096)\n"
            "    body = peer[0].encode()\n"
            "    conn.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
            "    conn.close()\n")


@contextlib.contextmanager
def client_namespace(run_network: NetworkConfig, code: str = CLIENT) -> Iterator[subprocess.Popen]:
    """A process in a new network namespace, cabled to the host by a veth in 10.201.N.0/30.

    ``CLIENT``: send it URLs on stdin; it answers each with ``ok <body length>`` or ``error <reason>``.
    ``WHO_ASKS``: a web server on 10.201.N.2:8080 that answers with the address it saw.
    """
    from pyroute2 import IPRoute, NetlinkError

    from minidocker.network import veth

    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    n = ipaddress.IPv4Network(run_network.subnet).network_address.packed[2]
    assert not _routed(ipaddress.IPv4Network(f"10.201.{n}.0/30")), f"10.201.{n}.0/30 is in use here"
    host_end = f"{run_network.bridge}c"
    try:
        assert proc.stdout.readline() == "ready\n"
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_end, kind="veth", peer={"ifname": "eth0", "net_ns_pid": proc.pid})
            index = ipr.link_lookup(ifname=host_end)[0]
            ipr.addr("add", index=index, address=f"10.201.{n}.1", prefixlen=30)
            ipr.link("set", index=index, state="up")
        with veth.netlink_in(proc.pid) as inside:
            eth0 = inside.link_lookup(ifname="eth0")[0]
            inside.addr("add", index=eth0, address=f"10.201.{n}.2", prefixlen=30)
            inside.link("set", index=eth0, state="up")
            inside.route("add", dst="0.0.0.0/0", gateway=f"10.201.{n}.1")
        yield proc
    finally:
        proc.kill()
        proc.wait()
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=host_end):
                with contextlib.suppress(NetlinkError):  # ENODEV: the kernel, which removes the pair
                    ipr.link("del", index=index)  # with the killed process's namespace, was first


def test_published_port_from_another_namespace(rootfs, run_network):
    """A client in its own network namespace reaches the published port, and only that."""
    port = free_port()
    n = ipaddress.IPv4Network(run_network.subnet).network_address.packed[2]
    size = len(Path(rootfs, "etc/passwd").read_text())
    with container(rootfs, HTTPD, "-p", f"{port}:80") as (_, address), \
            client_namespace(run_network) as client:
        fetch(f"http://127.0.0.1:{port}/passwd")  # the server is up
        answers = []
        for url in (f"http://10.201.{n}.1:{port}/passwd", f"http://{address.split('/')[0]}/passwd"):
            client.stdin.write(url + "\n")
            client.stdin.flush()
            answers.append(client.stdout.readline().strip())
        assert answers[0] == f"ok {size}"  # through the host's address on the client's side
        assert answers[1].startswith("error")  # the container's own address is not open to the world
    nothing_left(run_network)


def test_containers_reach_the_outside_through_nat(rootfs, stage, run_network):
    """A container reaches what the host reaches, seen from there as the host (masquerade)."""
    n = ipaddress.IPv4Network(run_network.subnet).network_address.packed[2]
    with client_namespace(run_network, WHO_ASKS):
        result = stage("network", rootfs, "--", "/bin/sh", "-c", f"wget -q -O - http://10.201.{n}.2:8080/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"10.201.{n}.1", result.stdout  # the host's address on that link, not 10.200.x
    nothing_left(run_network)


def test_a_published_udp_port(rootfs, run_network):
    """``-p PORT:53/udp``: datagrams to the host's port reach the container's, and the answers come back."""
    port = free_port()
    gateway = str(ipaddress.IPv4Network(run_network.subnet).network_address + 1)
    with container(rootfs, "echo up; exec sleep 300", "-p", f"{port}:53/udp") as (engine, _):
        pid1 = next(pid for pid in _descendants(engine.pid)
                    if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"))
        echo = ("import os, socket, sys\nfrom minidocker.core import syscalls as _syscalls\n"
                "_syscalls.setns(os.open(sys.argv[1], os.O_RDONLY), _syscalls.CLONE_NEWNET)\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53))\n"
                "print('ready', flush=True)\n"
                "while True:\n    data, peer = s.recvfrom(512)\n    s.sendto(b'echo ' + data, peer)\n")
        server = subprocess.Popen([sys.executable, "-c", echo, f"/proc/{pid1}/ns/net"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline() == "ready\n"
            for host in ("127.0.0.1", gateway):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.settimeout(3)
                    client.sendto(host.encode(), (host, port))
                    assert client.recv(512) == b"echo " + host.encode()
        finally:
            server.kill()
            server.wait()
    nothing_left(run_network)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
                found += children
                todo += children
    return found


def test_twenty_containers_at_once(rootfs, run_network):
    """Started concurrently, all alive at once: 20 distinct addresses, each reaching the bridge."""
    gateway = str(ipaddress.IPv4Network(run_network.subnet).network_address + 1)
    script = (f"ip -4 -o addr show eth0 | awk '{{print $4}}'; ping -c1 -W3 {gateway} >/dev/null "
              "&& echo ok || echo unreachable; read wait_for_the_test")
    cmd = [sys.executable, "-m", "minidocker.network", rootfs, "--", "/bin/sh", "-c", script]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(20)]
    try:
        answers = [(p.stdout.readline().strip(), p.stdout.readline().strip()) for p in procs]
        from tests import leaks

        assert len(leaks.leases()) == 20
    finally:
        for p in procs:
            p.communicate("go\n", timeout=30)
    addresses = [a for a, _ in answers]
    assert len(set(addresses)) == 20 and all(a.startswith("10.200.") for a in addresses), answers
    assert all(ok == "ok" for _, ok in answers), answers
    assert all(p.returncode == 0 for p in procs)
    nothing_left(run_network)


def test_bridge_and_table_stay_while_a_container_uses_them(rootfs, stage, run_network):
    with container(rootfs, "echo up; exec sleep 30"):
        assert stage("network", rootfs, "--", "true").returncode == 0
        assert os.path.exists(f"/sys/class/net/{run_network.bridge}")  # the first one still runs
        assert firewall.table_exists(run_network.table)
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    nothing_left(run_network)  # the last one took them


def test_port_in_use_is_one_error_and_nothing_is_configured(stage, rootfs, run_network):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = stage("network", "-p", f"{port}:80", rootfs, "--", "true")
    assert result.returncode == 125
    assert result.stderr == (f"minidocker: cannot publish 0.0.0.0:{port}->80/tcp: port {port}/tcp is already "
                             "in use on 0.0.0.0; choose another host port\n")
    nothing_left(run_network)


def test_engine_killed_its_watchdog_cleans_up_at_once(rootfs, run_network):
    """SIGKILL: the container and its veth die with the engine; the engine's watchdog then gives the
    lease back, deletes the DNAT rule (the host may use the port again) and the bridge and table."""
    from tests import leaks

    port = free_port()
    cmd = [sys.executable, "-m", "minidocker.network", "-p", f"{port}:80", rootfs, "--", "/bin/sh", "-c",
           "echo ready; exec sleep 60"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as engine:
        assert engine.stdout.readline() == "ready\n"
        veths = leaks.links() - {run_network.bridge}
        assert len(veths) == 1 and len(leaks.leases()) == 1
        (lease,) = leases = leaks.leases()
        assert netfiles.files_dir(lease.split()[1]).exists()
        engine.kill()
    deadline = time.monotonic() + 5
    while (leaks.links() or leaks.nftables() or leaks.leases()) and time.monotonic() < deadline:
        time.sleep(0.05)
    nothing_left(run_network)
    assert not netfiles.files_dir(lease.split()[1]).exists(), leases
    with socket.socket() as server:  # no stale DNAT rule in the way: a host server gets the port
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            server.accept()[0].close()


def kill_network_watchdog(engine: subprocess.Popen) -> None:
    """SIGKILL the engine's network watchdog, as if it had died too (a crash of the whole host's
    processes, an OOM kill of both): only the next reconcile can then clean up."""
    children = Path(f"/proc/{engine.pid}/task/{engine.pid}/children").read_text().split()
    argvs = {int(pid): Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children}
    (watchdog,) = [pid for pid, argv in argvs.items() if argv[3:4] == [b"minidocker-network-watchdog"]]
    os.kill(watchdog, signal.SIGKILL)


def test_without_its_watchdog_the_next_start_cleans_up(rootfs, stage, run_network):
    """Engine and watchdog killed: the lease and the rules stay until the next container's attach
    reconciles, and that one's exit takes the bridge and table."""
    from tests import leaks

    port = free_port()
    cmd = [sys.executable, "-m", "minidocker.network", "-p", f"{port}:80", rootfs, "--", "/bin/sh", "-c",
           "echo ready; exec sleep 60"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as engine:
        assert engine.stdout.readline() == "ready\n"
        kill_network_watchdog(engine)
        engine.kill()
    deadline = time.monotonic() + 5
    while leaks.links() != {run_network.bridge} and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel destroys the namespace, and the veth pair, asynchronously
    assert leaks.links() == {run_network.bridge}, "the veth should die with the container"
    assert len(leaks.leases()) == 1 and f"dport {port}" in firewall.nft(
        f"list chain ip {run_network.table} publish\n")
    (lease,) = leases = leaks.leases()
    assert netfiles.files_dir(lease.split()[1]).exists()
    assert stage("network", rootfs, "--", "true").returncode == 0
    nothing_left(run_network)
    assert not netfiles.files_dir(lease.split()[1]).exists(), leases


def test_reconcile_api_after_a_crash(rootfs, run_network):
    from tests import leaks

    cmd = [sys.executable, "-m", "minidocker.network", "-p", f"{free_port()}:80", rootfs, "--", "/bin/sh",
           "-c", "echo ready; exec sleep 60"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as engine:
        assert engine.stdout.readline() == "ready\n"
        (lease,) = leases = leaks.leases()
        kill_network_watchdog(engine)
        engine.kill()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{engine.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(100):  # the container (PDEATHSIG) exits a moment after its engine
        stale = Network().reconcile()
        if stale:
            break
        time.sleep(0.05)
    assert stale == [lease.split()[1]], leases
    nothing_left(run_network)


def test_network_none_has_only_loopback(stage, rootfs, run_network):
    result = stage("network", "--network", "none", rootfs, "--", "/bin/sh", "-c",
                   "ls /sys/class/net; ip -4 -o addr; ip route")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "lo" and "eth0" not in result.stdout
    assert "127.0.0.1/8" in result.stdout and "default" not in result.stdout
    nothing_left(run_network)


def test_network_host_shares_the_hosts_network(stage, rootfs):
    result = stage("network", "--network", "host", rootfs, "--", "/bin/sh", "-c",
                   "readlink /proc/self/ns/net; hostname; ls /sys/class/net")
    assert result.returncode == 0, result.stderr
    ns, name, *devices = result.stdout.split()
    assert ns == os.readlink("/proc/self/ns/net") and name == socket.gethostname()
    assert {"lo", *(d for d in os.listdir("/sys/class/net") if d.startswith("eth"))} <= set(devices)


def test_bad_options_are_one_line_errors(stage, rootfs):
    for options, words in ((["--network", "overlay"], "invalid --network 'overlay'"),
                           (["--network", "none", "-p", "80:80"], "-p needs --network bridge"),
                           (["-p", "80:80/sctp"], "invalid protocol")):
        result = stage("network", *options, rootfs, "--", "true")
        assert result.returncode == 125 and words in result.stderr and result.stderr.count("\n") == 1


def test_dns_files(stage, rootfs, run_network):
    script = "cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf"
    before = set(Path(_paths.state_dir(), "containers").glob("*"))
    result = stage("network", "--hostname", "web", rootfs, "--", "/bin/sh", "-c", script)
    assert result.returncode == 0, result.stderr
    ip = str(ipaddress.IPv4Network(run_network.subnet).network_address + 2)
    assert result.stdout.startswith("web\n127.0.0.1\tlocalhost\n") and f"\n{ip}\tweb\n" in result.stdout
    expected, _ = netfiles.resolv_conf(netfiles.host_resolv_conf())
    assert result.stdout.endswith(expected) and "nameserver 127." not in result.stdout
    none = stage("network", "--network", "none", rootfs, "--", "/bin/cat", "/etc/hosts")
    assert none.stdout == netfiles.LOCALHOST
    host = stage("network", "--network", "host", rootfs, "--", "/bin/cat", "/etc/hosts")
    assert host.stdout == Path("/etc/hosts").read_text()
    assert Path(rootfs, "etc/hosts").read_text() == ""  # covered in the container's own root only
    assert set(Path(_paths.state_dir(), "containers").glob("*")) == before  # the files went with them


def test_dns_files_are_not_created_in_a_shared_directory_but_in_an_overlay(writable_rootfs, tmp_path, capfd):
    """Chapter 02's engine on a plain directory: nothing is created in it (a note says so); on an
    overlay root of its own, the missing mount points are created in its upper layer."""
    rootfs = writable_rootfs  # an image without the mount points (the busybox rootfs has them)
    for name in ("hosts", "hostname", "resolv.conf"):
        Path(rootfs, "etc", name).unlink()
    files = netfiles.write_files(tmp_path / "files", "box", None, "none")
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/ls", "/etc"], env={"PATH": "/bin"})
    spec.before_pivot.append(lambda root: netfiles.bind_files(root, files))
    assert namespaces.run(spec) == 0
    out, err = capfd.readouterr()
    assert "hosts" not in out and "/etc/hosts /etc/hostname /etc/resolv.conf missing" in err
    assert not Path(rootfs, "etc/hosts").exists()
    for d in ("upper", "work", "merged"):
        (tmp_path / d).mkdir()
    merged = str(tmp_path / "merged")
    _syscalls.mount("overlay", merged, "overlay", 0,
                    f"lowerdir={rootfs},upperdir={tmp_path / 'upper'},workdir={tmp_path / 'work'}")
    try:
        spec = ContainerSpec(rootfs=merged, argv=["/bin/cat", "/etc/hostname"],
                             env={"PATH": "/bin"})
        spec.before_pivot.append(lambda root: netfiles.bind_files(root, files))
        assert namespaces.run(spec) == 0
        assert capfd.readouterr() == ("box\n", "")
        assert (tmp_path / "upper/etc/hostname").exists() and not Path(rootfs, "etc/hostname").exists()
    finally:
        _syscalls.umount2(merged)


# -- the API the daemon uses -----------------------------------------------------------------------

def test_attach_and_detach_api(rootfs, run_network):
    from minidocker.network.bridge import mac_for

    net = Network()
    port = free_port()
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/sleep", "30"], env={"PATH": "/bin"})
    endpoints = []
    mappings = [ports.PortMapping(80, port)]
    spec.on_created.append(lambda pid: endpoints.append(net.attach(spec.id, pid, mappings)))
    started = namespaces.start(spec)
    try:
        (endpoint,) = endpoints
        subnet = ipaddress.IPv4Network(run_network.subnet)
        assert ipaddress.IPv4Address(endpoint.ip) in subnet and endpoint.prefixlen == subnet.prefixlen
        assert endpoint.gateway == str(subnet.network_address + 1) and endpoint.mac == mac_for(endpoint.ip)
        assert endpoint.bridge == run_network.bridge and endpoint.ports == [ports.PortMapping(80, port)]
        master = os.path.basename(os.readlink(f"/sys/class/net/{endpoint.veth}/master"))
        assert master == run_network.bridge
        assert net.endpoints() == [endpoint] and net.endpoint(spec.id) == endpoint and endpoint.mtu >= 576
        with pytest.raises(EngineError, match="already in use"):
            ports.reserve([ports.PortMapping(80, port)])  # held while attached
    finally:
        os.kill(started.pid, signal.SIGKILL)
        started.wait()
        net.detach(spec.id)
        net.detach(spec.id)  # twice is fine
    assert net.endpoint(spec.id) is None
    ports.reserve([ports.PortMapping(80, port)])[0][1].close()  # and given back
    nothing_left(run_network)


def test_failed_attach_undoes_everything(run_network):
    gone = subprocess.Popen(["true"])
    gone.wait()
    port = free_port()
    with pytest.raises(EngineError, match=f"connecting the container to {run_network.bridge}"):
        Network().attach("f" * 64, gone.pid, [ports.PortMapping(80, port)])  # no such process
    ports.reserve([ports.PortMapping(80, port)])[0][1].close()
    nothing_left(run_network)


def test_a_foreign_device_with_the_bridge_name_is_left_alone(run_network):
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("add", ifname=run_network.bridge, kind="veth", peer=f"{run_network.bridge}p")
        try:
            with pytest.raises(EngineError, match="is not this minidocker's bridge"):
                Network().ensure_bridge()
            assert Network().reconcile() == [] and not Network().remove_bridge_if_unused()
            assert ipr.link_lookup(ifname=run_network.bridge)
        finally:
            ipr.link("del", ifname=run_network.bridge)
    nothing_left(run_network)


def in_a_mount_namespace(work) -> int:
    """Run ``work()`` in a child with a private mount namespace of its own; its exit status (0: True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _syscalls.unshare(_syscalls.CLONE_NEWNS)
            _syscalls.mount(None, "/", None, _syscalls.MS_REC | _syscalls.MS_PRIVATE)
            code = 0 if work() else 1
        except BaseException as e:  # the parent sees the status only
            print(f"in_a_mount_namespace: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_image_symlinks_for_the_dns_files_stay_inside_the_rootfs(tmp_path, monkeypatch):
    """CVE-2014-9356's class: an image whose /etc/hostname, /etc/hosts, /etc/resolv.conf are symlinks to
    host paths. The engine binds its files over them before pivot_root, from the host: the links are
    resolved inside the rootfs, and nothing is created (or mounted over) outside it."""
    tag = f"minidocker-pwned-{os.getpid()}"
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    os.symlink(f"/tmp/{tag}-hostname", root / "etc/hostname")
    os.symlink(f"../../../../../../../../tmp/{tag}-hosts", root / "etc/hosts")
    os.symlink(f"/tmp/{tag}-resolv", root / "etc/resolv.conf")
    monkeypatch.setattr(netfiles, "_filesystem_at", lambda path: "overlay")  # a root of its own
    files = netfiles.write_files(tmp_path / "files", "box", "10.0.0.2", "none")

    def bind() -> bool:
        netfiles.bind_files(str(root), files)
        return (root / "tmp" / f"{tag}-hostname").read_text() == "box\n"  # bound inside the root

    try:
        assert in_a_mount_namespace(bind) == 0
    finally:
        leaked = [name for name in os.listdir("/tmp") if name.startswith(tag)]
        for name in leaked:
            os.unlink(os.path.join("/tmp", name))
    assert leaked == []
    assert sorted(os.listdir(root / "tmp")) == [f"{tag}-hostname", f"{tag}-hosts", f"{tag}-resolv"]
