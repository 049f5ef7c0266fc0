"""A real registry on this machine, on 127.0.0.1: Debian's ``docker-registry`` or our own server.

The tests and the chapters' "check your work" need a registry and there is no Docker Hub here.
:class:`LocalRegistry` starts Debian's ``docker-registry`` (distribution 2.8, the server Docker Hub
grew from: the tests' independent reference) on a free loopback port, with its storage in a
directory of ours, and stops it again. Extra settings (``auth``, ``middleware``...) are merged into
its config file, which is JSON (YAML's subset).

:func:`serve_detached` starts *our* registry server (chapter 09) in the background for
``python -m minidocker.images registry start``. It runs it as a program,
``python -m minidocker.registry serve``, and never imports it: helpers import only helpers.

Example::

    >>> with LocalRegistry(Path("/tmp/reg")) as reg:
    ...     reg.url
    'http://127.0.0.1:40123'
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError

__all__ = ["LocalRegistry", "answers", "free_port", "serve_detached", "stop_pid"]

BINARY = "docker-registry"
SERVER = "minidocker.registry.server"  # ours (chapter 09): started as a program, never imported here


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a registry answers ``GET /v2/`` at ``url`` (a 401 asking for credentials counts)."""
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> bool:
    """Poll ``url`` until it answers (True) or ``timeout`` passes (False); an error if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = " ".join(log.read_text(errors="replace").strip().splitlines()[-1:])
            raise EngineError(f"the registry on {url.split('://')[1]} did not start: "
                              f"{tail.removeprefix('minidocker: ')}")
        if answers(url):
            return True
        time.sleep(0.05)
    return False


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


class LocalRegistry:
    """Debian's registry server on ``127.0.0.1:port``, storing into ``storage``.

    ``storage`` defaults to a temporary directory removed on :meth:`stop`; ``port`` to a free one.
    Restarting (:meth:`start` after :meth:`stop`) keeps the same port and storage.
    """

    def __init__(self, storage: Path | None = None, *, port: int = 0,
                 config: dict[str, Any] | None = None) -> None:
        self._own_storage = storage is None
        self.storage = Path(storage or tempfile.mkdtemp(prefix="minidocker-registry-"))
        self.port = port or free_port()
        self.extra = config or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: loopback registries speak plain HTTP."""
        return f"http://{self.host}"

    @property
    def log(self) -> Path:
        """The server's own log (handy when a test fails)."""
        return self.storage / "registry.log"

    def config(self) -> dict[str, Any]:
        """The server's configuration: loopback only, deletes allowed, quiet logs."""
        base = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage / "data")},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": "minidocker-local-registry"},
        }
        return _merge(base, json.loads(json.dumps(self.extra)))

    def start(self, timeout: float = 15, *, detach: bool = False) -> LocalRegistry:
        """Start the server and wait until ``GET /v2/`` answers; a one-line error if it cannot.

        ``detach=True`` lets it outlive us (its own session, no death signal): see :func:`stop_pid`.
        """
        if not shutil.which(BINARY):
            raise EngineError("docker-registry is not installed: apt-get install docker-registry "
                              "(or run ./setup.sh)")
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.storage / "config.yml"
        config.write_text(json.dumps(self.config(), indent=2))
        with open(self.log, "ab") as log:
            tied = None if detach else lambda: _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, signal.SIGTERM)
            self.process = subprocess.Popen(  # PDEATHSIG: unless detached, it never outlives us
                [BINARY, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=tied, start_new_session=detach)
        try:
            if _wait_until_up(self.url, self.process, self.log, timeout):
                return self
        except EngineError:
            self.process = None
            raise
        self.stop()
        raise EngineError(f"the registry on {self.host} did not answer within {timeout:.0f}s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; storage stays."""
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); remove the storage if it was ours."""
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def close(self) -> None:
        """Stop, and remove a temporary storage directory."""
        self.stop()
        if self._own_storage:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.storage)

    def __enter__(self) -> LocalRegistry:
        return self if self.process else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (tests corrupt it on purpose)."""
        algorithm, hexdigits = digest.split(":")
        return (self.storage / "data" / "docker" / "registry" / "v2" / "blobs" / algorithm / hexdigits[:2]
                / hexdigits / "data")


def serve_detached(storage: Path, port: int, log: Path, timeout: float = 15) -> tuple[int, str]:
    """Start our registry server (chapter 09) on ``127.0.0.1:port`` so that it outlives us.

    A scratch registry to push the chapters' examples to: anyone on this machine may push to it
    (``--allow-anonymous-push``), so never make it a mirror that root pulls from.

    Its own session, no death signal, its output appended to ``log``. Returns its pid and URL once
    ``GET /v2/`` answers; a one-line error (the log's last line) if it exits instead.
    """
    storage.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", SERVER, "serve", "--addr", f"127.0.0.1:{port}", "--storage", str(storage),
             "--allow-anonymous-push"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    if _wait_until_up(url, process, log, timeout):
        return process.pid, url
    process.kill()
    process.wait()
    raise EngineError(f"the registry on 127.0.0.1:{port} did not answer within {timeout:.0f}s (log: {log})")


def stop_pid(pid: int) -> bool:
    """Stop a detached registry (Debian's or ours) by pid, if that pid really is one; False if not running."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
        if not any(program.encode() in command for program in (BINARY, SERVER)):
            return False
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True
