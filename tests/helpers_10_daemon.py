"""Chapter 10's test tooling: a registry seeded with busybox, and a daemon on a private socket.

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

from minidocker.client.client import APIError, Client, DaemonUnreachable


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
        try:
            self._wait_for_ping()
        except BaseException:  # one that started but cannot serve must not outlive the test
            try:
                self.stop()  # SIGTERM: it stops its fork server too
            except subprocess.TimeoutExpired:
                self.stop(signal.SIGKILL)
            raise
        return self

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.client.request("GET", "/_ping", timeout=2).read()
                return
            except (DaemonUnreachable, OSError):
                pass
            except APIError as e:  # it runs, but answers with an error: its log says why
                raise RuntimeError(f"the daemon answered /_ping with {e}: {self.log_tail()}") from None
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"the daemon did not answer: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.dir / "daemon.log").read_text(errors="replace")[-2000:]

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
        """Force-remove every container (their monitors, filesystems, addresses go with them), then
        the user-defined networks (chapter 12), which a daemon's stop keeps, as Docker's does."""
        with contextlib.suppress(Exception):
            for c in self.client.json("GET", "/containers/json", {"all": True}):
                with contextlib.suppress(Exception):
                    self.client.request("DELETE", f"/containers/{c['Id']}", {"force": True}).read()
        with contextlib.suppress(Exception):  # chapter 12: bridges and rules outlive a daemon
            self.client.json("POST", "/networks/prune")


def monitors(state: Path) -> list[str]:
    """The monitors and fork servers of this state directory still running: ``PID COMMAND`` each."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if b"minidocker.daemon.monitor" in cmdline or b"minidocker.daemon.forkserver" in cmdline:
                    environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                    if f"MINIDOCKER_STATE={state}".encode() in environ:
                        found.append(f"{entry} {b' '.join(cmdline).decode(errors='replace').strip()}")
    return found


def kill_monitors(state: Path, grace: float = 0) -> list[str]:
    """Last resort at the end: no monitor of this state directory may outlive the tests.

    Waits up to ``grace`` seconds for them to exit on their own (a fork server goes a moment after
    its daemon), then SIGKILLs the rest; returns those it had to kill, for the caller to report.
    """
    deadline = time.monotonic() + grace
    while (left := monitors(state)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for entry in left:
        with contextlib.suppress(OSError):
            os.kill(int(entry.split()[0]), signal.SIGKILL)
    return left


@contextlib.contextmanager
def seeded_registry(directory: Path):
    """Debian's registry on a free loopback port, holding ``library/busybox:latest``."""
    from minidocker.images import push
    from minidocker.testing.localregistry import LocalRegistry

    registry = LocalRegistry(directory).start()
    try:
        push.seed_busybox(registry.host)
        yield registry
    finally:
        registry.stop()


@contextlib.contextmanager
def running_daemon(directory: Path, mirror: str, *extra: str, env: dict[str, str] | None = None):
    """A started daemon; at the end its containers are removed and it is stopped.

    Then no monitor or fork server of its state directory may be left: removing a container ends
    its monitor, stopping the daemon its fork server. Any left is killed, and (unless the test failed
    already) the test fails: a leak hidden here would never reach the ``no_leaks`` check.
    """
    daemon = Daemon(directory, mirror, extra, env).start()
    try:
        yield daemon
    finally:
        if daemon.process is None:
            daemon.start()
        daemon.remove_all()
        daemon.stop()
        left = kill_monitors(Path(daemon.env["MINIDOCKER_STATE"]), grace=5)
    assert not left, f"monitors or fork servers outlived their containers and daemon (killed now): {left}"


@contextlib.contextmanager
def own_daemon(daemon: Daemon, directory: Path):
    """A daemon of a test's own, beside the module's ``daemon`` (its registry), that the test may kill:
    the module's, restarted or killed, would count as a leak. busybox is pulled."""
    env = {"MINIDOCKER_STATE": str(directory / "state"), "MINIDOCKER_RUN": str(directory / "run")}
    with running_daemon(directory, daemon.registry.url, env=env) as d:
        for _ in d.client.stream_json("POST", "/images/create", {"fromImage": "busybox", "tag": "latest"}):
            pass
        yield d


def daemon_fixture(tmp_path_factory):
    """The body of each chapter 10 test module's ``daemon`` fixture: registry + daemon + busybox."""
    base = tmp_path_factory.mktemp("d07")
    with seeded_registry(base / "registry") as registry, running_daemon(base, registry.url) as daemon:
        daemon.registry = registry
        query = {"fromImage": "busybox", "tag": "latest"}
        for _ in daemon.client.stream_json("POST", "/images/create", query):
            pass
        yield daemon
