"""Chapter 02: namespaces, pivot_root, a minimal /dev, PID 1, and the breakout blocked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from minidocker.chroot import stage as chroot
from minidocker.core.process import EngineError
from minidocker.core.spec import ORDER_FIRST, ORDER_RESTRICT, ORDER_SWITCH_USER, ContainerSpec
from minidocker.core.syscalls import MNT_DETACH, MS_BIND, mount, umount2
from minidocker.namespaces import stage as namespaces

MS_SHARED = 1 << 20  # not in _syscalls: the engine never makes a mount shared


def test_done_when_example(stage, rootfs):
    """PID 1 inside, our hostname inside, the host's unchanged."""
    before = socket.gethostname()
    result = stage("namespaces", "--hostname", "box", rootfs, "--", "/bin/sh", "-c", "echo $$; hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\nbox\n"
    assert socket.gethostname() == before


def test_default_hostname_is_short_container_id(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", 'hostname; echo "$HOSTNAME"')
    name, env_name = result.stdout.split()
    assert len(name) == 12 and int(name, 16) >= 0 and env_name == name


def test_host_processes_are_invisible(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", "ls /proc | grep -E '^[0-9]+$'")
    pids = {int(p) for p in result.stdout.split()}
    assert 1 in pids and max(pids) < 10, pids  # sh, ls and grep: nothing from the host


def test_only_loopback_and_it_is_up(stage, rootfs):
    script = "ls /sys/class/net; ping -c1 -W1 127.0.0.1 >/dev/null && echo up"
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", script)
    assert result.stdout.split() == ["lo", "up"], result.stderr


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_container_mounts_are_invisible_on_the_host(writable_rootfs):
    """Nothing the container mounts shows on the host, even from a rootfs on a *shared* mount.

    On systemd hosts ``/`` is a shared mount: mounts made under it in any copy of the mount table
    propagate to the others, the host's included, unless the container makes its copy private
    (``make_mounts_private``). Wherever the host's ``/`` is private, that case would never arise:
    so the rootfs is made a shared mount of its own here.
    """
    root = writable_rootfs
    mount(root, root, None, MS_BIND)
    try:
        mount(None, root, None, MS_SHARED)
        cmd = [sys.executable, "-m", "minidocker.namespaces", root, "--", "/bin/sh", "-c",
               "mkdir /dev/m && mount -t tmpfs inside /dev/m && echo mounted && sleep 30"]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                line = proc.stdout.readline()
                with open("/proc/self/mountinfo") as f:
                    table = f.read()
            finally:
                proc.kill()  # the engine dies: PR_SET_PDEATHSIG takes the container with it
                proc.wait()
            errors = proc.stderr.read()
        while_it_ran = [row.split()[4] for row in table.splitlines()]
        for points in (while_it_ran, _mount_points()):  # propagated mounts would outlive the container
            under = [p for p in points if p == root or p.startswith(f"{root}/")]
            assert under == [root], f"the container's mounts show on the host: {under}"
        assert " inside " not in table  # no /proc, /dev, /sys or tmpfs of the container's: only ours
        assert line == "mounted\n", errors
    finally:
        for _ in range(10):  # ours, and whatever propagated on top of it or under it
            if root not in _mount_points():
                break
            umount2(root, MNT_DETACH)


def test_minimal_dev(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c",
                   "ls /dev; echo x > /dev/null; head -c4 /dev/zero | wc -c; ls -l /dev/ptmx")
    lines = result.stdout.split("\n")
    names = set(result.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
            "fd", "stdin", "stdout", "stderr"} <= names
    assert "sda" not in names and "vda" not in names and "mem" not in names
    assert "4" in lines and "pts/ptmx" in result.stdout


def test_sys_is_read_only(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", "echo 1 > /sys/kernel/profiling")
    assert result.returncode != 0 and "Read-only file system" in result.stderr


def test_cgroup_namespace_is_new(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", "readlink /proc/self/ns/cgroup")
    assert result.stdout.strip() != os.readlink("/proc/self/ns/cgroup")


def test_every_namespace_differs_from_the_hosts(stage, rootfs):
    kinds = ["mnt", "uts", "ipc", "pid", "net", "cgroup"]
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)
    inside = stage("namespaces", rootfs, "--", "/bin/sh", "-c", script).stdout.split()
    outside = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    assert all(i != o for i, o in zip(inside, outside, strict=True))


def test_exit_code_contract(stage, rootfs):
    assert stage("namespaces", rootfs, "--", "/bin/sh", "-c", "exit 42").returncode == 42
    missing = stage("namespaces", rootfs, "--", "nope")
    assert missing.returncode == 127
    assert missing.stderr == 'minidocker: exec: "nope": executable file not found in $PATH\n'
    assert stage("namespaces", rootfs, "--", "/etc/passwd").returncode == 126
    assert stage("namespaces", "/nonexistent", "--", "/bin/true").returncode == 125
    assert stage("namespaces", "--bogus", rootfs, "--", "true").returncode == 125


def test_signal_death_is_128_plus_n(stage, rootfs):
    # PID 1 ignores signals it has no handler for, even SIGTERM: the shell kills a child instead.
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", "sh -c 'kill -KILL $$'; exit $?")
    assert result.returncode == 137


def test_env_and_workdir(stage, rootfs):
    result = stage("namespaces", "-e", "GREETING=hi", "-w", "/tmp", rootfs, "--", "/bin/sh", "-c",
                   'echo "$GREETING $(pwd) $PATH"')
    assert result.stdout == "hi /tmp /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"


def test_zombies_are_reaped_with_init(stage, rootfs):
    """Orphans of a double fork end up with PID 1; --init reaps them, nothing stays a zombie."""
    script = ("for i in 1 2 3 4 5; do sh -c 'sleep 0.1 &'; done; sleep 1; "
              "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l")
    with_init = stage("namespaces", "--init", rootfs, "--", "/bin/sh", "-c", script)
    assert with_init.stdout.strip() == "0", with_init.stderr


def test_init_passes_exit_status(stage, rootfs):
    assert stage("namespaces", "--init", rootfs, "--", "/bin/sh", "-c", "exit 9").returncode == 9
    assert stage("namespaces", "--init", rootfs, "--", "nope").returncode == 127


def test_init_forwards_sigterm(rootfs):
    """SIGTERM to the engine reaches the command through the engine and the init (exit 143)."""
    cmd = [sys.executable, "-m", "minidocker.namespaces", "--init", rootfs, "--", "/bin/sh", "-c",
           "echo ready; exec sleep 30"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline() == "ready\n"
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143
        assert time.monotonic() - start < 5


def test_without_init_pid1_ignores_sigterm(rootfs):
    """Why --init exists: a program as PID 1 with no SIGTERM handler never sees SIGTERM."""
    cmd = [sys.executable, "-m", "minidocker.namespaces", rootfs, "--", "/bin/sh", "-c",
           "echo ready; exec sleep 2"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # sleep ran to its end


def _wait_for_descendant(pid: int, name: str) -> None:
    """Wait until a process named ``name`` runs under ``pid``: exec'd, not a shell about to exec it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        todo = [pid]
        while todo:
            pid_now = todo.pop()
            try:
                with open(f"/proc/{pid_now}/comm") as f:
                    if f.read().strip() == name and pid_now != pid:
                        return
                with open(f"/proc/{pid_now}/task/{pid_now}/children") as f:
                    todo += [int(child) for child in f.read().split()]
            except OSError:
                pass
        time.sleep(0.01)
    raise AssertionError(f"no {name} under {pid}")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGQUIT, 131)],
                         ids=["SIGINT", "SIGQUIT"])
def test_sigint_sent_to_the_engine_reaches_the_command_through_the_init(rootfs, signum, status):
    """``kill -INT`` to an engine with no terminal (a supervisor's): the container must stop, not run on."""
    cmd = [sys.executable, "-m", "minidocker.namespaces", "--init", rootfs, "--", "sleep", "30"]
    with subprocess.Popen(cmd, start_new_session=True) as proc:
        _wait_for_descendant(proc.pid, "sleep")  # a shell before it would ignore SIGQUIT
        start = time.monotonic()
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=10) == status  # sleep killed by the signal, as the init reports it
        assert time.monotonic() - start < 5


def test_sigint_sent_to_the_engine_reaches_pid1_that_traps_it(rootfs):
    """Without --init the command is PID 1 and sees only the signals it has a handler for: a trap."""
    cmd = [sys.executable, "-m", "minidocker.namespaces", rootfs, "--", "/bin/sh", "-c",
           'trap "exit 7" INT; echo ready; sleep 30 & wait']
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True) as proc:
        assert proc.stdout.readline() == "ready\n"
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 7
        assert time.monotonic() - start < 5


COUNT_SIGINTS = ('trap "echo got INT" INT; echo ready; sleep 2 & p=$!; '
                 "while kill -0 $p 2>/dev/null; do wait $p; done; echo end")


def _engine_on_a_terminal(pexpect, *args: str):
    """The engine as a shell in a terminal starts it: a pty its controlling terminal, its group in front."""
    return pexpect.spawn(sys.executable, ["-m", "minidocker.namespaces", *args], encoding="utf-8", timeout=20)


@pytest.mark.parametrize("options", [[], ["--init"]], ids=["pid1", "init"])
def test_ctrl_c_on_a_terminal_reaches_the_container_once(rootfs, options):
    """The terminal sends Ctrl-C to its whole foreground group, the container included: once is enough.

    A real Ctrl-C, through a pseudo-terminal, whose driver sends SIGINT with si_code SI_KERNEL. An
    os.killpg() would not do: that is kill(2) (SI_USER) to every member of the group, which the
    engine cannot tell from a kill of the engine alone, so it passes it on (as it does SIGTERM).
    """
    pexpect = pytest.importorskip("pexpect")
    child = _engine_on_a_terminal(pexpect, *options, rootfs, "--", "/bin/sh", "-c", COUNT_SIGINTS)
    try:
        child.expect("ready")
        child.sendintr()  # the terminal's VINTR character: ^C
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close(force=True)
    assert output.count("got INT") == 1 and "end" in output, output
    assert child.exitstatus == 0


@pytest.mark.parametrize("options", [[], ["--init"]], ids=["pid1", "init"])
def test_a_terminals_ctrl_c_is_not_passed_on(rootfs, options):
    """The same, where a second copy cannot hide: a shell merges two SIGINTs that come close together.

    The command leaves the terminal's process group (setsid), so it sees only what the engine and
    the init pass on: nothing of a Ctrl-C, but a ``kill -INT`` of the engine.
    """
    pexpect = pytest.importorskip("pexpect")
    script = 'trap "echo got INT; exit 0" INT; echo ready; sleep 30 & wait'
    child = _engine_on_a_terminal(pexpect, *options, rootfs, "--", "setsid", "/bin/sh", "-c", script)
    try:
        child.expect("ready")
        child.sendintr()
        assert child.expect(["got INT", pexpect.TIMEOUT], timeout=0.5) == 1, "the Ctrl-C was passed on"
        os.kill(child.pid, signal.SIGINT)
        child.expect("got INT", timeout=5)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_engine_killed_takes_the_container_with_it(rootfs):
    cmd = [sys.executable, "-m", "minidocker.namespaces", rootfs, "--", "/bin/sh", "-c",
           "echo $$ ready; exec sleep 30"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline() == "1 ready\n"
        proc.kill()
        proc.wait()
    # the no_leaks fixture fails this test if the container's sleep survived


def test_chroot_breakout_is_blocked(stage, rootfs, tmp_path):
    """The chapter 01 attack: /proc/1/root is now the container's own root, not the host's."""
    marker = tmp_path / "secret"
    marker.write_text("host secret\n")
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", chroot.breakout_script(str(marker)))
    assert "host secret" not in result.stdout
    assert result.returncode != 0


def test_dotdot_at_root_stays_at_root(stage, rootfs):
    result = stage("namespaces", rootfs, "--", "/bin/sh", "-c", "cd /../../..; ls")
    assert set(result.stdout.split()) == set(os.listdir(rootfs))


def test_user_namespace_maps_root_to_unprivileged(stage, writable_rootfs):
    rootfs = writable_rootfs
    script = "id -u; cat /proc/self/uid_map; cat /proc/self/status | grep CapEff"
    result = stage("namespaces", "--userns", rootfs, "--", "/bin/sh", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    # root inside cannot write the host-owned rootfs: it is uid 100000 out here
    denied = stage("namespaces", "--userns", rootfs, "--", "/bin/sh", "-c", "touch /etc/x")
    assert denied.returncode == 1 and "Permission denied" in denied.stderr
    assert not os.path.exists(os.path.join(rootfs, "etc/x"))


def test_start_api_hooks_run_in_order(rootfs, tmp_path):
    seen = []
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/sh", "-c", "cat /marker"],
                         env={"PATH": "/bin"})
    spec.on_created.append(lambda pid: seen.append(("created", pid > 1)))
    spec.before_pivot.append(lambda root: open(os.path.join(root, "dev", "marker"), "w").close())
    spec.on_exit.append(lambda status: seen.append(("exit", os.waitstatus_to_exitcode(status))))
    assert namespaces.run(spec) == 1  # /marker is not there: /dev/marker was, in the tmpfs
    assert seen == [("created", True), ("exit", 1)]


def test_hooks_run_in_their_declared_order(rootfs):
    """Each hook says where it goes (lower first, equal ones as added): chapter 02 runs them so."""
    seen = []
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/true"], env={"PATH": "/bin"})
    spec.add_hook("on_created", lambda pid: seen.append("switch"), order=ORDER_SWITCH_USER)
    spec.add_hook("on_created", lambda pid: seen.append("restrict"), order=ORDER_RESTRICT)
    spec.on_created.append(lambda pid: seen.append("plain"))  # appended: the default order
    spec.add_hook("on_created", lambda pid: seen.append("first"), order=ORDER_FIRST)
    spec.add_hook("on_exit", lambda status: seen.append("exit"))
    assert namespaces.run(spec) == 0
    assert seen == ["first", "plain", "restrict", "switch", "exit"]
    with pytest.raises(ValueError):
        spec.add_hook("before_start", lambda: None)


def test_failing_hook_leaves_nothing_running(rootfs):
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/sleep", "30"], env={"PATH": "/bin"})

    def boom(pid: int) -> None:
        raise RuntimeError("hook failed")

    spec.on_created.append(boom)
    with pytest.raises(RuntimeError):
        namespaces.start(spec)


def test_setup_error_is_one_line_125(rootfs):
    spec = ContainerSpec(rootfs=rootfs, argv=["/bin/true"], cwd="/does/not/exist")
    with pytest.raises(EngineError) as err:
        namespaces.run(spec)
    assert err.value.exit_code == 125 and "/does/not/exist" in str(err.value)
