"""Chapter 12: user-defined networks through the API, driven by docker-py (a client we did not write)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.helpers_10_daemon import daemon_fixture, running_daemon

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
    for n in sdk.networks.list():
        if n.name not in ("bridge", "host", "none"):
            n.remove()
    sdk.close()


def nft_table(daemon) -> str:
    return (daemon.env.get("MINIDOCKER_NFT_TABLE") or "minidocker") + "_nets"


def bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def sh(container, command: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", command])
    return code, out.decode()


def test_create_ls_inspect_rm_prune(client, daemon):
    net = client.networks.create("front", labels={"tier": "web"}, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.231.0.0/24", gateway="10.231.0.254",
                                            iprange="10.231.0.128/25")]))
    attrs = client.networks.get("front").attrs
    assert attrs["Id"] == net.id and attrs["Driver"] == "bridge" and attrs["Labels"] == {"tier": "web"}
    assert attrs["IPAM"]["Config"] == [{"Subnet": "10.231.0.0/24", "Gateway": "10.231.0.254",
                                        "IPRange": "10.231.0.128/25"}]
    assert attrs["Options"] == {}  # as Docker's: only options given (Compose v1 compares them)
    bridge = f"br-{net.id[:12]}"
    assert bridge_exists(bridge)
    auto = client.networks.create("back", internal=True)
    subnet = auto.attrs["IPAM"]["Config"][0]["Subnet"] if auto.attrs["IPAM"]["Config"] else \
        client.networks.get("back").attrs["IPAM"]["Config"][0]["Subnet"]
    assert subnet.endswith("/16") or subnet.endswith("/20")
    assert client.networks.get("back").attrs["Internal"] is True
    names = [n.name for n in client.networks.list()]
    assert names[:3] == ["bridge", "host", "none"] and {"front", "back"} <= set(names)
    assert [n.name for n in client.networks.list(filters={"label": "tier=web"})] == ["front"]
    assert [n.name for n in client.networks.list(filters={"type": "custom"})] == ["front", "back"]
    c = client.containers.run("busybox", "sleep 60", detach=True, name="web1", network="front")
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert ip.startswith("10.231.0.") and int(ip.rsplit(".", 1)[1]) >= 128
    assert list(client.networks.get("front").attrs["Containers"]) == [c.id]
    with pytest.raises(docker.errors.APIError) as busy:
        net.remove()
    assert busy.value.status_code == 409 and "has active endpoints" in str(busy.value)
    c.remove(force=True)
    assert client.networks.prune() == {"NetworksDeleted": ["front", "back"]}
    assert not bridge_exists(bridge)
    assert subprocess.run(["nft", "list", "table", "ip", nft_table(daemon)], capture_output=True).returncode


def test_bad_input_is_one_clear_line(client):
    client.networks.create("one", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.232.0.0/16")]))
    cases = [
        (lambda: client.networks.create("two", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.232.1.0/24")])), 403, "Pool overlaps"),
        (lambda: client.networks.create("three", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.233.0.0/24", gateway="10.9.9.9")])), 400,
         "Invalid gateway"),
        (lambda: client.networks.create("one"), 409, "already exists"),
        (lambda: client.networks.create("bad name"), 400, "invalid network name"),
        (lambda: client.networks.get("nope"), 404, "network nope not found"),
        (lambda: client.containers.run("busybox", "true", network="nope"), 404, "network nope not found"),
    ]
    for call, status, text in cases:
        with pytest.raises(docker.errors.APIError) as refused:
            call()
        assert refused.value.status_code == status and text in str(refused.value), refused.value
        assert "\n" not in refused.value.explanation
    c = client.containers.run("busybox", "sleep 60", detach=True, name="holder", network="one")
    for aliases, status, text in ((["-bad-"], 400, "not a valid DNS name"), (["holder"], 409, "collides")):
        other = client.containers.create("busybox", "sleep 60", name=f"x{status}")
        with pytest.raises(docker.errors.APIError) as refused:
            client.networks.get("one").connect(other, aliases=aliases)
        assert refused.value.status_code == status and text in str(refused.value)
    c.remove(force=True)


def test_connect_disconnect_live_and_isolation(client):
    a = client.networks.create("neta", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.234.0.0/24")]))
    b = client.networks.create("netb", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.235.0.0/24")]))
    c1 = client.containers.run("busybox", "sleep 300", detach=True, name="c1", network="neta")
    c2 = client.containers.run("busybox", "sleep 300", detach=True, name="c2", network="neta")
    c3 = client.containers.run("busybox", "sleep 300", detach=True, name="c3", network="netb")
    for c in (c1, c2, c3):
        c.reload()
    ip2 = c2.attrs["NetworkSettings"]["Networks"]["neta"]["IPAddress"]
    ip3 = c3.attrs["NetworkSettings"]["Networks"]["netb"]["IPAddress"]
    assert sh(c1, f"ping -c1 -W2 {ip2}")[0] == 0  # within a network
    assert sh(c1, f"ping -c1 -W2 {ip3}")[0] != 0  # across networks: dropped
    assert "nameserver 127.0.0.11" in sh(c1, "cat /etc/resolv.conf")[1]
    b.connect(c1, ipv4_address="10.235.0.77", aliases=["both"])
    code, out = sh(c1, "ip -4 addr show eth1")
    assert code == 0 and "10.235.0.77/24" in out
    assert sh(c1, f"ping -c1 -W2 {ip3}")[0] == 0  # now on netb too
    c1.reload()
    assert c1.attrs["NetworkSettings"]["Networks"]["netb"]["IPAddress"] == "10.235.0.77"
    b.disconnect(c1)
    assert sh(c1, "ip link show eth1")[0] != 0
    assert sh(c1, f"ping -c1 -W2 {ip3}")[0] != 0
    for c in (c1, c2, c3):
        c.remove(force=True)
    a.remove()
    b.remove()


def test_a_created_container_disconnected_from_its_network_connects_again(client):
    """Compose v1 does this at every create: disconnect from the --network, connect with aliases."""
    net = client.networks.create("again", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.239.0.0/24")]))
    c = client.containers.create("busybox", "sleep 60", name="again1", network="again")
    net.disconnect(c)
    c.reload()
    assert c.attrs["HostConfig"]["NetworkMode"] == "again"  # as Docker's: not 'none'
    net.connect(c, aliases=["svc", c.id[:12]])
    c.start()
    c.reload()
    endpoint = c.attrs["NetworkSettings"]["Networks"]["again"]
    assert endpoint["IPAddress"].startswith("10.239.0.") and "svc" in endpoint["Aliases"]
    assert sh(c, "ip -4 addr show eth0")[1].count("10.239.0.") == 1 and sh(c, "ip link show eth1")[0] != 0
    alone = client.containers.create("busybox", "sleep 60", name="alone", network="again")
    net.disconnect(alone)
    alone.start()  # on no network at all: loopback only, as Docker's
    assert sh(alone, "ip link show eth0")[0] != 0
    c.remove(force=True)
    alone.remove(force=True)
    net.remove()


def test_internal_network_has_no_way_out(client, daemon):
    client.networks.create("inside", internal=True, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.236.0.0/24")]))
    route = subprocess.run(["ip", "-4", "-json", "route", "get", "1.1.1.1"], capture_output=True, text=True)
    uplink = json.loads(route.stdout)[0].get("prefsrc") if route.returncode == 0 else None
    c = client.containers.run("busybox", "sleep 60", detach=True, name="shut", network="inside")
    assert sh(c, "ip route")[1].count("default") == 0
    assert sh(c, "ping -c1 -W2 10.236.0.1")[0] == 0  # its gateway answers
    if uplink:
        assert sh(c, f"ping -c1 -W2 {uplink}")[0] != 0
    rules = subprocess.run(["nft", "list", "table", "ip", nft_table(daemon)], capture_output=True,
                           text=True).stdout
    assert "internal, no way out" in rules and "10.236.0.0/24 oifname" not in rules  # no masquerade
    c.remove(force=True)


def test_names_resolve_within_a_network_only(client):
    client.networks.create("dnsa", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.237.0.0/24")]))
    client.networks.create("dnsb", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.238.0.0/24")]))
    one = client.containers.run("busybox", "sleep 300", detach=True, name="one", network="dnsa")
    client.containers.run("busybox", "sleep 300", detach=True, name="two", network="dnsa",
                          networking_config={"dnsa": client.api.create_endpoint_config(aliases=["svc"])})
    client.containers.run("busybox", "sleep 300", detach=True, name="three", network="dnsb")
    assert sh(one, "nslookup two 127.0.0.11")[0] == 0
    assert sh(one, "ping -c1 -W2 two")[0] == 0
    assert sh(one, "nslookup svc 127.0.0.11")[0] == 0
    assert sh(one, "nslookup three 127.0.0.11")[0] != 0  # another network's
    client.networks.get("dnsb").connect(one)
    assert sh(one, "nslookup three 127.0.0.11")[0] == 0  # at once
    client.networks.get("dnsb").disconnect(one)
    assert sh(one, "nslookup three 127.0.0.11")[0] != 0


def test_restart_after_kill_9(daemon, tmp_path):
    """kill -9 with containers on two networks; after the restart: networks, rules, names, isolation."""
    env = {"MINIDOCKER_STATE": str(tmp_path / "state"), "MINIDOCKER_RUN": str(tmp_path / "run"),
           "MINIDOCKER_NFT_TABLE": f"{daemon.env.get('MINIDOCKER_NFT_TABLE') or 'minidocker'}_k9"}
    with running_daemon(tmp_path, daemon.registry.url, env=env) as own:
        for _ in own.client.stream_json("POST", "/images/create", {"fromImage": "busybox", "tag": "latest"}):
            pass
        sdk = docker.DockerClient(base_url=own.host, timeout=60)
        try:
            _kill_and_restore(own, sdk)
        finally:
            sdk = docker.DockerClient(base_url=own.host, timeout=60)
            for c in sdk.containers.list(all=True):
                c.remove(force=True)
            sdk.networks.prune()
            sdk.close()
        table = nft_table(own)
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0


def _kill_and_restore(own, sdk) -> None:
    sdk.networks.create("r1", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.239.0.0/24")]))
    sdk.networks.create("r2", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.240.0.0/24")]))
    sdk.containers.run("busybox", "sleep 300", detach=True, name="rx", network="r1")
    sdk.containers.run("busybox", "sleep 300", detach=True, name="ry", network="r1")
    z = sdk.containers.run("busybox", "sleep 300", detach=True, name="rz", network="r2")
    z.reload()
    ipz = z.attrs["NetworkSettings"]["Networks"]["r2"]["IPAddress"]
    own.stop(signal.SIGKILL)
    subprocess.run(["nft", "delete", "table", "ip", nft_table(own)], capture_output=True)  # rules gone too
    own.start()
    sdk = docker.DockerClient(base_url=own.host, timeout=60)
    assert {"r1", "r2"} <= {n.name for n in sdk.networks.list()}
    rules = subprocess.run(["nft", "list", "table", "ip", nft_table(own)], capture_output=True, text=True)
    assert rules.returncode == 0 and "r1: isolation" in rules.stdout
    x = sdk.containers.get("rx")
    assert sh(x, "ping -c1 -W2 ry")[0] == 0  # names resolve again
    assert sh(x, f"ping -c1 -W2 {ipz}")[0] != 0  # isolation is back
    sdk.close()
