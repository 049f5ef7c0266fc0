"""Chapter 07's test tooling: a registry seeded with busybox, and a daemon on a private socket.

The daemon is started exactly as a user would (``python -m minidocker.daemon -H unix://...``) with
Docker Hub's mirror pointing at a local registry (Debian's ``docker-registry``) that holds the
busybox image of chapter 00, so ``pull busybox`` and ``run busybox`` work with no internet.
Everything it started is stopped at the end, monitors and containers too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from minidocker.client import Client, DaemonUnreachable


class Daemon:
    """A ``minidockerd`` of the tests: start, stop (SIGTERM or SIGKILL), restart, clean up."""

    def __init__(self, directory: Path, mirror: str, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.sock = str(directory / "d.sock")
        self.host = f"unix://{self.sock}"
        self.extra = extra
        self.env = {**os.environ, "MINIDOCKER_REGISTRY_MIRRORS": mirror, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.client = Client(self.host)

    def start(self) -> Daemon:
        log = open(self.dir / "daemon.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([sys.executable, "-m", "minidocker.daemon", "-H", self.host,
                                         *self.extra], env=self.env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(DaemonUnreachable, OSError):
                self.client.request("GET", "/_ping", timeout=2).read()
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {(self.dir / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("the daemon did not answer")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self.process = None

    def cli(self, *args: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess:
        """``minidocker -H this-daemon ARGS...`` in a new process, output captured as text."""
        return subprocess.run([sys.executable, "-m", "minidocker", "-H", self.host, *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env, **kwargs)

    def remove_all(self) -> None:
        """Force-remove every container (their monitors, filesystems, addresses go with them)."""
        with contextlib.suppress(Exception):
            for c in self.client.json("GET", "/containers/json", {"all": True}):
                with contextlib.suppress(Exception):
                    self.client.request("DELETE", f"/containers/{c['Id']}", {"force": True}).read()


def kill_monitors(state: Path) -> None:
    """Last resort at the end: no monitor of this state directory may outlive the tests."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if b"minidocker.monitor" in cmdline or b"minidocker.forkserver" in cmdline:
                    environ = Path(f"/proc/{entry}/environ").read_bytes()
                    if f"MINIDOCKER_STATE={state}".encode() in environ:
                        os.kill(int(entry), signal.SIGKILL)


@contextlib.contextmanager
def seeded_registry(directory: Path):
    """Debian's registry on a free loopback port, holding ``library/busybox:latest``."""
    from minidocker import push
    from minidocker._localregistry import LocalRegistry

    registry = LocalRegistry(directory).start()
    try:
        push.seed_busybox(registry.host)
        yield registry
    finally:
        registry.stop()


@contextlib.contextmanager
def running_daemon(directory: Path, mirror: str, *extra: str, env: dict[str, str] | None = None):
    """A started daemon; at the end its containers are removed and it is stopped."""
    daemon = Daemon(directory, mirror, extra, env).start()
    try:
        yield daemon
    finally:
        if daemon.process is None:
            daemon.start()
        daemon.remove_all()
        daemon.stop()
        kill_monitors(Path(daemon.env.get("MINIDOCKER_STATE", "")))


def daemon_fixture(tmp_path_factory):
    """The body of each chapter 07 test module's ``daemon`` fixture: registry + daemon + busybox."""
    base = tmp_path_factory.mktemp("d07")
    with seeded_registry(base / "registry") as registry, running_daemon(base, registry.url) as daemon:
        daemon.registry = registry
        query = {"fromImage": "busybox", "tag": "latest"}
        for _ in daemon.client.stream_json("POST", "/images/create", query):
            pass
        yield daemon
