"""The engines minidocker is measured against, installed from Debian and run on private paths.

* :func:`install`: Debian's ``runc``, ``crun``, ``podman``, ``docker.io``, ``skopeo`` and
  ``docker-registry`` with apt-get, only those missing (run it twice: the second time it does
  nothing);
* :class:`Dockerd`: Debian's dockerd 20.10 with its own data-root, exec-root, pid file, socket and
  cgroup parent, Docker Hub mirrored by the benchmark's local registry, its default bridge network
  (inside the sandbox's network namespace);
* :class:`Podman`: podman 4.3 with its own storage, run root, network config and registries, as
  config files named by ``CONTAINERS_*`` variables (podman has no daemon: each command is a process);
* :func:`oci_bundle`: an OCI bundle for ``runc run`` / ``crun run`` on the same busybox rootfs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.timing import BenchError

__all__ = ["DEBIAN_PACKAGES", "Dockerd", "Podman", "install", "machine", "oci_bundle", "versions"]

# peer -> the Debian package it comes from
DEBIAN_PACKAGES = {"runc": "runc", "crun": "crun", "podman": "podman", "docker": "docker.io",
                   "skopeo": "skopeo", "registry": "docker-registry"}
ROOT = Path(__file__).resolve().parents[2]


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.returncode == 0 and "ok installed" in result.stdout


def install(peers: list[str], allowed: bool, say: Callable[[str], None] = print) -> dict[str, str]:
    """Install the Debian packages of ``peers`` that are missing; return ``{peer: why it is missing}``."""
    missing = {p: DEBIAN_PACKAGES[p] for p in peers if not _installed(DEBIAN_PACKAGES[p])}
    if missing and allowed:
        packages = sorted(set(missing.values()))
        say(f"installing Debian packages: {' '.join(packages)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])
        for step in steps:
            result = subprocess.run(step, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                say(f"{' '.join(step[:2])} failed: {result.stderr.strip()[-300:]}")
                break
    why = "not installed (the benchmark was told not to install: --no-install)" if not allowed else \
        "apt-get could not install it"
    return {p: f"{why}: Debian package {pkg}" for p, pkg in missing.items() if not _installed(pkg)}


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str]:
    """The version of every program in the table, as each reports it."""
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    return {
        "minidocker": f"{git or 'unknown'} (Python {platform.python_version()})",
        "runc": _first_line(["runc", "--version"]),
        "crun": _first_line(["crun", "--version"]),
        "dockerd": _first_line(["dockerd", "--version"]),
        "docker CLI": _first_line([docker_client(), "--version"]),
        "containerd": _first_line(["containerd", "--version"]),
        "podman": _first_line(["podman", "--version"]),
        "skopeo": _first_line(["skopeo", "--version"]),
        "registry": _first_line(["docker-registry", "--version"]),
    }


def machine() -> str:
    """One line: CPU, cores, memory, kernel, distribution."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.machine())
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    debian = Path("/etc/debian_version")
    distro = f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform()
    return (f"{cpu}, {os.cpu_count()} cores, {memory / 1024 / 1024:.0f} GiB, kernel {platform.release()}, "
            f"{distro}")


def docker_client() -> str:
    """Debian's docker CLI (20.10, like its dockerd) if there, else the first ``docker`` on PATH."""
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker") or "docker"


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, log: Path, what: str,
                timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited: {log.read_text(errors='replace')[-600:]}")
        if ready():
            return
        time.sleep(0.2)
    raise BenchError(f"{what} did not answer within {timeout:.0f} s")


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Dockerd:
    """Debian's dockerd on private paths; ``cli`` is the docker command that talks to it."""

    def __init__(self, base: Path, cgroup_parent: str, mirror: str) -> None:
        self.base = base
        self.socket = base / "docker.sock"
        self.cgroup_parent = cgroup_parent
        self.mirror = mirror
        self.cli = [docker_client(), "-H", f"unix://{self.socket}"]
        self.env = {**os.environ, "DOCKER_CONFIG": str(base / "client-config")}
        self.process: subprocess.Popen | None = None

    def start(self) -> Dockerd:
        self.base.mkdir(parents=True, exist_ok=True)
        log = self.base / "dockerd.log"
        command = ["dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
                   "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.socket}",
                   "--cgroup-parent", self.cgroup_parent, "--registry-mirror", self.mirror]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

        def answers() -> bool:
            version = subprocess.run([*self.cli, "version"], env=self.env, capture_output=True)
            return self.socket.exists() and version.returncode == 0

        _wait_until(answers, self.process, log, "dockerd")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run([*self.cli, "rm", "-f", *self.containers()], env=self.env, capture_output=True)
        _stop(self.process)
        self.process = None

    def containers(self) -> list[str]:
        result = subprocess.run([*self.cli, "ps", "-aq"], env=self.env, capture_output=True, text=True)
        return result.stdout.split()


class Podman:
    """podman with every path of its own; ``cli`` is the podman command (inside ``prefix``)."""

    RUN_OPTIONS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")  # no CAP_SYS_RESOURCE

    def __init__(self, base: Path, prefix: list[str], cgroup_parent: str, registry: str) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        (base / "net").mkdir(exist_ok=True)
        (base / "containers.conf").write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{base}/events.log"\ntmp_dir = "{base}/tmp"\n'
            f'volume_path = "{base}/volumes"\n[network]\nnetwork_config_dir = "{base}/net"\n')
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/root"\nrunroot = "{base}/runroot"\n')
        (base / "registries.conf").write_text(
            f'unqualified-search-registries = ["docker.io"]\n'
            f'[[registry]]\nprefix = "docker.io"\nlocation = "{registry}"\ninsecure = true\n'
            f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf")}
        self.cli = [*prefix, "podman"]
        self.run_options = ["--cgroup-parent", cgroup_parent, *self.RUN_OPTIONS]

    def stop(self) -> None:
        """Remove every container and image, and podman's mounts (their namespace goes with us)."""
        for args in (["rm", "-af", "-t", "0"], ["rmi", "-af"]):
            subprocess.run([*self.cli, *args], env=self.env, capture_output=True, timeout=300)


def oci_bundle(directory: Path, rootfs: str, cgroup_parent: str) -> Path:
    """An OCI bundle running ``true`` on ``rootfs`` (read-only), as ``runc spec`` writes it.

    Namespaces as minidocker's: pid, network (loopback only), ipc, uts, mount and cgroup; the
    container's cgroup under ``cgroup_parent`` (one per run: the runtime removes it on exit).
    """
    directory.mkdir(parents=True, exist_ok=True)
    tool = "runc" if shutil.which("runc") else "crun"
    subprocess.run([tool, "spec", "--bundle", str(directory)], check=True, capture_output=True)
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    spaces = config["linux"]["namespaces"]
    if not any(n["type"] == "cgroup" for n in spaces):
        spaces.append({"type": "cgroup"})
    config["linux"]["cgroupsPath"] = cgroup_parent
    path.write_text(json.dumps(config, indent=2))
    return directory


def python_command() -> list[str]:
    """The interpreter users run minidocker with (the virtualenv's, called directly: no shim)."""
    return [sys.executable]
