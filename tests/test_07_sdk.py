"""Chapter 07, driven by the Python ``docker`` SDK (docker-py), a client we did not write."""

from __future__ import annotations

import pytest

from tests.helpers_07_daemon import daemon_fixture

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def client(daemon):
    sdk = docker.DockerClient(base_url=daemon.host, timeout=60)
    yield sdk
    sdk.close()


def test_version_info_ping(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"
    assert client.info()["Driver"] == "overlay2"


def test_pull_and_images(client):
    image = client.images.pull("busybox", tag="latest")
    assert "busybox:latest" in image.tags
    assert any("busybox:latest" in i.tags for i in client.images.list())


def test_containers_run_returns_output(client):
    assert client.containers.run("busybox", "echo hi") == b"hi\n"
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", "sh -c 'exit 3'", remove=True)
    assert failed.value.exit_status == 3
    for c in client.containers.list(all=True):
        c.remove(force=True)


def test_detached_logs_stop_remove(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo started; sleep 60"], detach=True, name="sdk")
    try:
        assert [x.name for x in client.containers.list()] == ["sdk"]
        for line in c.logs(stream=True, follow=True):
            assert line == b"started\n"
            break
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("sdk")


def test_exec_run(client):
    c = client.containers.run("busybox", "sleep 60", detach=True)
    try:
        result = c.exec_run(["sh", "-c", "echo in; exit 4"])
        assert (result.exit_code, result.output) == (4, b"in\n")
    finally:
        c.remove(force=True)


def test_errors_are_typed(client):
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nope-nope")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nope:none")
    c = client.containers.create("busybox", "true", name="taken")
    try:
        with pytest.raises(docker.errors.APIError) as conflict:
            client.containers.create("busybox", "true", name="taken")
        assert conflict.value.status_code == 409
    finally:
        c.remove()


def test_rmi(client):
    client.images.get("busybox").tag("sdk-tag", "1")
    client.images.remove("sdk-tag:1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("sdk-tag:1")
