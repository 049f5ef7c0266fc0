"""Chapter 14: containerd 1.6 (Debian's) drives ``minidocker-runtime`` as it drives runc: ``ctr run
--runc-binary``, through its runc shim (io.containerd.runc.v2), with a private containerd."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minidocker import rootfs as base_rootfs
from minidocker.core import paths
from minidocker.testing import ocilayout

RUNTIME = str(Path(sys.executable).with_name("minidocker-runtime"))
IMAGE = "docker.io/library/busybox:latest"

Ctr = Callable[..., subprocess.CompletedProcess]


def busybox_archive(where: Path) -> Path:
    """Our busybox rootfs as an OCI image layout in a tar: what ``ctr image import`` reads."""
    layout = where / "layout"
    ocilayout.write_image(layout, IMAGE, [base_rootfs.busybox_tar().read_bytes()], cmd=["sh"], compress=False)
    archive = where / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(str(path), arcname=str(path.relative_to(layout)), recursive=False)
    return archive


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    """A private containerd (its own root, state and socket; namespace and cgroups named after this run)."""
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is missing: install Debian's containerd (./setup.sh does)")
    home = Path(tempfile.mkdtemp(prefix="md14c-"))  # short: the socket's path must fit in 108 bytes
    runc_root = tmp_path_factory.mktemp("runtime-root-ctr")  # the leak check looks at runtime-root*
    namespace = f"{paths.cgroup_parent()}-ctr"  # cgroups /NAMESPACE/ID: named for the leak check
    (home / "config.toml").write_text(f"""version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{home}/c.sock"
""")
    log = open(home / "containerd.log", "w")  # noqa: SIM115 - open while containerd runs
    daemon = subprocess.Popen(["containerd", "-c", str(home / "config.toml")], stdout=log,
                              stderr=subprocess.STDOUT)

    def run(*args: str, timeout: float = 60, **extra: object) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", str(home / "c.sock"), "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, **extra)

    try:
        deadline = time.monotonic() + 30
        while run("version").returncode != 0:
            assert daemon.poll() is None and time.monotonic() < deadline, \
                (home / "containerd.log").read_text()
            time.sleep(0.1)
        imported = run("image", "import", str(busybox_archive(home)))
        assert imported.returncode == 0, imported.stderr
        run.runc_root = str(runc_root)  # type: ignore[attr-defined]
        yield run
    finally:
        for task in run("task", "ls", "-q").stdout.split():
            run("task", "kill", "-s", "SIGKILL", task)
            run("task", "delete", "--force", task)
        for container in run("container", "ls", "-q").stdout.split():
            run("container", "delete", container)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def ours(ctr: Ctr) -> list[str]:
    """``ctr run``'s options that put our runtime under the shim instead of runc."""
    return ["--runc-binary", RUNTIME, "--runc-root", ctr.runc_root]  # type: ignore[attr-defined]


def test_ctr_run_prints_and_exits_with_the_containers_status(ctr: Ctr) -> None:
    result = ctr("run", *ours(ctr), "--rm", IMAGE, "c1", "sh", "-c", "echo hi from $(hostname); exit 3")
    assert (result.stdout, result.returncode) == ("hi from c1\n", 3), result.stderr


def test_a_detached_task_is_listed_execs_is_killed_and_deleted(ctr: Ctr) -> None:
    assert ctr("run", *ours(ctr), "-d", IMAGE, "c2", "sleep", "300").returncode == 0
    tasks = ctr("task", "ls").stdout.split()
    assert tasks[3:] == ["c2", tasks[4], "RUNNING"] and tasks[4].isdigit()
    assert Path(f"/proc/{tasks[4]}/cmdline").read_bytes() == b"sleep\x00300\x00"
    assert list(Path(ctr.runc_root).glob("*/c2/state.json"))  # type: ignore[attr-defined]  # the shim's --root
    executed = ctr("task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo $$ in $(hostname); exit 4")
    assert (executed.stdout, executed.returncode) == ("2 in c2\n", 4), executed.stderr
    assert ctr("task", "kill", "-s", "SIGKILL", "c2").returncode == 0
    deadline = time.monotonic() + 10
    while "STOPPED" not in ctr("task", "ls").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ctr("task", "delete", "c2").returncode == 0
    assert ctr("container", "delete", "c2").returncode == 0
    assert list(Path(ctr.runc_root).glob("*/c2")) == []  # type: ignore[attr-defined]


def under_a_terminal(argv: list[str], timeout: float = 30) -> tuple[bytes, int]:
    """Run ``argv`` with a pty as its terminal (as a user typing ``ctr run -t``); its output and status."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_ctr_run_with_a_terminal(ctr: Ctr) -> None:
    base = ["ctr", "-a", ctr("version").args[2], "-n", ctr("version").args[4]]
    out, status = under_a_terminal([*base, "run", *ours(ctr), "-t", "--rm", IMAGE, "c3",
                                    "sh", "-c", "tty; exit 5"])
    assert (out.replace(b"\r", b""), status) == (b"/dev/pts/0\n", 5)  # each terminal on the way adds a \r
