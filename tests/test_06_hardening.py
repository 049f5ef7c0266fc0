"""Chapter 06: the attack battery (each attack fails by default and works with its defence off),
Docker's capability and seccomp status lines, and every option of the hardening stage."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec, IdMap
from minidocker.namespaces import stage as namespaces
from minidocker.security import attacks, capabilities, devices
from minidocker.security import hostdisk as _hostdisk
from minidocker.security import stage as security

DOCKER_CAPS = "00000000a80425fb"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attacks")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def aims(scratch: Path):
    with attacks.targets(str(scratch)) as found:
        yield found


@pytest.fixture(scope="module")
def attack_root(scratch: Path, aims) -> str:
    """A private copy of the busybox rootfs with the probes: attacks make device nodes in it too."""
    return attacks.prepare_rootfs(str(scratch), aims)


def run(stage, root: str, *args: str):
    """The default container of this chapter (no network: chapter 05 plays no part here)."""
    return stage("security", "--network", "none", *args[:-1], root, "--", "/bin/sh", "-c", args[-1])


@pytest.mark.parametrize("attack", attacks.ATTACKS, ids=[a.name for a in attacks.ATTACKS])
def test_attack_fails_by_default_and_works_without_its_defence(attack, attack_root, aims):
    reason = attack.requires(aims)
    if reason:
        pytest.skip(f"{attack.name}: {reason}")
    hostname, before = socket.gethostname(), time.time()
    defended = attacks.run_attack(attack, attack_root, aims, attack.defended)
    assert not defended.succeeded, f"the attack worked against the defended container: {defended.evidence}"
    assert defended.returncode not in (125, 126, 127), f"the engine or the script failed: {defended.evidence}"
    if attack.refusal:  # the defence said no, not the kernel (which may lack what is attacked)
        assert defended.evidence.startswith(f"{attack.refusal}:"), f"not the defence: {defended.evidence}"
    reason = attack.requires_undefended(aims)
    if reason:
        pytest.skip(f"{attack.name}: blocked by default; with its defence off: {reason}")
    undefended = attacks.run_attack(attack, attack_root, aims, attack.undefended)
    assert undefended.succeeded, f"with {attack.undefended} it should work: {undefended.evidence}"
    # and the host is as it was: same hostname, no clock jump
    assert socket.gethostname() == hostname
    assert abs(time.time() - before) < 120


def test_the_hosts_disk_is_a_loop_device_that_goes_away(tmp_path: Path):
    """The disk attacks' target: read-only ext4 on a loop device; detached and deleted afterwards."""
    try:
        disk = _hostdisk.loop_disk(str(tmp_path), {"secret": b"host secret\n"})
        major, minor = disk.__enter__()
    except OSError as e:
        pytest.skip(f"no disk here: {e.strerror}")
    try:
        block = Path(f"/sys/dev/block/{major}:{minor}")
        assert (block / "ro").read_text() == "1\n" and (block / "loop" / "autoclear").read_text() == "1\n"
        node = tmp_path / "node"
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
        with open(node, "rb") as f:
            f.seek(1024 + 56)  # the superblock's magic number
            assert f.read(2) == b"\x53\xef"
        with open(node, "wb", buffering=0) as f, pytest.raises(PermissionError):
            f.write(b"x" * 512)  # read-only: the kernel refuses the write
    finally:
        disk.__exit__(None, None, None)
    assert not (block / "loop").exists()  # detached
    assert [p.name for p in tmp_path.iterdir()] == ["node"]  # the image is gone


def test_battery_size():
    """The 22 attacks that the README and chapter 06 count, each with its defence and how to switch it off."""
    assert len(attacks.ATTACKS) == 22
    assert all(a.defence and a.undefended != a.defended for a in attacks.ATTACKS)


def test_status_lines_match_docker(stage, rootfs):
    result = run(stage, rootfs, "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status")
    assert result.returncode == 0, result.stderr
    status = dict(re.findall(r"^(\w+):\s+(\S+)$", result.stdout, re.M))
    assert status == {"CapInh": "0" * 16, "CapPrm": DOCKER_CAPS, "CapEff": DOCKER_CAPS, "CapBnd": DOCKER_CAPS,
                      "CapAmb": "0" * 16, "NoNewPrivs": "0", "Seccomp": "2", "Seccomp_filters": "1"}
    assert int(DOCKER_CAPS, 16) == capabilities.mask(capabilities.DOCKER_DEFAULT)


def _caps(stage, root: str, *options: str) -> dict[str, str]:
    result = run(stage, root, *options, "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status")
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"^(\w+):\s+(\S+)$", result.stdout, re.M))


def test_cap_add_and_drop(stage, rootfs):
    only = _caps(stage, rootfs, "--cap-drop", "ALL", "--cap-add", "net_admin")
    assert only["CapEff"] == only["CapBnd"] == f"{1 << 12:016x}"
    fewer = _caps(stage, rootfs, "--cap-drop", "CAP_CHOWN", "--cap-drop", "MKNOD")
    assert int(fewer["CapEff"], 16) == int(DOCKER_CAPS, 16) & ~(1 | 1 << 27)
    unknown = run(stage, rootfs, "--cap-add", "FLY", "true")
    assert unknown.returncode == 125 and unknown.stderr.count("\n") == 1 and "FLY" in unknown.stderr


def test_cap_sys_admin_also_opens_seccomp(stage, rootfs):
    """Docker's profile allows mount(2) to a container that has CAP_SYS_ADMIN, and only then."""
    script = "mkdir -p /m && mount -t tmpfs t /m && echo mounted"
    assert run(stage, rootfs, script).returncode != 0
    assert run(stage, rootfs, "--cap-add", "SYS_ADMIN", script).stdout == "mounted\n"


def test_privileged_turns_everything_off(stage, rootfs):
    status = _caps(stage, rootfs, "--privileged")
    assert status["Seccomp"] == "0"
    assert capabilities.names(int(status["CapEff"], 16)) == capabilities.available()
    result = run(stage, rootfs, "--privileged", "grep ' /sys ' /proc/self/mounts; ls /dev; "
                 "cat /sys/fs/cgroup/devices/devices.list 2>/dev/null || true")
    assert " rw," in result.stdout.splitlines()[0]
    assert "kmsg" in result.stdout.split()  # the host's devices
    assert "a *:* rwm" in result.stdout or not os.path.isdir("/sys/fs/cgroup/devices")


def test_no_new_privileges(stage, rootfs):
    status = _caps(stage, rootfs, "--security-opt", "no-new-privileges")
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2" and status["CapEff"] == DOCKER_CAPS
    assert _caps(stage, rootfs, "--security-opt", "no-new-privileges=false")["NoNewPrivs"] == "0"


def test_seccomp_unconfined_and_custom_profiles(stage, rootfs, tmp_path):
    assert _caps(stage, rootfs, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    profile = security.seccomp.default_profile()  # Docker's policy, plus: mkdir fails with EACCES
    profile["syscalls"].insert(0, {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13})
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    result = run(stage, rootfs, "--security-opt", f"seccomp={path}", "mkdir /tmp/x")
    assert result.returncode == 1 and "Permission denied" in result.stderr
    inline = run(stage, rootfs, "--security-opt", f"seccomp={json.dumps(profile)}", "mkdir /tmp/x")
    assert "Permission denied" in inline.stderr  # the daemon passes the JSON itself
    for bad in (str(tmp_path / "missing.json"), "{not json", '{"syscalls": []}'):
        result = run(stage, rootfs, "--security-opt", f"seccomp={bad}", "true")
        assert result.returncode == 125 and result.stderr.startswith("minidocker: seccomp profile")
        assert result.stderr.count("\n") == 1


def test_bad_security_opt_and_ulimit_are_one_line_errors(stage, rootfs):
    for args in (("--security-opt", "magic=on"), ("--ulimit", "nofile=10:5"), ("--ulimit", "wings=1")):
        result = run(stage, rootfs, *args, "true")
        assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr


def test_masked_and_read_only_paths(stage, rootfs):
    script = "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/hostname"
    result = run(stage, rootfs, script)
    assert result.stdout.split() == ["0", "0"]
    assert "Read-only file system" in result.stderr
    opened = run(stage, rootfs, "--security-opt", "systempaths=unconfined", "head -c 10 /proc/timer_list")
    assert opened.stdout.startswith("Timer List")


def test_read_only_root(stage, rootfs):
    result = run(stage, rootfs, "--read-only", "touch /etc/x; echo ok > /dev/shm/ok && cat /dev/shm/ok")
    assert "Read-only file system" in result.stderr and result.stdout == "ok\n"


def test_ulimit(stage, rootfs):
    result = run(stage, rootfs, "--ulimit", "nofile=100:200", "--ulimit", "core=0",
                 "ulimit -n; ulimit -Hn; ulimit -c")
    assert result.stdout.split() == ["100", "200", "0"], result.stderr
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    too_high = run(stage, rootfs, "--ulimit", f"nofile={hard + 1}", "true")
    if os.geteuid() == 0 and "SYS_RESOURCE" not in capabilities.available():
        assert too_high.returncode == 125 and "CAP_SYS_RESOURCE" in too_high.stderr


def test_devices_cgroup_allow_list(stage, rootfs):
    if not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("no cgroup v1 devices controller here: the v2 program is tested below")
    result = run(stage, rootfs, "cat /sys/fs/cgroup/devices/devices.list")
    assert result.stdout.splitlines() == list(devices.DOCKER_DEVICES)


def test_device_program_on_cgroup_v2(tmp_path):
    """The eBPF device filter, on a real cgroup v2 directory: /dev/null yes, /dev/kmsg no."""
    mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    v2 = next((m[4] for m in mounts if m[m.index("-") + 1] == "cgroup2"), None)
    if v2 is None:
        pytest.skip("no cgroup2 mount on this host")
    group = Path(v2) / f"{os.environ['MINIDOCKER_CGROUP_PARENT']}-devices"
    group.mkdir()
    try:
        devices.restrict_v2(group)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                (group / "cgroup.procs").write_text(str(os.getpid()))
                os.mknod(tmp_path / "kmsg", 0o600 | 0o020000, os.makedev(1, 11))
                os.close(os.open("/dev/null", os.O_RDWR))
                try:
                    os.open(tmp_path / "kmsg", os.O_RDONLY)
                    code = 1
                except PermissionError:
                    code = 0
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        group.rmdir()


def test_userns_root_owns_its_files_without_chown(stage, rootfs):
    script = "id -u; stat -c %u /etc/passwd; touch /etc/mine && stat -c %u /etc/mine; cat /proc/self/uid_map"
    result = run(stage, rootfs, "--userns", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[:3] == ["0", "0", "0"]  # root inside, its files are root's: idmapped layers
    assert lines[3].split() == ["0", "100000", "65536"]
    assert not os.path.exists(os.path.join(rootfs, "etc/mine"))  # the container wrote to its own layer


def test_harden_a_bare_spec_with_an_idmapped_directory(attack_root):
    """The API on chapter 02's spec: a plain directory rootfs, idmapped; nothing on the host's mounts."""
    script = "touch /tmp/by-root && mount -t tmpfs x /mnt"
    spec = ContainerSpec(rootfs=attack_root, argv=["/bin/sh", "-c", script], env={"PATH": "/bin"},
                         id_map=IdMap())
    hardening = security.harden(spec)
    assert hardening.seccomp and hardening.capabilities == capabilities.DOCKER_DEFAULT
    assert namespaces.run(spec) != 0  # touch worked, mount did not
    assert os.stat(os.path.join(attack_root, "tmp/by-root")).st_uid == 0  # on disk: the host's root
    os.unlink(os.path.join(attack_root, "tmp/by-root"))


def test_user_switch_before_the_hardening(attack_root):
    """A user switch that runs before the hardening (a hook of the default order): Docker's sets for a
    non-root user all the same (PR_SET_KEEPCAPS kept the permitted set across the switch)."""

    def become_1000() -> None:
        os.setgroups([])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)

    script = "grep -E '^(CapPrm|CapEff|CapBnd|Seccomp):' /proc/self/status > /tmp/status; id -u >>/tmp/status"
    spec = ContainerSpec(rootfs=attack_root, argv=["/bin/sh", "-c", script], env={"PATH": "/bin"})
    spec.add_hook("before_exec", become_1000)
    security.harden(spec)
    assert spec.hooks("before_exec")[0] is become_1000
    assert namespaces.run(spec) == 0
    status = Path(attack_root, "tmp/status")
    assert status.read_text().split() == ["CapPrm:", "0" * 16, "CapEff:", "0" * 16, "CapBnd:", DOCKER_CAPS,
                                          "Seccomp:", "2", "1000"]
    status.unlink()


def test_privileged_refuses_userns():
    spec = ContainerSpec(rootfs="/", id_map=IdMap())
    with pytest.raises(EngineError):
        security.harden(spec, security.SecurityOptions(privileged=True))


def test_pid_host(stage, rootfs):
    result = run(stage, rootfs, "--pid", "host", "echo $$; cat /proc/1/comm 2>&1")
    assert int(result.stdout.split()[0]) > 1


def test_init_works_under_the_filter(stage, rootfs):
    result = run(stage, rootfs, "--init", "--security-opt", "no-new-privileges", "sleep 0.1 & wait; echo $$")
    assert result.returncode == 0 and result.stdout == "2\n", result.stderr


def test_docker_api_glue():
    host = {"Privileged": False, "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges"], "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
            "PidMode": "host"}
    assert security.docker_argv(host) == ["--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
                                          "--security-opt", "no-new-privileges", "--ulimit", "nofile=10:20",
                                          "--pid", "host"]
    plan = security.plan(security.options_from_docker(host))
    assert plan.no_new_privileges and plan.rlimits == {"nofile": (10, 20)} and plan.read_only_root
    assert "NET_ADMIN" in plan.capabilities and "MKNOD" not in plan.capabilities
    hooks = security.exec_hooks({"HostConfig": host})
    assert len(hooks) == 1 and callable(hooks[0])


@pytest.mark.parametrize("failure", [EngineError("this host has no devices cgroup controller"),
                                     PermissionError(1, "Operation not permitted")], ids=["engine", "os"])
def test_devices_cgroup_fails_closed(attack_root, monkeypatch, failure):
    """A devices cgroup that cannot be applied (no controller, bpf refused) stops the container from
    starting, with one line saying why; it used to start without its device list (fail open)."""
    from minidocker.cgroups.cgroup import Cgroup

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(devices, "restrict_v1", broken)
    monkeypatch.setattr(devices, "restrict_v2", broken)
    marker = Path(attack_root, "tmp/started")
    spec = ContainerSpec(rootfs=attack_root, argv=["/bin/sh", "-c", "touch /tmp/started"],
                         env={"PATH": "/bin"})
    cgroup = Cgroup.create(spec.id)
    try:
        with pytest.raises(EngineError, match="devices cgroup") as refused:
            security.harden(spec)
            namespaces.run(spec)
        assert "\n" not in str(refused.value)
    finally:
        cgroup.remove()
    assert not marker.exists()


def _imported(*argv: str) -> list[str]:
    """The modules a ``python -X importtime ARGV`` imports, in order (its exit status checked)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:") and not line.endswith("imported package")]


def test_a_start_stays_within_its_import_budget(rootfs):
    """A ``--network none`` start imports about 100 modules, none of the dear ones: counted, not timed.

    Each module named here cost 2-10 ms of every container's start when it crept in (``dataclasses``
    brings ``inspect``, ``ast`` and ``dis``; OpenSSL for a fingerprint's sha256, ``typing``, ``json``, ...); a
    count of what the interpreter's own start does not import catches the rest.
    """
    started = set(_imported("-c", "pass"))
    argv = ("-m", "minidocker.security.stage", "--network", "none", rootfs, "--", "true")
    _imported(*argv)  # the first start of a directory records its fingerprint (tarfile, threading ...)
    imported = [m for m in _imported(*argv) if m not in started]
    dear = ("dataclasses", "inspect", "ast", "dis", "tokenize", "typing", "json", "tarfile", "tempfile",
            "threading", "socket", "subprocess", "asyncio", "pyroute2", "secrets", "random", "platform",
            "email", "http", "uuid", "datetime", "hashlib", "_hashlib")
    assert [m for m in imported if m.split(".")[0] in dear] == [], imported
    assert len(imported) <= 110, f"the stage imports {len(imported)} modules: {imported}"
