"""Chapter 10: the built-in networks through the API and the real docker CLI; the host network's
hostname; the daemon helper's leak check. (Our CLI's network commands and groups: ``test_11_networks.py``.)"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minidocker.client.client import APIError
from tests.helpers_10_daemon import daemon_fixture, kill_monitors

# Chapter 12 plugs user-defined networks into the daemon: then create is no longer a 501.
PLUGGED = importlib.util.find_spec("minidocker.networks.plugin") is not None

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def box(daemon):
    """A running container on the bridge: its id and what ``inspect`` says of its address."""
    started = daemon.cli("run", "-d", "--name", "netbox", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    yield cid, daemon.client.json("GET", f"/containers/{cid}/json")["NetworkSettings"]
    daemon.cli("rm", "-f", cid)


@pytest.fixture
def docker(daemon, tmp_path):
    if DOCKER is None:
        pytest.skip("no docker CLI here: apt-get install docker.io")
    env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    return lambda *args: subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=60)


def test_api_lists_and_inspects_the_built_in_networks(daemon, box):
    cid, settings = box
    listed = daemon.client.json("GET", "/networks")
    assert [(n["Name"], n["Driver"], n["Scope"]) for n in listed] == [
        ("bridge", "bridge", "local"), ("host", "host", "local"), ("none", "null", "local")]
    assert all(re.fullmatch(r"[0-9a-f]{64}", n["Id"]) and n["Containers"] == {} for n in listed)
    bridge = daemon.client.json("GET", "/networks/bridge")
    assert bridge["IPAM"]["Config"] == [{"Subnet": os.environ["MINIDOCKER_SUBNET"],
                                         "Gateway": settings["Gateway"]}]
    assert bridge["Options"]["com.docker.network.bridge.name"] == os.environ["MINIDOCKER_BRIDGE"]
    endpoint = bridge["Containers"][cid]
    assert endpoint["Name"] == "netbox" and re.fullmatch(r"[0-9a-f]{64}", endpoint["EndpointID"])
    assert endpoint["IPv4Address"] == f"{settings['IPAddress']}/{settings['IPPrefixLen']}"
    assert endpoint["MacAddress"] == settings["MacAddress"]
    # By id, by a prefix of it; the others have no address to give
    assert daemon.client.json("GET", f"/networks/{bridge['Id']}")["Name"] == "bridge"
    assert daemon.client.json("GET", f"/networks/{bridge['Id'][:6]}")["Name"] == "bridge"
    assert daemon.client.json("GET", "/networks/host")["IPAM"]["Config"] == []
    assert daemon.client.json("GET", "/networks/none")["Containers"] == {}
    filtered = daemon.client.json("GET", "/networks", {"filters": json.dumps({"driver": ["null"]})})
    assert [n["Name"] for n in filtered] == ["none"]
    for method, path, query, status, message in (
            ("GET", "/networks/nope", None, 404, "network nope not found"),
            ("POST", "/networks/create", None, 501,
             "user-defined networks are not supported: use bridge, host or none"),
            ("DELETE", "/networks/host", None, 403, "host is a pre-defined network and cannot be removed"),
            ("GET", "/networks", {"filters": '{"color": ["red"]}'}, 400, "invalid filter 'color'")):
        if PLUGGED and path == "/networks/create":
            continue
        with pytest.raises(APIError) as refused:
            daemon.client.json(method, path, query, {"Name": "mine"} if method == "POST" else None)
        assert (refused.value.status, str(refused.value)) == (status, message)


def test_a_host_network_container_is_listed_on_host_and_has_the_hosts_hostname(daemon):
    ran = daemon.cli("run", "--rm", "--network", "host", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    assert (ran.returncode, ran.stdout) == (0, f"{os.uname().nodename}\n" * 2), ran.stderr
    named = daemon.cli("run", "--rm", "--network", "host", "-h", "given", "busybox", "hostname")
    assert named.stdout == "given\n", named.stderr
    cid = daemon.cli("run", "-d", "--network", "host", "busybox", "sleep", "60").stdout.strip()
    try:
        config = daemon.client.json("GET", f"/containers/{cid}/json")["Config"]
        assert config["Hostname"] == os.uname().nodename
        on_host = daemon.client.json("GET", "/networks/host")["Containers"]
        assert list(on_host) == [cid] and on_host[cid]["IPv4Address"] == ""
        assert cid not in daemon.client.json("GET", "/networks/bridge")["Containers"]
    finally:
        daemon.cli("rm", "-f", cid)


def test_the_docker_cli_lists_and_inspects_our_networks(daemon, docker, box):
    cid, settings = box
    listed = docker("network", "ls")
    assert listed.returncode == 0, listed.stderr
    ours = daemon.cli("network", "ls").stdout  # the same table (docker pads short columns to 10)
    assert [row.split() for row in listed.stdout.splitlines()] == [row.split() for row in ours.splitlines()]
    assert [line.split()[1:] for line in listed.stdout.splitlines()[1:]] == [
        ["bridge", "bridge", "local"], ["host", "host", "local"], ["none", "null", "local"]]
    formatted = docker("network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}} {{.Driver}}")
    assert formatted.stdout == "bridge bridge\n", formatted.stderr
    inspected = docker("network", "inspect", "bridge")
    assert inspected.returncode == 0, inspected.stderr
    bridge = json.loads(inspected.stdout)[0]
    assert bridge["IPAM"]["Config"][0]["Subnet"] == os.environ["MINIDOCKER_SUBNET"]
    assert bridge["Containers"][cid]["IPv4Address"].startswith(settings["IPAddress"] + "/")
    address = docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge")
    assert address.stdout == f"{settings['Gateway']}\n"
    assert docker("container", "inspect", "-f", "{{.HostConfig.NetworkMode}}", cid).stdout == "default\n"
    if not PLUGGED:
        created = docker("network", "create", "mine")
        assert created.returncode == 1
        assert "user-defined networks are not supported: use bridge, host or none" in created.stderr
    removed = docker("network", "rm", "none")
    assert removed.returncode == 1 and "none is a pre-defined network and cannot be removed" in removed.stderr


def test_the_daemon_helper_reports_monitors_it_had_to_kill(tmp_path):
    state = tmp_path / "state"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    fake = subprocess.Popen([*sleep, "minidocker.daemon.forkserver"],
                            env={**os.environ, "MINIDOCKER_STATE": str(state)})
    other = subprocess.Popen([*sleep, "minidocker.daemon.monitor"],
                             env={**os.environ, "MINIDOCKER_STATE": f"{state}2"})  # another state: not ours
    try:
        killed = kill_monitors(Path(state), grace=0.2)
        assert [entry.split()[0] for entry in killed] == [str(fake.pid)]
        assert "minidocker.daemon.forkserver" in killed[0]
        assert fake.wait(timeout=10) == -9 and other.poll() is None
        assert kill_monitors(Path(state)) == []
    finally:
        for process in (fake, other):
            process.kill()
            process.wait()
