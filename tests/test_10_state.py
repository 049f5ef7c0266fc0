"""Chapters 04 and 10: the state directory is root's alone (Docker's lesson of CVE-2021-41091).

A container's root writes a setuid-root copy of a shell into its filesystem, and its config holds a
secret in ``Env``. An unprivileged host user (uid 65534, no groups) who knows where everything is
(``/proc/self/mountinfo`` shows the merged overlay) can neither read the secret nor reach the shell.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers_10_daemon import daemon_fixture

PROBE = r"""
import os, sys
state, cid = sys.argv[1], sys.argv[2]
reached = []
targets = [state, f"{state}/containers/{cid}/config.json", f"{state}/containers/{cid}/json.log"]
with open("/proc/self/mountinfo") as f:
    points = [line.split()[4] for line in f if line.split()[4].startswith(state)]
targets += [f"{point}/rootsh" for point in points] + [f"{point}/etc/passwd" for point in points]
for path in targets:
    try:
        os.stat(path)
        reached.append(path)
    except OSError:
        pass
print(len(points), *reached)
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def test_an_unprivileged_user_reaches_no_container_file(daemon):
    state = Path(daemon.env["MINIDOCKER_STATE"])
    run = daemon.cli("run", "-d", "-e", "SECRET=hunter2", "busybox", "sh", "-c",
                     "cp /bin/busybox /rootsh && chmod 4755 /rootsh && echo ready && exec sleep 600")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        for _ in range(100):
            if "ready" in daemon.cli("logs", cid).stdout:
                break
        merged = state / "layers" / "containers" / cid / "merged"
        assert os.stat(merged / "rootsh").st_mode & stat.S_ISUID  # the attack's file is there
        assert "hunter2" in (state / "containers" / cid / "config.json").read_text()
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "/usr/bin/python3", "-c", PROBE, str(state), cid],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        mounted, *reached = probe.stdout.split()
        assert int(mounted) >= 1 and reached == [state.as_posix()], reached  # the data root: no further
        modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in (
            state, state / "containers", state / "containers" / cid, state / "layers",
            state / "layers" / "containers", state / "layers" / "containers" / cid)}
        assert all(mode & 0o007 == 0 for mode in modes.values()), {str(p): oct(m) for p, m in modes.items()}
        for name in ("config.json", "json.log"):
            assert stat.S_IMODE(os.stat(state / "containers" / cid / name).st_mode) == 0o600, name
    finally:
        daemon.cli("rm", "-f", cid)


def test_userns_root_still_reaches_its_files(daemon):
    """``--userns-remap``'s root (uid 100000) walks down through directories group-searchable by it only."""
    from tests.helpers_10_daemon import running_daemon

    base = Path(daemon.dir) / "remap"
    base.mkdir()
    Path(daemon.dir).chmod(0o711)  # pytest's are 0700: searchable as the state directory's parents are
    env = {"MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run")}
    with running_daemon(base, daemon.registry.url, "--userns-remap", "default", env=env) as remapped:
        run = remapped.cli("run", "--rm", "busybox", "sh", "-c", "cat /etc/hostname >/dev/null && id -u")
        assert (run.returncode, run.stdout) == (0, "0\n"), run.stderr
        state = Path(env["MINIDOCKER_STATE"])
        assert stat.S_IMODE(state.stat().st_mode) & 0o007 == 0 and state.stat().st_gid == 100000
