"""Chapter 14: Debian's dockerd 20.10 with ``--add-runtime minidocker=minidocker-runtime``: ``docker run
--runtime minidocker`` shows what ``--runtime runc`` shows (output, exit status, a terminal, logs and
stop, exec, a published port, a memory limit)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import rootfs
from tests.conftest import _unused_subnet
from tests.helpers_09_registry import Dockerd
from tests.test_14_containerd import under_a_terminal

RUNTIME = str(Path(sys.executable).with_name("minidocker-runtime"))


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    """A private dockerd for the module, with busybox and a network of its own (its own bridge name).

    A first container makes dockerd's cgroup parent, which stays until dockerd stops."""
    base = Path(tempfile.mkdtemp(prefix="md14d-"))  # containerd's socket path must fit in 108 bytes
    daemon = Dockerd(base, ["--add-runtime", f"minidocker={RUNTIME}"])
    reason = daemon.unavailable()
    if reason:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(reason)
    try:
        with daemon:
            daemon.docker("import", "--change", 'CMD ["sh"]', str(rootfs.busybox_tar()), "busybox:latest")
            daemon.docker("network", "create", "--subnet", _unused_subnet(), "-o",
                          f"com.docker.network.bridge.name=md14br{os.getpid() % 100000}", "md14net")
            daemon.docker("run", "--rm", "--runtime", "runc", "busybox", "true")
            try:
                yield daemon
            finally:
                for container in daemon.docker("ps", "-aq").stdout.split():
                    daemon.docker("rm", "-f", container, check=False)
                daemon.docker("network", "rm", "md14net", check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def observe(dockerd: Dockerd, runtime: str) -> dict[str, object]:
    """What a user sees of one container life cycle on ``runtime``."""
    docker = dockerd.docker
    seen: dict[str, object] = {}
    done = docker("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo hi; exit 3", check=False)
    seen["run"] = (done.stdout, done.returncode)
    client = [dockerd.client or "docker", "-H", f"unix://{dockerd.socket}"]
    out, status = under_a_terminal([*client, "run", "-it", "--rm", "--runtime", runtime, "busybox",
                                    "sh", "-c", "tty; exit 6"])
    # dockerd runs here with --ip-forward=false: the CLI warns on the terminal when the host's forwarding
    # happens to be off (a state of the host, not of the runtime)
    warning = b"WARNING: IPv4 forwarding is disabled. Networking will not work.\n"
    seen["-it"] = (out.replace(b"\r", b"").replace(warning, b""), status)
    limit = docker("run", "--rm", "--runtime", runtime, "--memory", "64m", "busybox",
                   "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", check=False)
    seen["--memory"] = limit.stdout.strip() or limit.stderr
    name = f"svc-{runtime}"
    docker("run", "-d", "--name", name, "--runtime", runtime, "--network", "md14net", "-p", "127.0.0.1::80",
           "busybox", "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; httpd -p 80 -h /etc; "
           "while :; do sleep 0.1; done")
    port = docker("port", name, "80/tcp").stdout.strip().rsplit(":", 1)[1]
    deadline = time.monotonic() + 10
    while "started" not in docker("logs", name).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10) as response:
        seen["-p"] = response.read().decode() == docker("inspect", "-f", "{{.Config.Hostname}}", name).stdout
    executed = docker("exec", name, "sh", "-c", "echo in $(hostname | wc -c); exit 4", check=False)
    seen["exec"] = (executed.stdout, executed.returncode)
    docker("stop", name)
    seen["logs"] = docker("logs", name).stdout
    seen["stopped"] = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    docker("rm", name)
    return seen


@pytest.mark.parametrize("runtime", ["runc", "minidocker"])
def test_docker_run_on_our_runtime_looks_as_on_runc(dockerd: Dockerd, runtime: str) -> None:
    assert observe(dockerd, runtime) == {
        "run": ("hi\n", 3), "-it": (b"/dev/pts/0\n", 6), "--memory": str(64 << 20), "-p": True,
        "exec": ("in 13\n", 4), "logs": "started\nbye\n", "stopped": "exited 0\n"}
