"""Chapter 12: a container's endpoint on a user-defined network, through the API (docker-py) and our CLI:
``--network container:NAME``, ``--mac-address``, published ports, and what the prunes leave (nothing)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests import leaks
from tests.helpers_10_daemon import daemon_fixture

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def client(daemon):
    sdk = docker.DockerClient(base_url=daemon.host, timeout=60)
    yield sdk
    for c in sdk.containers.list(all=True):
        c.remove(force=True)
    sdk.networks.prune()
    sdk.close()


def network(client, name: str, subnet: str):
    return client.networks.create(name, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet=subnet)]))


def sh(container, command: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", command])
    return code, out.decode()


def refused(call) -> docker.errors.APIError:
    with pytest.raises(docker.errors.APIError) as caught:
        call()
    return caught.value


def test_network_container_shares_the_other_containers_namespace(client, daemon):
    network(client, "shared", "10.241.0.0/24")
    web = client.containers.run("busybox", "sleep 300", detach=True, name="web", network="shared")
    peer = client.containers.run("busybox", "sleep 300", detach=True, name="peer", network="shared")
    side = client.containers.run("busybox", "sleep 300", detach=True, name="side",
                                 network_mode="container:web")
    for c in (web, peer, side):
        c.reload()
    assert side.attrs["HostConfig"]["NetworkMode"] == f"container:{web.id}"  # the full id, as Docker's
    assert side.attrs["NetworkSettings"]["Networks"] == {}
    assert side.attrs["Config"]["Hostname"] == web.id[:12]  # web's
    ip = web.attrs["NetworkSettings"]["Networks"]["shared"]["IPAddress"]
    for command in ("ip -o link show", "ls /sys/class/net"):  # the same interfaces, sysfs too
        assert sh(side, command) == sh(web, command) and "eth0" in sh(side, command)[1]
    assert f"inet {ip}/24" in sh(side, "ip -4 addr show eth0")[1]
    assert sh(side, "hostname")[1].strip() == web.id[:12]
    for name in ("hosts", "resolv.conf", "hostname"):  # the other's files, as Docker's
        assert sh(side, f"cat /etc/{name}") == sh(web, f"cat /etc/{name}")
    assert "nameserver 127.0.0.11" in sh(side, "cat /etc/resolv.conf")[1]
    # the embedded DNS answers it through the shared namespace's sockets, with web's view
    code, out = sh(side, "nslookup peer 127.0.0.11")
    assert code == 0 and peer.attrs["NetworkSettings"]["Networks"]["shared"]["IPAddress"] in out, out
    assert sh(peer, "nslookup side 127.0.0.11")[0] != 0  # no name of its own: it has no endpoint
    # a server in side is web's localhost, and reachable at web's address on the network
    side.exec_run(["sh", "-c", "mkdir -p /www && echo shared > /www/index.html && httpd -p 8080 -h /www"])
    assert sh(web, "wget -qO- http://127.0.0.1:8080/index.html") == (0, "shared\n")
    assert sh(peer, "wget -qO- http://web:8080/index.html") == (0, "shared\n")
    # refusals: Docker's statuses and words
    web.stop(timeout=1)
    side.stop(timeout=1)
    stopped = refused(side.start)
    assert stopped.status_code == 409 and "cannot join network of a non running container" in str(stopped)
    assert web.id in str(stopped)
    missing = refused(lambda: client.containers.create("busybox", "true", network_mode="container:nope"))
    assert missing.status_code == 404 and "nope" in str(missing)
    published = refused(lambda: client.containers.create("busybox", "true", network_mode="container:peer",
                                                          ports={"80/tcp": 8080}))
    assert published.status_code == 400 and "conflicting options: port publishing" in str(published)
    named = refused(lambda: client.containers.create("busybox", "true", network_mode="container:peer",
                                                     hostname="other"))
    assert named.status_code == 400 and "conflicting options: hostname" in str(named)
    connect = refused(lambda: client.networks.get("shared").connect(side))
    assert connect.status_code == 403 and "sharing network namespace" in str(connect)


def test_our_cli_runs_a_container_on_anothers_network(daemon):
    assert daemon.cli("network", "create", "--subnet", "10.242.0.0/24", "clinet").returncode == 0
    try:
        ran = daemon.cli("run", "-d", "--name", "base", "--network", "clinet", "busybox", "sleep", "300")
        assert ran.returncode == 0, ran.stderr
        base = ran.stdout.strip()
        joined = daemon.cli("run", "--rm", "--network", "container:base", "busybox", "sh", "-c",
                            "hostname; ip -4 -o addr show eth0 | awk '{print $4}'; nslookup base 127.0.0.11")
        assert joined.returncode == 0, joined.stderr
        lines = joined.stdout.splitlines()
        assert lines[0] == base[:12] and lines[1].startswith("10.242.0.") and "Name:\tbase" in joined.stdout
        assert daemon.cli("stop", "-t", "1", "base").returncode == 0
        late = daemon.cli("run", "--rm", "--network", "container:base", "busybox", "true")
        assert late.returncode != 0 and late.stderr.endswith(
            f"Error response from daemon: cannot join network of a non running container: {base}\n")
    finally:
        daemon.remove_all()  # the containers, then the networks


def test_mac_address_on_a_user_defined_network(client):
    network(client, "macs", "10.243.0.0/24")
    c = client.containers.run("busybox", "sleep 300", detach=True, name="mac1", network="macs",
                              mac_address="02:42:0a:f3:00:99")
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"]["macs"]["MacAddress"] == "02:42:0a:f3:00:99"
    assert c.attrs["NetworkSettings"]["MacAddress"] == "02:42:0a:f3:00:99"
    assert "link/ether 02:42:0a:f3:00:99 " in sh(c, "ip link show eth0")[1]
    listed = client.networks.get("macs").attrs["Containers"][c.id]
    assert listed["MacAddress"] == "02:42:0a:f3:00:99"
    # on connect too, and without one the MAC follows the address (02:42 + its four bytes, as Docker's)
    network(client, "macs2", "10.244.0.0/24")
    client.api.connect_container_to_network(c.id, "macs2", ipv4_address="10.244.0.7")
    assert "link/ether 02:42:0a:f4:00:07 " in sh(c, "ip link show eth1")[1]
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"]["macs2"]["MacAddress"] == "02:42:0a:f4:00:07"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_published_port_on_a_user_defined_bridge(client):
    network(client, "pub", "10.245.0.0/24")
    port = free_port()
    c = client.containers.run("busybox", ["sh", "-c", "mkdir /www && echo from-pub > /www/index.html && "
                                          "exec httpd -f -p 80 -h /www"],
                              detach=True, name="httpd1", network="pub",
                              ports={"80/tcp": ("127.0.0.1", port)})
    assert get(f"http://127.0.0.1:{port}/index.html", time.monotonic() + 20) == "from-pub\n"
    c.reload()
    assert c.attrs["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    other = client.containers.run("busybox", "sleep 300", detach=True, name="other1", network="pub")
    assert sh(other, "wget -qO- http://httpd1/index.html") == (0, "from-pub\n")  # and by name, inside
    c.remove(force=True)
    with pytest.raises(OSError):  # the rule went with the container
        get(f"http://127.0.0.1:{port}/index.html", time.monotonic())


def ours(daemon) -> dict[str, set[str]]:
    """This daemon's chapter-12 leftovers: bridges and veths, nft tables, network records."""
    state = Path(daemon.env["MINIDOCKER_STATE"])
    table = (daemon.env.get("MINIDOCKER_NFT_TABLE") or "minidocker") + "_nets"
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.split("\n")
    records = state / "user-networks"
    return {"links": {n for n in leaks.links() if n.startswith(("br-", "veth"))},
            "tables": {t for t in tables if t.endswith(f" {table}")},
            "records": {p.name for p in records.iterdir() if p.is_dir()} if records.is_dir() else set()}


@pytest.mark.parametrize("prune", [("network", "prune", "-f"), ("system", "prune", "-f")])
def test_prunes_leave_no_bridge_rule_or_record(daemon, prune):
    try:
        _prune(daemon, prune)
    finally:
        daemon.remove_all()


def _prune(daemon, prune) -> None:
    for name, subnet in (("p1", "10.246.0.0/24"), ("p2", "10.247.0.0/24")):
        assert daemon.cli("network", "create", "--subnet", subnet, name).returncode == 0
    ran = daemon.cli("run", "--name", "gone", "--network", "p1", "--network", "p2", "busybox", "true")
    assert ran.returncode == 0, ran.stderr
    made = ours(daemon)
    assert len([n for n in made["links"] if n.startswith("br-")]) == 2 and made["tables"]
    assert len(made["records"]) == 2
    if prune[0] == "network":
        assert daemon.cli("rm", "gone").returncode == 0
    pruned = daemon.cli(*prune, stdin=subprocess.DEVNULL)
    assert pruned.returncode == 0, pruned.stderr
    assert "p1" in pruned.stdout and "p2" in pruned.stdout
    assert ours(daemon) == {"links": set(), "tables": set(), "records": set()}
    assert daemon.cli("ps", "-aq").stdout == ""
