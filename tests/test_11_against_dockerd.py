"""Chapter 11, our client against a daemon we did not write: Debian's dockerd 20.10, whose API (1.41)
is older than ours (1.50). The ``minidocker`` command must step down to it, as the docker CLI does:
build, list, inspect history, run, exec and remove, with nothing but ``-H unix://its-socket``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import rootfs
from tests.helpers_09_registry import Dockerd

DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
LABEL chapter=07
CMD ["sh"]
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """dockerd's base: containerd's socket (``exec/containerd/containerd.sock.ttrpc``) must fit in
    a UNIX socket's 108 bytes, which a deep pytest directory may not leave."""
    path = Path(tempfile.mkdtemp(prefix="md07-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_minidocker_cli_drives_an_older_dockerd(tmp_path: Path, short_dir: Path) -> None:
    dockerd = Dockerd(short_dir)
    reason = dockerd.unavailable()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    context = tmp_path / "context"  # busybox from chapter 00, no registry needed
    context.mkdir()
    shutil.copy(rootfs.busybox_tar(), context / "rootfs.tar")
    (context / "Dockerfile").write_text(DOCKERFILE)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_API_VERSION"}

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minidocker", "-H", f"unix://{dockerd.socket}", *args],
                              capture_output=True, text=True, timeout=180, env={**env, **extra})

    with dockerd:
        assert "API version:      1.41" in dockerd.docker("version").stdout  # older than ours: the point
        ours = cli("version")
        assert ours.returncode == 0 and " API version:       1.41 (downgraded from 1.50)\n" in ours.stdout, \
            ours.stdout + ours.stderr
        build = cli("build", "-t", "md07:v1", str(context))
        assert build.returncode == 0, build.stderr
        assert "Step 4/4 : CMD [\"sh\"]" in build.stdout and "Successfully tagged md07:v1" in build.stdout
        images = cli("images")
        assert images.returncode == 0 and images.stdout.splitlines()[1].split()[:2] == ["md07", "v1"]
        history = cli("history", "md07:v1")
        assert history.returncode == 0 and "LABEL chapter=07" in history.stdout, history.stderr
        labels = dockerd.docker("image", "inspect", "-f", "{{.Config.Labels.chapter}}", "md07:v1").stdout
        assert labels == "07\n"  # what we built is dockerd's own image
        run = cli("run", "--rm", "--network", "none", "md07:v1", "sh", "-c", "echo hi; exit 3")
        assert (run.returncode, run.stdout, run.stderr) == (3, "hi\n", ""), run.stderr
        started = cli("run", "-d", "--name", "bg", "--network", "none", "md07:v1", "sleep", "60")
        assert started.returncode == 0, started.stderr
        exec_ = cli("exec", "bg", "sh", "-c", "echo in bg; exit 4")
        assert (exec_.returncode, exec_.stdout) == (4, "in bg\n")
        assert "bg" in cli("ps").stdout.splitlines()[1].split()
        assert cli("rm", "-f", "bg").returncode == 0
        assert cli("ps", "-a").stdout.splitlines()[1:] == []
        # $DOCKER_API_VERSION is spoken as given, never negotiated: dockerd refuses a version too new
        pinned = cli("ps", DOCKER_API_VERSION="1.50")
        assert pinned.returncode == 1 and "client version 1.50 is too new" in pinned.stderr
        assert cli("ps", DOCKER_API_VERSION="1.40").returncode == 0
        rmi = cli("rmi", "md07:v1")
        assert rmi.returncode == 0 and "Untagged: md07:v1" in rmi.stdout
        assert dockerd.docker("images", "-q").stdout == ""
