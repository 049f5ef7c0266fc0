"""Helpers for chapter 09's tests: raw HTTP calls to the registry, images to push, a private dockerd."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
# A registry without users takes no push and no delete unless told: tests that push anonymously say so.
WRITABLE = ("--allow-anonymous-push", "--delete-enabled")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


def call(url: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request to the registry at ``url`` (http only), read whole."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def push_blob(url: str, repo: str, data: bytes) -> str:
    """POST then PUT with the bytes (a monolithic upload); return the digest."""
    digest = sha256(data)
    started = call(url, "POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status == 202, started.body
    done = call(url, "PUT", f"{started.headers['Location']}?digest={digest}", data,
                {"Content-Type": "application/octet-stream"})
    assert done.status == 201, done.body
    return digest


def manifest_for(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    """An OCI image manifest for a config and layers (already pushed, or not)."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)} for layer in layers],
        **extra}).encode()


def push_image(url: str, repo: str, tag: str, layers: list[bytes], **extra: Any) -> tuple[str, bytes]:
    """Push layers, a config and a manifest; return the manifest's digest and bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(x) for x in layers]}}).encode()
    for blob in (*layers, config):
        push_blob(url, repo, blob)
    manifest = manifest_for(config, layers, **extra)
    put = call(url, "PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
    assert put.status == 201, put.body
    return put.headers["Docker-Content-Digest"], manifest


def stored_files(storage: Path) -> set[str]:
    """Every file under the storage's blobs/ and repositories/ (for "nothing was stored" checks)."""
    return {str(p.relative_to(storage)) for sub in ("blobs", "repositories")
            for p in (storage / sub).rglob("*") if p.is_file()}


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run skopeo (an OCI/Docker registry client we did not write)."""
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


class Dockerd:
    """Debian's dockerd on private paths, in a private mount namespace (its mounts, and the
    ``/etc/docker/key.json`` that dockerd 20.10 insists on writing, never reach the host)."""

    def __init__(self, base: Path, extra_args: Sequence[str] = ()) -> None:
        self.base = base
        self.extra_args = list(extra_args)  # more dockerd options (chapter 14: --add-runtime NAME=PATH)
        self.socket = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_CONFIG": str(base / "client-config")}
        # A config that names its credential helpers gets no default one from the host (the docker
        # CLI picks docker-credential-pass where it is installed): logins stay in this file.
        (base / "client-config").mkdir(exist_ok=True)
        (base / "client-config" / "config.json").write_text('{"credHelpers": {"example.invalid": "none"}}')
        self.process: subprocess.Popen | None = None
        self.client = shutil.which("docker")
        # Absolute (a relative parent goes under dockerd's own cgroup, wherever that is), and named
        # after the run's cgroup parent, so the leak check sees it if __exit__ does not remove it.
        run = os.environ.get("MINIDOCKER_CGROUP_PARENT", f"minidocker-test-{os.getpid()}")
        self.cgroup_parent = f"/{run}-dockerd"

    def unavailable(self) -> str | None:
        """Why dockerd cannot run here, or None."""
        if not shutil.which("dockerd") or not self.client:
            return "dockerd or the docker client is missing: install Debian's docker.io (./setup.sh does)"
        if not os.path.isdir("/etc/docker"):
            return "/etc/docker does not exist (docker.io is not installed properly)"
        return None

    def __enter__(self) -> Dockerd:
        daemon = (f"mount -t tmpfs dockerd-etc /etc/docker && exec dockerd --data-root {self.base}/data "
                  f"--exec-root {self.base}/exec --pidfile {self.base}/dockerd.pid -H unix://{self.socket} "
                  "--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false "
                  f"--cgroup-parent {self.cgroup_parent} {' '.join(map(shlex.quote, self.extra_args))}")
        self.log = open(self.base / "dockerd.log", "w")
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", daemon]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"dockerd exited: {(self.base / 'dockerd.log').read_text()[-2000:]}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("dockerd did not answer within 60 s")

    def docker(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([self.client or "docker", "-H", f"unix://{self.socket}", *args], env=self.env,
                                capture_output=True, text=True, timeout=180, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.base / "data")
        with contextlib.suppress(OSError):
            shutil.rmtree(self.base / "exec")
        name = self.cgroup_parent.lstrip("/")
        found = [*Path("/sys/fs/cgroup").glob(name), *Path("/sys/fs/cgroup").glob(f"*/{name}")]  # v2, v1
        for directory in sorted((d for top in found for d in top.glob("**/")), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()


@contextlib.contextmanager
def raw_upload(url: str, path: str, total: int, first: bytes) -> Iterator[Any]:
    """A PATCH whose body is ``total`` bytes long, of which only ``first`` is sent (until the block ends)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("PATCH", path)
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Content-Length", str(total))
    connection.endheaders()
    connection.send(first)
    try:
        yield connection
    finally:
        connection.close()
