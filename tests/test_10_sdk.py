"""Chapter 10, driven by the Python ``docker`` SDK (docker-py), a client we did not write."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers_10_daemon import daemon_fixture

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


def test_list_all_shows_what_is_not_running(client):
    """``containers.list()`` is ``docker ps``: running ones; ``all=True`` is ``ps -a``: every state."""
    created = client.containers.create("busybox", "true", name="sdk-created")
    running = client.containers.run("busybox", "sleep 60", detach=True, name="sdk-running")
    try:
        assert [c.name for c in client.containers.list()] == ["sdk-running"]
        states = {c.name: c.status for c in client.containers.list(all=True)}
        assert states == {"sdk-created": "created", "sdk-running": "running"}
        created.start()
        assert created.wait()["StatusCode"] == 0
        states = {c.name: c.status for c in client.containers.list(all=True)}
        assert states == {"sdk-created": "exited", "sdk-running": "running"}
        exited = client.containers.list(all=True, filters={"status": "exited"})
        assert [c.name for c in exited] == ["sdk-created"]
    finally:
        for c in (created, running):
            c.remove(force=True)
    assert client.containers.list(all=True) == []


def test_networks(client):
    """The three built-in networks; a container on the bridge is listed with its address."""
    assert [n.name for n in client.networks.list()] == ["bridge", "host", "none"]
    c = client.containers.run("busybox", "sleep 60", detach=True, name="sdk-net")
    try:
        bridge = client.networks.get("bridge")
        assert bridge.attrs["Driver"] == "bridge" and [x.name for x in bridge.containers] == ["sdk-net"]
        c.reload()
        address = c.attrs["NetworkSettings"]["IPAddress"]
        assert bridge.attrs["Containers"][c.id]["IPv4Address"].startswith(f"{address}/")
        assert client.networks.get(bridge.id[:12]).name == "bridge"
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("nope")
    if importlib.util.find_spec("minidocker.networks.plugin") is None:  # chapter 12 plugs in create
        with pytest.raises(docker.errors.APIError) as refused:
            client.networks.create("mine")
        assert refused.value.status_code == 501 and "use bridge, host or none" in str(refused.value)


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


def test_swarm_routes_answer_as_a_lone_dockerd(client):
    """503 "not a swarm manager", as dockerd outside a swarm: clients' clean-up code catches exactly that."""
    for call in (client.api.inspect_swarm, client.api.services, client.api.nodes, client.api.secrets):
        with pytest.raises(docker.errors.APIError) as refused:
            call()
        assert refused.value.status_code == 503, refused.value
        assert "This node is not a swarm manager" in str(refused.value.explanation)
    assert client.api.leave_swarm(force=True) is True  # docker-py ignores "not part of a swarm" (503)
    with pytest.raises(docker.errors.APIError) as refused:
        client.api.init_swarm()
    assert refused.value.status_code == 501


def test_system_df_counts_images_containers_and_volumes(client):
    volume = client.volumes.create("df-data")
    c = client.containers.run("busybox", ["sh", "-c", "head -c 300000 /dev/zero > /big; echo x > /data/f"],
                              volumes={"df-data": {"bind": "/data", "mode": "rw"}}, detach=True)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        df = client.df()
        assert df["LayersSize"] > 1_000_000  # busybox's layer
        busybox = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
        assert busybox["Containers"] >= 1
        mine = next(x for x in df["Containers"] if x["Id"] == c.id)
        assert 300_000 <= mine["SizeRw"] < 400_000
        data = next(v for v in df["Volumes"] if v["Name"] == "df-data")
        assert data["UsageData"] == {"Size": 2, "RefCount": 1}
        assert df["BuildCache"] == []
    finally:
        c.remove(force=True)
        volume.remove()


def test_one_image_is_saved_by_name(client):
    """``GET /images/NAME/get`` (docker-py's ``image.save()``): a tar that ``load`` takes back."""
    import io
    import tarfile

    data = b"".join(client.images.get("busybox").save())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert "index.json" in names or "manifest.json" in names
    with pytest.raises(docker.errors.ImageNotFound):
        b"".join(client.images.get("busybox").client.api.get_image("no-such-image"))


def _read_until_closed(sock, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_detach_keys_end_the_attach_not_the_container(client):
    """The daemon watches a terminal's stdin for the detach keys (default ctrl-p ctrl-q, or detachKeys)."""
    box = client.containers.run("busybox", "sh", tty=True, stdin_open=True, detach=True)
    try:
        for params, keys in (({}, b"\x10\x11"), ({"detachKeys": "ctrl-x,x"}, b"\x18x")):
            sock = client.api.attach_socket(box.id, params={"stdin": 1, "stdout": 1, "stream": 1, **params})
            raw = sock._sock
            raw.sendall(b"echo hel''lo\n")
            raw.settimeout(5)
            seen = b""
            while b"hello\r\n" not in seen:
                seen += raw.recv(4096)
            raw.sendall(keys)
            _read_until_closed(raw)  # the daemon ends the stream: no hang
            sock.close()
            box.reload()
            assert box.status == "running"
        with pytest.raises(docker.errors.APIError, match="Invalid detach keys"):
            client.api.attach_socket(box.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-pp"})
    finally:
        box.remove(force=True)


def test_attach_with_logs_replays_then_streams(client):
    box = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; read x; echo three"],
                                stdin_open=True, detach=True)
    try:
        box.exec_run(["true"])  # running, "one" and "two" logged by now (the exec waits its turn)
        stream = box.attach(logs=True, stream=True)
        first = next(stream) + next(stream)
        assert first == b"one\ntwo\n"
        sock = client.api.attach_socket(box.id, params={"stdin": 1, "stream": 1})
        sock._sock.sendall(b"go\n")
        assert next(stream) == b"three\n"
        sock.close()
        assert box.wait(timeout=10)["StatusCode"] == 0
        assert box.attach(logs=True, stream=False, stderr=False) == b"one\nthree\n"  # exited: the log only
    finally:
        box.remove(force=True)


def test_exec_detach_and_terminal_streams(client, daemon):
    """exec -d answers at once, the exit code comes later; with a terminal the stream is raw, upgraded
    or not (a plain POST gets 200 and the bytes up to the close, as from dockerd)."""
    import socket
    import time

    box = client.containers.run("busybox", "sleep 60", detach=True)
    try:
        exec_id = client.api.exec_create(box.id, ["sh", "-c", "sleep 0.5; exit 4"])["Id"]
        started = time.monotonic()
        client.api.exec_start(exec_id, detach=True)
        assert time.monotonic() - started < 0.5 and client.api.exec_inspect(exec_id)["Running"]
        deadline = time.monotonic() + 10
        while client.api.exec_inspect(exec_id)["ExitCode"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.api.exec_inspect(exec_id)["ExitCode"] == 4
        assert box.exec_run(["echo", "hello"], tty=True).output == b"hello\r\n"
        assert box.exec_run(["echo", "hello"]).output == b"hello\n"
        exec_id = client.api.exec_create(box.id, ["echo", "plain"], tty=True)["Id"]
        with socket.socket(socket.AF_UNIX) as plain:
            plain.connect(daemon.sock)
            body = b'{"Tty": true}'
            plain.sendall(f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            head, _, rest = _read_until_closed(plain).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"raw-stream" in head and b"chunked" not in head
        assert rest == b"plain\r\n"
    finally:
        box.remove(force=True)


def test_logs_until(client):
    import time

    box = client.containers.run("busybox", ["sh", "-c", "echo early; sleep 1.2; echo late"], detach=True)
    try:
        box.wait(timeout=10)
        stamps = box.logs(timestamps=True).decode().split()
        from minidocker.daemon.containers import seconds

        early, late = seconds(stamps[0]), seconds(stamps[2])
        middle = (early + late) / 2
        assert box.logs(until=int(middle)) == b"early\n" or int(middle) < early  # Unix seconds (docker-py)
        rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f"{middle % 1:.6f}"[1:] + "Z"
        raw = client.api._get(client.api._url("/containers/{0}/logs", box.id),
                              params={"stdout": 1, "until": rfc3339})
        assert raw.content[8:] == b"early\n"
        assert box.logs(since=middle) == b"late\n"
    finally:
        box.remove(force=True)
