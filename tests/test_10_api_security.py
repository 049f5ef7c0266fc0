"""Chapter 10: the API and exec, attacked: each test shows an attack that worked before its defence.

* the exec window: the helper that joins a container must not be readable from inside it;
* a web page must not drive a plain-TCP daemon (JSON bodies need ``Content-Type: application/json``);
* one image's odd ``ExposedPorts`` must not break ``GET /containers/json`` for everyone;
* ``seccomp=`` in ``SecurityOpt`` is a profile's content, never a path on the daemon's host;
* an option the daemon does not do is refused (a 400); an LSM the host lacks is said so in ``Warnings``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from minidocker.client.client import APIError
from tests.helpers_10_daemon import daemon_fixture


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def raw(daemon, request: bytes, timeout: float = 5) -> tuple[int, bytes]:
    """Send bytes as they are; the status and the body that come back."""
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
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12] or 0), body


def post(path: str, body: bytes, content_type: str | None) -> bytes:
    """A POST as a web page's ``fetch()`` could send it (or, with application/json, as clients do)."""
    header = f"Content-Type: {content_type}\r\n" if content_type else ""
    return (f"POST {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n{header}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def logs(daemon, cid: str) -> str:
    return daemon.cli("logs", cid).stdout


def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ---- 1. the exec window ------------------------------------------------------------------------
# PID 1 makes /etc/passwd a FIFO: `exec -u root` reads it to resolve the name, and blocks there, in
# the container, before its exec(2). PID 1 finds the helper (a python process, not yet the command),
# waits until it has the container's capabilities (the old order dropped them in the window), and
# reads its open files (the monitor's sockets, the log on the host) and environment, if it may.
# Then it lets the exec go on.
WATCHER = r"""
rm /etc/passwd; mkfifo /etc/passwd; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/1/status; echo armed
while :; do
  for p in /proc/[0-9]*; do
    case "$(cat $p/comm 2>/dev/null)" in python*) ;; *) continue ;; esac
    mine=$(grep '^CapEff:' /proc/1/status)
    n=0; while [ "$(grep '^CapEff:' $p/status)" != "$mine" ] && [ $n -lt 200 ]; do n=$((n+1)); done
    echo "helper"; grep -E '^(CapEff|Seccomp|NoNewPrivs):' $p/status
    echo "fds: $(ls $p/fd | tr '\n' ' ')"
    echo "links: $(for f in $p/fd/*; do readlink $f; done 2>/dev/null | tr '\n' ' ')"
    if cat $p/environ > /dev/null 2>&1; then echo "environ readable"; else echo "environ refused"; fi
    echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
    exec sleep 600
  done
done
"""


def test_exec_helper_is_not_readable_from_the_container(daemon):
    cid = daemon.client.json("POST", "/containers/create", None,
                             {"Image": "busybox", "Cmd": ["sh", "-c", WATCHER]})["Id"]
    try:
        daemon.client.request("POST", f"/containers/{cid}/start").read()
        wait_for(lambda: "armed" in logs(daemon, cid))
        try:
            result = daemon.cli("exec", "-u", "root", cid, "sh", "-c",
                                "ls /proc/self/fd; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status",
                                timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the exec never came through: {logs(daemon, cid)}")
        assert result.returncode == 0, result.stderr
        seen = logs(daemon, cid).splitlines()
        pid1 = seen[:3]
        helper = seen[seen.index("helper") + 1:]
        report = "\n".join(seen)
        fds = next(line for line in helper if line.startswith("fds:")).split()[1:]
        assert next(line for line in helper if line.startswith("links:")) == "links: ", report  # no target
        assert len(fds) <= 4 and {"0", "1", "2"} <= set(fds), report  # stdio and the report pipe, no more
        assert "environ refused" in helper, report  # non-dumpable: its memory, too
        assert helper[:3] == pid1, report  # already as restricted as PID 1 (capabilities, seccomp filter)
        listing = result.stdout.split()
        assert listing[:4] == ["0", "1", "2", "3"] and listing[4] == "CapEff:", result.stdout  # 3: ls's dir
        assert listing[4:] == " ".join(pid1).split(), result.stdout  # the command, restricted as PID 1
    finally:
        daemon.client.request("DELETE", f"/containers/{cid}", {"force": True}).read()


# ---- 2. a web page may send a "simple" request: text/plain, a form, no preflight ----------------
ESCAPE = json.dumps({"Image": "busybox", "Cmd": ["cat", "/h/etc/shadow"],
                     "HostConfig": {"Binds": ["/:/h"]}}).encode()


def test_json_bodies_need_the_json_content_type(daemon):
    before = daemon.client.json("GET", "/containers/json", {"all": True})
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        status, body = raw(daemon, post("/v1.50/containers/create", ESCAPE, kind))
        assert status == 400, (kind, body)
        message = f"Content-Type specified ({kind or ''}) must be 'application/json'"
        assert json.loads(body)["message"] == message
    status, body = raw(daemon, post("/volumes/create", b'{"Name": "fromapage"}', "text/plain;charset=UTF-8"))
    assert status == 400, body
    assert daemon.client.json("GET", "/containers/json", {"all": True}) == before
    # what clients send: application/json (parameters allowed); an empty body needs no type at all
    status, body = raw(daemon, post("/containers/create", json.dumps({"Image": "busybox"}).encode(),
                                    "application/json; charset=utf-8"))
    assert status == 201, body
    daemon.client.request("DELETE", f"/containers/{json.loads(body)['Id']}").read()
    status, body = raw(daemon, post("/volumes/create", b"", None))
    assert status == 201, body
    daemon.client.request("DELETE", f"/volumes/{json.loads(body)['Name']}").read()


# ---- 3. one container's odd port must not break the list for everyone ---------------------------
def test_exposed_ports_are_checked_at_create(daemon):
    cid = daemon.client.json("POST", "/containers/create", None, {"Image": "busybox", "Cmd": ["true"]})["Id"]
    try:  # an image whose config says ExposedPorts {"x/tcp": {}}: anyone may push or build one
        daemon.client.request("POST", f"/containers/{cid}/start").read()
        daemon.client.json("POST", f"/containers/{cid}/wait")
        daemon.client.json("POST", "/commit", {"container": cid, "repo": "oddports"},
                           {"ExposedPorts": {"x/tcp": {}}})
    finally:
        daemon.client.request("DELETE", f"/containers/{cid}").read()
    try:
        for image, body in (("oddports", {}), ("busybox", {"ExposedPorts": {"99999/tcp": {}}}),
                            ("busybox", {"ExposedPorts": {"80/ip": {}}}),
                            ("busybox", {"HostConfig": {"PortBindings": {"x/tcp": [{"HostPort": "80"}]}}}),
                            ("busybox", {"HostConfig": {"PortBindings": {"80": [{"HostPort": "http"}]}}})):
            with pytest.raises(APIError) as refused:
                daemon.client.json("POST", "/containers/create", None,
                                   {"Image": image, "Cmd": ["sleep", "60"], **body})
            assert refused.value.status == 400 and "invalid" in str(refused.value), body
        assert daemon.client.json("GET", "/containers/json", {"all": True}) == []
    finally:
        daemon.client.request("DELETE", "/images/oddports").read()


def test_listing_skips_a_port_that_is_no_port():
    from minidocker.daemon.routes.containers import port_summaries

    ports = {"x/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None}
    assert port_summaries(ports) == [{"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
                                     {"PrivatePort": 53, "Type": "udp"}]


# ---- 4. seccomp=PATH would be read on the daemon's host -------------------------------------------
def test_seccomp_profile_is_content_not_a_path(daemon, tmp_path):
    for value in ("/etc/shadow", "/dev/zero", "profile.json", "[1, 2]"):
        with pytest.raises(APIError) as refused:
            daemon.client.json("POST", "/containers/create", None, {
                "Image": "busybox", "Cmd": ["true"], "HostConfig": {"SecurityOpt": [f"seccomp={value}"]}})
        assert refused.value.status == 400 and "JSON content" in str(refused.value), value
    # our client reads the file and sends what it holds, as the docker CLI does
    profile = tmp_path / "allow.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    result = daemon.cli("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                        "grep", "^Seccomp:", "/proc/self/status")
    assert result.returncode == 0 and result.stdout.split() == ["Seccomp:", "2"], result.stderr
    from minidocker.client.run import _security_opt

    assert _security_opt(f"seccomp={profile}") == 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'
    assert _security_opt("seccomp=unconfined") == "seccomp=unconfined"


# ---- 5. what the daemon does not do, it refuses; what the host lacks, it says ---------------------------
def test_unsupported_options_are_refused_and_missing_lsms_warned_of(daemon):
    host = {"CpuShares": 512, "MemorySwap": 1 << 30, "RestartPolicy": {"Name": "always"},  # implemented
            "SecurityOpt": ["apparmor=unconfined", "label=disable"], "IpcMode": "private",
            "MemorySwappiness": -1, "Dns": []}
    created = daemon.client.json("POST", "/containers/create", None,
                                 {"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
    plain = daemon.client.json("POST", "/containers/create", None, {"Image": "busybox", "Cmd": ["true"]})
    try:
        warnings = created["Warnings"]
        assert len(warnings) == 2, warnings
        for word in ("apparmor=unconfined", "label=disable"):
            assert any(word in w for w in warnings), (word, warnings)
        assert plain["Warnings"] == []
        for refused in ({"BlkioWeight": 300}, {"IpcMode": "host"}, {"ShmSize": 1 << 20}):
            with pytest.raises(APIError) as answer:
                daemon.client.json("POST", "/containers/create", None,
                                   {"Image": "busybox", "Cmd": ["true"], "HostConfig": refused})
            assert answer.value.status == 400 and "not supported by this daemon" in str(answer.value)
        result = daemon.cli("create", "--security-opt", "apparmor=unconfined", "busybox", "true")
        assert result.returncode == 0 and "WARNING: security option 'apparmor=unconfined'" in result.stderr
        daemon.client.request("DELETE", f"/containers/{result.stdout.strip()}").read()
    finally:
        for c in (created, plain):
            daemon.client.request("DELETE", f"/containers/{c['Id']}").read()
