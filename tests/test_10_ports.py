"""Chapter 10: an image's ``ExposedPorts`` reach the container's config, and ``-P`` publishes them."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from minidocker.daemon.routes import containers as api_containers
from minidocker.images import config as imageconfig
from tests.helpers_10_daemon import daemon_fixture


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def exposed(daemon):
    """``exposed:1``: busybox whose config says ``EXPOSE 8080 53/udp`` (made by ``POST /commit``)."""
    cid = daemon.client.json("POST", "/containers/create", None, {"Image": "busybox", "Cmd": ["true"]})["Id"]
    daemon.client.request("POST", f"/containers/{cid}/start").read()
    daemon.client.json("POST", f"/containers/{cid}/wait")
    query = {"container": cid, "repo": "exposed", "tag": "1"}
    daemon.client.json("POST", "/commit", query, {"ExposedPorts": {"8080/tcp": {}, "53/udp": {}}})
    daemon.client.request("DELETE", f"/containers/{cid}").read()
    yield "exposed:1"
    daemon.cli("rmi", "exposed:1")


def fetch(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_merge_api_config_like_dockerd():
    image = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=image"], "ExposedPorts": {"80/tcp": {}},
             "Labels": {"from": "image"}, "User": "app", "WorkingDir": "/srv"}
    cfg = imageconfig.merge_api_config(image, {"Env": ["A=user"], "ExposedPorts": {"443/tcp": {}},
                                               "Labels": {"mine": "1"}, "Cmd": None, "Entrypoint": None})
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}} and cfg["Env"] == ["PATH=/bin", "A=user"]
    assert (cfg["Cmd"], cfg["User"], cfg["WorkingDir"]) == (["sh"], "app", "/srv")
    assert cfg["Labels"] == {"from": "image", "mine": "1"}
    assert imageconfig.merge_api_config(image, {"Entrypoint": ["/x"]}).get("Cmd") is None  # drops the image's
    assert api_containers.merge_config({}, {"Image": "i"}).get("ExposedPorts") is None  # omitted, as Go does


def test_image_exposed_ports_in_inspect_and_publish_all(daemon, exposed):
    plain = daemon.cli("create", "--name", "plain", "--expose", "9000", exposed, "true")
    assert plain.returncode == 0, plain.stderr
    try:
        config = json.loads(daemon.cli("inspect", "plain").stdout)[0]["Config"]
        assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp", "9000/tcp"}
    finally:
        daemon.cli("rm", "plain")
    run = daemon.cli("run", "-d", "-P", "-p", "127.0.0.1::53/udp", "--name", "web", exposed,
                     "httpd", "-f", "-p", "8080", "-h", "/etc")
    assert run.returncode == 0, run.stderr
    try:
        info = json.loads(daemon.cli("inspect", "web").stdout)[0]
        assert info["HostConfig"]["PublishAllPorts"] is True
        ports = info["NetworkSettings"]["Ports"]
        assert set(ports) == {"8080/tcp", "53/udp"} and info["NetworkSettings"]["IPAddress"]
        (web,) = ports["8080/tcp"]
        assert web["HostIp"] == "0.0.0.0" and int(web["HostPort"]) > 0
        assert ports["53/udp"][0]["HostIp"] == "127.0.0.1"  # its -p binding wins over -P's
        assert daemon.cli("port", "web", "8080").stdout == f"0.0.0.0:{web['HostPort']}\n"
        assert f"8080/tcp -> 0.0.0.0:{web['HostPort']}\n" in daemon.cli("port", "web").stdout
        assert daemon.cli("port", "web", "9999").returncode == 1
        assert f"0.0.0.0:{web['HostPort']}->8080/tcp" in daemon.cli("ps").stdout
        hostname = daemon.cli("exec", "web", "hostname").stdout
        assert fetch(f"http://127.0.0.1:{web['HostPort']}/hostname") == hostname
    finally:
        daemon.cli("rm", "-f", "web")


def test_publish_all_with_the_docker_cli(daemon, tmp_path):
    """The real ``docker`` CLI: ``--expose`` and ``-P`` in the request, ``docker port`` from inspect."""
    docker = shutil.which("docker", path="/usr/local/bin:/usr/bin")
    if docker is None:
        pytest.skip("no docker CLI here: apt-get install docker.io")
    env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([docker, *args], capture_output=True, text=True, env=env, timeout=60)

    started = run("run", "-d", "-P", "--expose", "7000", "--name", "pub", "busybox",
                  "httpd", "-f", "-p", "7000")
    assert started.returncode == 0, started.stderr
    try:
        published = run("port", "pub", "7000").stdout.split()
        assert published and published[0].startswith("0.0.0.0:") and int(published[0].split(":")[1]) > 0
    finally:
        run("rm", "-f", "pub")
