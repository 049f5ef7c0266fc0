"""Chapter 10: the daemon itself: raw API, restarts and crashes, concurrency, hostile input, TLS."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minidocker.client.client import APIError, Client, DaemonUnreachable
from tests.helpers_10_daemon import daemon_fixture, running_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def raw(daemon, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes as they are; return whatever comes back until the daemon closes or goes quiet."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(daemon.sock)
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return data


def test_ping_version_headers_and_both_path_forms(daemon):
    for path in ("/_ping", "/v1.50/_ping", "/v1.41/_ping"):
        answer = raw(daemon, f"GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nOK"), answer
        assert b"Api-Version: 1.50" in answer and b"Ostype: linux" in answer
    head = raw(daemon, b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    too_new = raw(daemon, b"GET /v9.99/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert b"400 Bad Request" in too_new and b"Content-Type: application/json\r\n" in too_new
    message = json.loads(too_new.split(b"\r\n\r\n", 1)[1])["message"]
    assert message.startswith("client version 9.99 is too new")


def test_errors_as_clients_expect(daemon):
    c = daemon.client
    with pytest.raises(APIError) as e:
        c.json("GET", "/containers/nope/json")
    assert e.value.status == 404 and str(e.value) == "No such container: nope"
    with pytest.raises(APIError) as e:
        c.json("POST", "/containers/create", None, {"Image": "not-here:1"})
    assert e.value.status == 404 and "No such image" in str(e.value)
    with pytest.raises(APIError) as e:
        c.json("POST", "/containers/create", None, {"Image": "busybox", "Cmd": "not a list"})
    assert e.value.status == 400
    with pytest.raises(APIError) as e:
        c.json("POST", "/containers/create", {"name": "bad name!"}, {"Image": "busybox"})
    assert e.value.status == 400


def test_wait_conditions(daemon):
    c = daemon.client
    body = {"Image": "busybox", "Cmd": ["sh", "-c", "exit 6"]}
    cid = c.json("POST", "/containers/create", None, body)["Id"]
    # next-exit on a created container: the headers come now, the body at the exit.
    response = c.request("POST", f"/containers/{cid}/wait", {"condition": "next-exit"})
    assert response.status == 200
    c.request("POST", f"/containers/{cid}/start").read()
    assert json.loads(response.read()) == {"StatusCode": 6, "Error": None}
    assert c.json("POST", f"/containers/{cid}/wait", {"condition": "not-running"})["StatusCode"] == 6
    removed = c.request("POST", f"/containers/{cid}/wait", {"condition": "removed"})
    c.request("DELETE", f"/containers/{cid}").read()
    assert json.loads(removed.read())["StatusCode"] == 6


def test_logs_are_capped_and_rotated(daemon):
    c = daemon.client
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"
    log_config = {"Type": "json-file", "Config": {"max-size": "20k", "max-file": "2"}}
    body = {"Image": "busybox", "Cmd": ["sh", "-c", script], "HostConfig": {"LogConfig": log_config}}
    cid = c.json("POST", "/containers/create", None, body)["Id"]
    try:
        c.request("POST", f"/containers/{cid}/start").read()
        c.json("POST", f"/containers/{cid}/wait")
        log = Path(c.json("GET", f"/containers/{cid}/json")["LogPath"])
        sizes = [p.stat().st_size for p in log.parent.glob("json.log*")]
        assert len(sizes) == 2 and all(s < 40_000 for s in sizes), sizes
        tail = daemon.cli("logs", "-n", "2", cid).stdout
        assert tail == "line-2998\nline-2999\n"
        whole = daemon.cli("logs", cid).stdout.split()  # the rotated file first, then the current one
        first = int(whole[0][5:])
        assert first > 0 and whole == [f"line-{i}" for i in range(first, 3000)]
        assert b"400 Bad Request" in raw(daemon, f"GET /containers/{cid}/logs?stdout=1&since=abc HTTP/1.1\r\n"
                                              "Host: d\r\nConnection: close\r\n\r\n".encode(), timeout=2)[:40]
    finally:
        c.request("DELETE", f"/containers/{cid}").read()


def test_concurrent_runs_all_succeed(daemon):
    def one(n: int) -> tuple[int, str]:
        result = daemon.cli("run", "--rm", "busybox", "echo", f"hello {n}", timeout=120)
        return result.returncode, result.stdout + result.stderr

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert results == [(0, f"hello {n}\n") for n in range(20)]
    assert daemon.cli("ps", "-aq").stdout == ""


CREATE = b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
UPGRADE = b"Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
HOSTILE = [
    CREATE + b"Content-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json",
    CREATE + b"Content-Length: 2\r\n\r\n[]",
    CREATE + b'Content-Length: 40\r\n\r\n{"Image": "busybox", "Cmd": [1, {"x": 2}]}',
    CREATE + b'Content-Length: 44\r\n\r\n{"Image": "busybox", "HostConfig": "string"}',
    CREATE + b"Content-Length: 100000\r\n\r\n{\"Image\": ",  # cut midway
    b"GARBAGE\r\n\r\n",
    b"\x00\xff\x16\x03\x01 binary\r\n\r\n",
    b"GET /containers/" + b"A" * 10000 + b"/json HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /containers/nope/attach?stream=1 HTTP/1.1\r\n" + UPGRADE,
    b"POST /exec/nope/start HTTP/1.1\r\n" + UPGRADE,
    b"GET /containers/json?filters=%7Bbad HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /containers/x/kill?signal=SIGNOPE HTTP/1.1\r\nHost: d\r\n\r\n",
    b"DELETE /images/../../etc/passwd HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /images/create?fromImage=%00%01 HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Length: 21\r\n\r\n{\"Name\": \"../escape\"}",
    b"GET /logs HTTP/1.1\r\nHost: d\r\nContent-Length: -5\r\n\r\n",
    CREATE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /_ping HTTP/1.1\r\n" + b"X-Long: " + b"x" * 100000 + b"\r\n\r\n",
    b"POST /v1.50/containers/create?name=/ HTTP/1.1\r\nHost: d\r\nContent-Length: 20\r\n\r\n"
    b'{"Image": "busybox"}',
    b"PUT /containers/json HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /images/busybox/tag?repo=UPPER&tag=1 HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Length: 13\r\n\r\n{\"Name\": 123}",
]


def test_hostile_requests_leave_the_daemon_serving(daemon):
    statuses = []
    for n in range(200):
        request = HOSTILE[n % len(HOSTILE)].replace(b"Host: d\r\n", b"Host: d\r\nConnection: close\r\n")
        answer = raw(daemon, request, timeout=0.2)
        statuses.append(answer[9:12])
        assert b"500 Internal" not in answer[:40], (n, answer[:300])
    huge = b"{" + b" " * (40 << 20)
    answer = raw(daemon, CREATE + b"Content-Length: %d\r\n\r\n" % len(huge) + huge, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413") or answer == b""
    assert daemon.process.poll() is None
    assert daemon.client.json("GET", "/version")["ApiVersion"] == "1.50"
    assert not [v for v in os.listdir(Path(os.environ["MINIDOCKER_STATE"]) / "volumes")
                if "escape" in v] if (Path(os.environ["MINIDOCKER_STATE"]) / "volumes").exists() else True
    assert daemon.client.json("GET", "/containers/json", {"all": True}) == []
    assert {b"400", b"404"} <= set(statuses)


def _monitor_pids(daemon) -> set[int]:
    found = set()
    for c in daemon.client.json("GET", "/containers/json", {"all": True}):
        state = json.loads((Path(daemon.env["MINIDOCKER_STATE"]) / "containers" / c["Id"] / "state.json")
                           .read_text())
        if state.get("Status") == "running":
            found.add(state["MonitorPid"])
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "sigkill"])
def test_containers_outlive_the_daemon(daemon, sig, tmp_path):
    env = {"MINIDOCKER_STATE": str(tmp_path / "state"), "MINIDOCKER_RUN": str(tmp_path / "run")}
    with running_daemon(tmp_path, daemon.registry.url, env=env) as own:
        for _ in own.client.stream_json("POST", "/images/create", {"fromImage": "busybox", "tag": "latest"}):
            pass
        _outlive(own, sig)


def _outlive(daemon, sig: int) -> None:
    c = daemon.client
    daemon.cli("run", "-d", "--name", "long", "busybox", "sleep", "100")
    daemon.cli("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1.5; exit 9")
    try:
        pid = c.json("GET", "/containers/long/json")["State"]["Pid"]
        monitors = _monitor_pids(daemon)
        daemon.stop(sig)
        time.sleep(2)  # "short" exits while no daemon runs: its monitor records it
        os.kill(pid, 0)  # still running
        assert all(os.path.exists(f"/proc/{m}") for m in monitors if m)
        daemon.start()
        assert c.json("GET", "/containers/long/json")["State"]["Running"] is True
        short = c.json("GET", "/containers/short/json")["State"]
        assert (short["Status"], short["ExitCode"]) == ("exited", 9)
        assert daemon.cli("exec", "long", "true").returncode == 0  # the monitor serves the new daemon
        ps = daemon.cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        assert "long running" in ps and "short exited" in ps
        # A later exit is recorded too.
        c.request("POST", "/containers/long/kill", {"signal": "SIGKILL"}).read()
        assert c.json("POST", "/containers/long/wait")["StatusCode"] == 137
    finally:
        daemon.cli("rm", "-f", "long", "short")


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as Docker's TLS guide makes."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def make(name: str, issuer_key=None, issuer_name=None, ca=False, usage=None, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return key, subject

    ca_key, ca_name = make("ca", ca=True)
    make("server", ca_key, ca_name, usage=ExtendedKeyUsageOID.SERVER_AUTH,
         san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    make("client", ca_key, ca_name, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    make("stranger", usage=ExtendedKeyUsageOID.CLIENT_AUTH)  # self-signed: not from our CA
    return {n: directory / f"{n}.pem" for n in ("ca", "server", "client", "stranger")}


def test_tcp_needs_a_client_certificate(tmp_path, daemon):
    from minidocker.testing.localregistry import free_port

    certs = _certificates(tmp_path)
    port = free_port()
    env = {"MINIDOCKER_STATE": str(tmp_path / "state"), "MINIDOCKER_RUN": str(tmp_path / "run")}
    with running_daemon(tmp_path, daemon.registry.url, "-H", f"tcp://127.0.0.1:{port}",
                        "--tlscacert", str(certs["ca"]), "--tlscert", str(certs["server"]),
                        "--tlskey", str(tmp_path / "server-key.pem"), env=env):
        good = Client(f"tcp://127.0.0.1:{port}", {"ca": str(certs["ca"]), "cert": str(certs["client"]),
                                                   "key": str(tmp_path / "client-key.pem")})
        assert good.json("GET", "/version")["ApiVersion"] == "1.50"
        for cert in (None, "stranger"):
            tls = {"ca": str(certs["ca"])}
            if cert:
                tls |= {"cert": str(certs[cert]), "key": str(tmp_path / f"{cert}-key.pem")}
            with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException, DaemonUnreachable)):
                Client(f"tcp://127.0.0.1:{port}", tls).json("GET", "/version")
        with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP on the TLS port
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/version")
            assert conn.getresponse().status != 200
            raise OSError("refused")
        cli = subprocess.run([sys.executable, "-m", "minidocker", "-H", f"tcp://127.0.0.1:{port}",
                              "--tlsverify",
                              "--tlscacert", str(certs["ca"]), "--tlscert", str(certs["client"]),
                              "--tlskey", str(tmp_path / "client-key.pem"), "version"],
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0 and "API version:      1.50" in cli.stdout, cli.stderr


def test_plain_tcp_is_refused_without_tls(tmp_path, daemon):
    result = subprocess.run([sys.executable, "-m", "minidocker.daemon", "-H", "tcp://0.0.0.0:23750"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "MINIDOCKER_STATE": str(tmp_path / "s"),
                                 "MINIDOCKER_RUN": str(tmp_path / "r")})
    assert result.returncode != 0 and "refusing to listen on tcp://0.0.0.0:23750 without TLS" in result.stderr


def test_start_up_cleans_up_after_engines_killed_with_their_watchdogs(rootfs):
    """An address with its published port, and a container filesystem, both of dead containers."""
    from minidocker.daemon import server as daemon
    from minidocker.network import ports
    from minidocker.network.stage import Network
    from minidocker.overlay.layers import LayerStore, import_rootfs
    from minidocker.overlay.stage import ContainerFS
    from tests import leaks

    container = subprocess.Popen(["unshare", "--net", "sleep", "30"])  # PID 1 of a container, say
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{container.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Network().attach("a" * 64, container.pid, [ports.PortMapping(80, port)])
    store = LayerStore()
    fs = ContainerFS.create(store, "b" * 64, [import_rootfs(store, rootfs)])
    fs.mount()
    container.kill()
    container.wait()
    (fs.dir / "engine").write_text(f"{container.pid} 1\n")  # claimed by an engine now dead
    assert leaks.leases() and fs.mounted()
    daemon._sweep()
    assert not leaks.leases() and not leaks.nftables() and not leaks.links() and not fs.dir.exists()
