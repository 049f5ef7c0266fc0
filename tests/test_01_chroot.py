"""Chapter 01: a command jailed with chroot, the exit-status contract, and the breakout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from minidocker.chroot import stage as chroot


def test_command_sees_only_the_rootfs(stage, rootfs, tmp_path):
    marker = tmp_path / "host-only"
    marker.write_text("host")
    result = stage("chroot", rootfs, "--", "/bin/sh", "-c", f"ls /; test -e {marker} && echo LEAK; true")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(os.listdir(rootfs))


def test_exit_status_is_the_commands(stage, rootfs):
    assert stage("chroot", rootfs, "--", "/bin/sh", "-c", "exit 7").returncode == 7


def test_killed_by_signal_is_128_plus_n(stage, rootfs):
    assert stage("chroot", rootfs, "--", "/bin/sh", "-c", "kill -TERM $$").returncode == 128 + 15


def test_stdio_passes_through(stage, rootfs):
    result = stage("chroot", rootfs, "--", "/bin/sh", "-c", "read x; echo got $x; echo err >&2", input="hi\n")
    assert (result.stdout, result.stderr) == ("got hi\n", "err\n")


def test_missing_command_is_127_with_one_line(stage, rootfs):
    result = stage("chroot", rootfs, "--", "no-such-command")
    assert result.returncode == 127
    assert result.stderr == 'minidocker: exec: "no-such-command": executable file not found in $PATH\n'


def test_not_executable_is_126(stage, rootfs):
    result = stage("chroot", rootfs, "--", "/etc/passwd")
    assert result.returncode == 126
    assert "permission denied" in result.stderr and len(result.stderr.splitlines()) == 1


def test_missing_rootfs_is_125(stage, tmp_path):
    result = stage("chroot", str(tmp_path / "nope"), "--", "/bin/true")
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1 and "is not a directory" in result.stderr


def test_no_command_is_125(stage, rootfs):
    result = stage("chroot", rootfs)
    assert result.returncode == 125 and "no command given" in result.stderr


def test_sigint_sent_to_the_engine_reaches_the_command(rootfs):
    """``kill -INT`` to the engine (in a session of its own: no terminal) is passed on, as docker run's."""
    engine = subprocess.Popen([sys.executable, "-m", "minidocker.chroot", rootfs, "--", "/bin/sh", "-c",
                               'trap "exit 7" INT; echo ready; while :; do sleep 1; done'],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert engine.stdout.readline() == "ready\n"
        engine.send_signal(signal.SIGINT)
        assert engine.wait(timeout=10) == 7
    finally:
        engine.kill()
        engine.wait()


def test_run_api_returns_status(rootfs):
    assert chroot.run(rootfs, ["/bin/sh", "-c", "exit 3"]) == 3


def test_jail_shares_everything_else_with_the_host(stage, rootfs):
    """Not a container: same hostname and the host's processes are one mount away."""
    result = stage("chroot", rootfs, "--", "/bin/hostname")
    assert result.stdout.strip() == socket.gethostname()


def test_root_breaks_out_of_the_chroot(stage, rootfs, tmp_path):
    """The breakout really works against this stage: root inside reads a file outside the jail."""
    marker = tmp_path / "secret"
    marker.write_text("host secret\n")
    result = stage("chroot", rootfs, "--", "/bin/sh", "-c", chroot.breakout_script(str(marker)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host secret\n"
