"""Chapter 12, driven by clients we did not write: the real ``docker`` CLI and docker-py make networks,
connect and disconnect containers and resolve their names against minidockerd, and the same
scenario runs in the same test against Debian's dockerd 20.10 where it can run here (its embedded
DNS is the reference: the answers must agree)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minidocker import rootfs
from tests.helpers_09_registry import Dockerd

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="no docker CLI here: apt-get install docker.io")

Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    pytest.importorskip("minidocker.networks.routes",
                        reason="chapter 12's daemon side (minidocker/networks/) is not in the tree yet")
    from tests.helpers_10_daemon import daemon_fixture

    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """dockerd's base: its containerd socket path must fit in a UNIX socket's 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="md12-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def docker_cli(host: str, env: dict[str, str]) -> Run:
    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, "-H", host, *args], capture_output=True, text=True, env=env,
                              timeout=timeout)
    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def resolves(docker: Run, container: str, name: str) -> set[str]:
    """The addresses ``nslookup NAME`` finds inside ``container`` (empty: NXDOMAIN or no answer)."""
    result = docker("exec", container, "nslookup", name, timeout=30)
    if result.returncode != 0:
        return set()
    answer = result.stdout.partition("Name:")[2]
    return set(re.findall(r"Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)", answer))


def scenario(docker: Run, prefix: str, subnets: tuple[str, str]) -> dict[str, object]:
    """Two networks, three containers; what resolves where, before and after connect/disconnect.

    Returns what was seen, so two engines can be compared; asserts what must hold on any engine.
    """
    front, back = f"{prefix}front", f"{prefix}back"
    a, b, c = f"{prefix}a", f"{prefix}b", f"{prefix}c"
    seen: dict[str, object] = {}
    try:
        for name, subnet in ((front, subnets[0]), (back, subnets[1])):
            nid = ok(docker("network", "create", "--subnet", subnet, "--label", "chapter=12", name)).strip()
            assert re.fullmatch(r"[0-9a-f]{64}", nid), nid
        listed = ok(docker("network", "ls", "--filter", "label=chapter=12", "--format",
                           "{{.Name}} {{.Driver}}"))
        assert sorted(listed.split("\n")[:-1]) == [f"{back} bridge", f"{front} bridge"]
        ok(docker("run", "-d", "--name", a, "--network", front, "busybox", "sleep", "300"))
        ok(docker("run", "-d", "--name", b, "--network", front, "--network-alias", f"{prefix}svc",
                  "busybox", "sleep", "300"))
        ok(docker("run", "-d", "--name", c, "--network", back, "--network-alias", f"{prefix}svc",
                  "busybox", "sleep", "300"))
        seen["resolv.conf"] = ok(docker("exec", a, "grep", "^nameserver", "/etc/resolv.conf"))
        assert seen["resolv.conf"] == "nameserver 127.0.0.11\n"
        seen["a->b"] = resolves(docker, a, b)
        assert seen["a->b"] and all(ip.startswith(subnets[0].rsplit(".", 2)[0]) for ip in seen["a->b"])
        seen["a->c"] = resolves(docker, a, c)
        assert seen["a->c"] == set()
        assert ok(docker("exec", a, "ping", "-c", "1", "-W", "2", b)).count("1 packets received") == 1
        seen["a->svc"] = len(resolves(docker, a, f"{prefix}svc"))
        ok(docker("network", "connect", "--alias", f"{prefix}svc", front, c))
        seen["a->c connected"] = bool(resolves(docker, a, c))
        seen["a->svc connected"] = len(resolves(docker, a, f"{prefix}svc"))
        assert seen["a->c connected"] and seen["a->svc connected"] == 2
        inspected = json.loads(ok(docker("network", "inspect", front)))[0]
        seen["members"] = sorted(m["Name"] for m in inspected["Containers"].values())
        assert seen["members"] == [a, b, c]
        ok(docker("network", "disconnect", front, c))
        seen["a->c disconnected"] = resolves(docker, a, c)
        assert seen["a->c disconnected"] == set()
        refused = docker("network", "rm", front)
        seen["rm in use"] = refused.returncode
        assert refused.returncode == 1 and refused.stderr.startswith("Error response from daemon: ")
    finally:
        docker("rm", "-f", a, b, c)
        docker("network", "rm", front, back)
    assert docker("network", "ls", "-q", "--filter", "label=chapter=12").stdout == ""
    return seen


def test_the_docker_cli_makes_networks_and_resolves_names_as_against_dockerd(daemon, tmp_path, short_dir):
    env = {**daemon.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    ours = scenario(docker_cli(daemon.host, env), "m12", ("10.212.11.0/24", "10.212.12.0/24"))
    dockerd = Dockerd(short_dir)
    reason = dockerd.unavailable()
    if reason:
        print(f"dockerd side skipped: {reason}")
        return
    with dockerd:
        dockerd.docker("import", "--change", 'CMD ["sh"]', str(rootfs.busybox_tar()), "busybox:latest")
        theirs = scenario(docker_cli(f"unix://{dockerd.socket}", dockerd.env), "d12",
                          ("10.212.21.0/24", "10.212.22.0/24"))
    print(f"minidockerd: {ours}\ndockerd:     {theirs}")
    same = ("resolv.conf", "a->svc", "a->c connected", "a->svc connected", "rm in use")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    assert ours["a->c"] == theirs["a->c"] == set()
    assert ours["a->c disconnected"] == theirs["a->c disconnected"] == set()


def test_docker_py_drives_networks(daemon):
    docker = pytest.importorskip("docker")
    sdk = docker.DockerClient(base_url=daemon.host, timeout=60)
    net = sdk.networks.create("py12", driver="bridge", internal=True, labels={"by": "docker-py"},
                              ipam=docker.types.IPAMConfig(pool_configs=[
                                  docker.types.IPAMPool(subnet="10.212.31.0/24", gateway="10.212.31.254")]))
    container = None
    try:
        net.reload()
        assert net.attrs["Internal"] is True and net.attrs["Labels"] == {"by": "docker-py"}
        assert net.attrs["IPAM"]["Config"][0]["Gateway"] == "10.212.31.254"
        assert [n.name for n in sdk.networks.list(names=["py12"])] == ["py12"]
        container = sdk.containers.run("busybox", ["sleep", "120"], detach=True, name="py12box")
        net.connect(container, ipv4_address="10.212.31.7", aliases=["db12"])
        container.reload()
        endpoint = container.attrs["NetworkSettings"]["Networks"]["py12"]
        assert endpoint["IPAddress"] == "10.212.31.7" and "db12" in (endpoint.get("Aliases") or [])
        with pytest.raises(docker.errors.APIError) as refused:
            net.remove()
        assert refused.value.status_code == 409
        net.disconnect(container)
        container.reload()
        assert "py12" not in container.attrs["NetworkSettings"]["Networks"]
    finally:
        if container is not None:
            container.remove(force=True)
        net.remove()
    assert sdk.networks.list(names=["py12"]) == []
    assert sdk.networks.prune()["NetworksDeleted"] in (None, [])
