"""A real registry on this machine: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

The tests, the chapter's notebook and the README's demo need a registry and there is no Docker Hub
here. This starts the same server Docker Hub grew from, on a free loopback port, with its storage
in a directory of ours, and stops it again. Extra settings (``auth``, ``middleware``...) are merged
into its config file, which is JSON (YAML's subset).

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
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from minidocker import _syscalls
from minidocker._process import EngineError

__all__ = ["LocalRegistry", "free_port", "stop_pid"]

BINARY = "docker-registry"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                self.process = None
                raise EngineError(f"the registry on {self.host} did not start: {' '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                    return self
            except urllib.error.HTTPError:  # 401: up, and asking for credentials
                return self
            except OSError:
                time.sleep(0.05)
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



def stop_pid(pid: int) -> bool:
    """Stop a detached registry by pid, if that pid really is one; False if it was not running."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if BINARY.encode() not in f.read():
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
