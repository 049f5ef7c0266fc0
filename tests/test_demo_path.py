"""The README's demo (``./setup.sh demo``): our registry (chapter 09) as the daemon's Docker Hub mirror.

Not a chapter's test: it needs the repository's setup.sh and .venv, which a student's exercise
workspace does not have.

setup.sh seeds a storage directory with busybox, starts ``minidocker.registry.server`` on it on
127.0.0.1:5000 (no users, so no pushes: the mirror root pulls from cannot be rewritten by anyone
else), starts the daemon with ``--registry-mirror`` and runs ``busybox echo hello``. Here the same
commands run on a free port, with the daemon's state, run directory and socket in the test's own
directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidocker.registry.server import running
from tests.helpers_10_daemon import kill_monitors

ROOT = Path(__file__).resolve().parent.parent
MINIDOCKER = Path(sys.executable).parent / "minidocker"  # .venv/bin/minidocker, as setup.sh runs it

pytestmark = pytest.mark.chapter(10)


def _demo_commands() -> str:
    """The ``demo)`` branch of setup.sh."""
    script = (ROOT / "setup.sh").read_text()
    return script[script.index("    demo)"):script.index("    test)")]


def test_setup_sh_demo_runs_busybox_from_our_registry(tmp_path):
    demo = _demo_commands()  # what this test does is still what the demo does
    for line in ('-m minidocker.registry serve --addr "$REGISTRY"',
                 '-m minidocker.registry seed --storage "$REGISTRY_STORAGE"',
                 'minidocker daemon start --registry-mirror "http://$REGISTRY"',
                 "minidocker run --rm busybox echo hello"):
        assert line in demo, f"setup.sh's demo no longer runs {line!r}: update this test"
    env = {**os.environ, "MINIDOCKER_STATE": str(tmp_path / "state"), "MINIDOCKER_RUN": str(tmp_path / "run")}
    for variable in ("MINIDOCKER_REGISTRY_MIRRORS", "MINIDOCKER_HOST"):  # the mirror comes from the flag
        env.pop(variable, None)

    def run(*command: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    pidfile = tmp_path / "run" / "minidockerd.pid"
    daemon = 0
    assert "--allow-anonymous-push" not in demo and "--delete-enabled" not in demo
    seeded = run(sys.executable, "-m", "minidocker.registry", "seed", "--storage", tmp_path / "registry")
    assert seeded.returncode == 0 and seeded.stdout.startswith("sha256:"), seeded.stderr
    with running(tmp_path / "registry") as registry:
        try:
            for method, path in (("POST", "/v2/library/busybox/blobs/uploads/"),
                                 ("PUT", "/v2/library/busybox/manifests/latest"),
                                 ("DELETE", "/v2/library/busybox/manifests/latest")):
                assert _status(registry.url, method, path) in (403, 405), f"{method} {path} was let in"
            started = run(MINIDOCKER, "daemon", "start", "--registry-mirror", registry.url)
            assert started.returncode == 0, started.stderr
            daemon = int(pidfile.read_text())
            hello = run(MINIDOCKER, "run", "--rm", "busybox", "echo", "hello")
            assert (hello.returncode, hello.stdout) == (0, "hello\n"), hello.stderr
            pulled = run(MINIDOCKER, "image", "inspect", "-f", "{{json .RepoDigests}}", "busybox")
            assert seeded.stdout.strip() in pulled.stdout, pulled.stdout + pulled.stderr  # from our registry
            left = run(MINIDOCKER, "ps", "-a", "-q")
            assert (left.returncode, left.stdout) == (0, ""), left.stderr  # --rm: the container is gone
            assert run(MINIDOCKER, "daemon", "stop").returncode == 0
            deadline = time.monotonic() + 20
            while _running(daemon) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _running(daemon) and not pidfile.exists()
            stopped = run(MINIDOCKER, "daemon", "status")
            assert stopped.returncode == 1 and "not running" in stopped.stdout
        finally:
            if daemon and _running(daemon):  # the test failed half-way: stop what it started
                os.kill(daemon, signal.SIGKILL)
            if daemon:  # we are the subreaper of the detached daemon: collect its exit status
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(daemon, 0)
            kill_monitors(tmp_path / "state")


def _status(url: str, method: str, path: str) -> int:
    """The status an anonymous request gets."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, b"", method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _running(pid: int) -> bool:
    """True while ``pid`` has not exited (a zombie waiting for us has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
