"""What the scenarios share: the rootfs, the registry, and the engines, each started on first use.

An engine that cannot start (not installed, or it fails here) is not an exception for the whole
benchmark: :meth:`Context.engine` returns an :class:`Engine` whose ``unavailable`` says why, and
every row of that engine reads "not measured: WHY".

The three engines look alike to the scenarios (same verbs, same images by the same names):

* minidocker: ``minidocker -H unix://…`` (our CLI) -> ``minidockerd`` -> a monitor per container;
* Docker: ``docker -H unix://…`` (Debian's 20.10 CLI) -> dockerd -> containerd -> a shim per container;
* podman: ``podman`` (no daemon) -> conmon per container, crun.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import peers
from tests.bench.sandbox import Sandbox, descendants
from tests.bench.timing import BenchError, pid_namespace

__all__ = ["Context", "Engine"]


@dataclass
class Engine:
    """One engine's command line, and how to find its own processes (not its containers')."""

    name: str
    cli: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    run_options: list[str] = field(default_factory=list)
    owns: Callable[[int, str], bool] = lambda pid, cmdline: False
    unavailable: str | None = None

    def argv(self, *args: str) -> list[str]:
        return [*self.cli, *args]

    def run_argv(self, *args: str) -> list[str]:
        """``ENGINE run OPTIONS ARGS``: the options every container of this engine needs here."""
        return [*self.cli, "run", *self.run_options, *args]

    def call(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run an engine command that must succeed (set-up, clean-up): not timed."""
        result = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise BenchError(f"{self.name} {' '.join(args)}: {result.stderr.strip()[-400:]}")
        return result

    def shown(self, argv: list[str]) -> str:
        """The command as a reader would type it: no ``nsenter`` wrapper, ``-H`` or private paths."""
        words = [w for w in argv if w != "--"]
        if words and words[0] == "nsenter":
            words = words[2:]
        out: list[str] = []
        for word in words:
            if out and out[-1] == "-H":
                out.pop()
            elif not out:
                out.append(Path(word).name)
            else:
                out.append("PATH" if word.startswith("/") else word)
        return " ".join(out)

    def processes(self) -> list[int]:
        """The engine's own processes: those it owns, in our pid namespace (containers are not)."""
        ours = pid_namespace(os.getpid())
        found = []
        for pid in descendants(os.getpid()):
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
                if pid_namespace(pid) == ours and self.owns(pid, cmdline):
                    found.append(pid)
        return found


class Context:
    """The benchmark's shared state; :meth:`close` stops everything it started."""

    def __init__(self, base: Path, sandbox: Sandbox, missing: dict[str, str],
                 say: Callable[[str], None]) -> None:
        self.base = base
        self.sandbox = sandbox
        self.missing = missing  # peer -> why it is not installed
        self.say = say
        self.prefix = sandbox.cgroup_prefix
        self.registry = None
        self._engines: dict[str, Engine] = {}
        self._daemon = None
        self._dockerd: peers.Dockerd | None = None
        self._podman: peers.Podman | None = None
        self._bundles: dict[str, Path] = {}

    @property
    def rootfs(self) -> str:
        from minidocker import rootfs

        return str(rootfs.busybox_rootfs())

    def registry_host(self) -> str:
        """Debian's registry (the reference implementation) in our network namespace, with busybox."""
        if self.registry is None:
            if "registry" in self.missing:
                raise BenchError(self.missing["registry"])
            from minidocker.images import push
            from minidocker.testing.localregistry import LocalRegistry

            self.registry = LocalRegistry(self.base / "registry").start()
            push.seed_busybox(self.registry.host)
        return self.registry.host

    def bundle(self, runtime: str) -> Path:
        """An OCI bundle on the busybox rootfs for ``runc`` or ``crun``, its cgroup under our prefix."""
        if runtime not in self._bundles:
            self._bundles[runtime] = peers.oci_bundle(self.base / f"bundle-{runtime}", self.rootfs,
                                                      f"/{self.prefix}-{runtime}/bench")
        return self._bundles[runtime]

    def engine(self, name: str) -> Engine:
        """``minidocker``, ``docker`` or ``podman``, started (with busybox pulled) on first use."""
        if name not in self._engines:
            try:
                self._engines[name] = getattr(self, f"_start_{name}")()
                self._engines[name].call("pull", "busybox")
            except (BenchError, OSError, subprocess.SubprocessError, RuntimeError) as e:
                self._engines[name] = Engine(name, unavailable=f"not measured: {e}")
        return self._engines[name]

    def engine_pid(self, name: str) -> int:
        """The started engine's daemon process: minidockerd or dockerd (after :meth:`engine`)."""
        started = self._daemon.process if name == "minidocker" and self._daemon else (
            self._dockerd.process if name == "docker" and self._dockerd else None)
        if started is None:
            raise BenchError(f"{name} has no daemon running")
        return started.pid

    def _start_minidocker(self) -> Engine:
        from tests.helpers_10_daemon import Daemon

        mirror = f"http://{self.registry_host()}"
        directory = self.base / "minidockerd"
        directory.mkdir(parents=True, exist_ok=True)
        self.say("starting minidockerd")
        self._daemon = Daemon(directory, mirror).start()
        script = Path(sys.executable).parent / "minidocker"
        cli = [str(script)] if script.exists() else [sys.executable, "-m", "minidocker"]
        daemon_pid = self._daemon.process.pid
        daemon_tree = lambda: {daemon_pid, *descendants(daemon_pid)}  # noqa: E731
        return Engine("minidocker", [*cli, "-H", self._daemon.host], self._daemon.env,
                      owns=lambda pid, cmdline: pid in daemon_tree())

    def _start_docker(self) -> Engine:
        if "docker" in self.missing:
            raise BenchError(self.missing["docker"])
        self.say("starting dockerd")
        base = self.base / "docker"
        self._dockerd = peers.Dockerd(base, f"/{self.prefix}-docker", f"http://{self.registry_host()}").start()
        dockerd_pid = self._dockerd.pid
        tree = lambda: {dockerd_pid, *descendants(dockerd_pid)}  # noqa: E731
        return Engine("docker", self._dockerd.cli, self._dockerd.env,
                      owns=lambda pid, cmdline: pid in tree() or str(base) in cmdline)

    def _start_podman(self) -> Engine:
        if "podman" in self.missing:
            raise BenchError(self.missing["podman"])
        base = self.base / "podman"
        self._podman = peers.Podman(base, self.sandbox.legacy_cgroups(), f"/{self.prefix}-podman",
                                    self.registry_host())
        return Engine("podman", self._podman.cli, self._podman.env, self._podman.run_options,
                      owns=lambda pid, cmdline: "conmon" in cmdline.split(" ", 1)[0] and str(base) in cmdline)

    def reap(self) -> None:
        """Reap the orphans (shims, conmon, runtimes' children) that exited since the last call."""
        started = (self._daemon and self._daemon.process, self._dockerd and self._dockerd.process,
                   self.registry and self.registry.process, self.sandbox.holder)
        keep = {p.pid for p in started if p}
        self.sandbox.reap(keep)

    def close(self) -> None:
        """Stop the engines and the registry (the sandbox then kills whatever is left)."""
        from tests.helpers_10_daemon import kill_monitors

        if self._daemon is not None:
            with contextlib.suppress(Exception):
                self._daemon.remove_all()
            with contextlib.suppress(Exception):
                self._daemon.stop()
            kill_monitors(Path(self._daemon.env.get("MINIDOCKER_STATE", "")))
        for stop in (self._podman and self._podman.stop, self._dockerd and self._dockerd.stop,
                     self.registry and self.registry.stop):
            if stop:
                with contextlib.suppress(Exception):
                    stop()
