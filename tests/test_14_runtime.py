"""Chapter 14: ``minidocker-runtime`` on its own, as containerd calls runc: the lifecycle, bad input,
the console socket, exec, and a conformance check of the runtime-spec fields, on busybox bundles."""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import paths
from minidocker.oci import defaults

RUNTIME = str(Path(sys.executable).with_name("minidocker-runtime"))

Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runtime-root")
    yield root
    for box in root.iterdir():  # a failed test's container: nothing may outlive the module
        subprocess.run([RUNTIME, "--root", str(root), "delete", "--force", box.name], capture_output=True)


@pytest.fixture(scope="module")
def runtime(state_root: Path) -> Run:
    """Run the runtime, its output in files: a created container keeps its stdio (as under runc), so
    a pipe would not end until the container does."""
    def run(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = subprocess.run([RUNTIME, "--root", str(state_root), *args], stdout=out, stderr=err,
                                  input=input.encode() if input else None,
                                  stdin=None if input else subprocess.DEVNULL, timeout=timeout)
            out.seek(0), err.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode, out.read().decode(),
                                               err.read().decode())
    return run


def make_bundle(path: Path, rootfs: str, args: list[str], **changes: object) -> Path:
    """A bundle of our ``spec``'s config.json (runc's default) on the busybox rootfs, with ``changes``."""
    path.mkdir(parents=True, exist_ok=True)
    config = defaults.default_spec()
    config["root"]["path"] = rootfs
    config["process"].update(terminal=False, args=args)
    config["linux"]["cgroupsPath"] = f"/{paths.cgroup_parent()}/{path.name}"
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[section] = value
    (path / "config.json").write_text(json.dumps(config))
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not); ours to reap once the runtime that started it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False
    if zombie:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return not zombie


def state(runtime: Run, container_id: str) -> dict:
    result = runtime("state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_status(runtime: Run, container_id: str, wanted: str) -> dict:
    deadline = time.monotonic() + 10
    while (now := state(runtime, container_id))["status"] != wanted:
        assert time.monotonic() < deadline, f"still {now['status']}, never {wanted}"
        time.sleep(0.02)
    return now


def test_run_prints_and_exits_with_the_containers_status(runtime: Run, rootfs: str, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "run1", rootfs, ["sh", "-c", "echo hi from $(hostname); exit 3"])
    result = runtime("run", "--bundle", str(bundle), "run1")
    assert (result.stdout, result.returncode) == ("hi from runc\n", 3)
    assert runtime("state", "run1").returncode == 1  # deleted after a foreground run


def test_create_start_state_kill_delete(runtime: Run, state_root: Path, rootfs: str, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "life", rootfs, ["sleep", "300"])
    created = runtime("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "life")
    assert created.returncode == 0, created.stderr
    now = state(runtime, "life")
    assert (now["status"], now["bundle"], now["id"]) == ("created", str(bundle), "life")
    assert int((tmp_path / "pid").read_text()) == now["pid"]
    assert sorted(p.name for p in (state_root / "life").iterdir()) == ["exec.fifo", "state.json"]
    assert (state_root / "life").stat().st_mode & 0o777 == 0o700
    cmdline = Path(f"/proc/{now['pid']}/cmdline").read_bytes()
    assert b"sleep" not in cmdline  # set up, but waiting on the FIFO: not exec'd yet

    assert runtime("start", "life").returncode == 0
    assert state(runtime, "life")["status"] == "running"
    assert not (state_root / "life" / "exec.fifo").exists()
    assert Path(f"/proc/{now['pid']}/cmdline").read_bytes() == b"sleep\x00300\x00"
    assert json.loads(runtime("ps", "--format", "json", "life").stdout) == [now["pid"]]
    assert "life" in runtime("list", "-q").stdout.split()
    refused = runtime("delete", "life")
    assert (refused.returncode, refused.stderr.strip()) == (
        1, "minidocker-runtime: cannot delete container life that is not stopped: running")

    assert runtime("kill", "life", "KILL").returncode == 0
    assert wait_status(runtime, "life", "stopped")["pid"] == 0
    assert runtime("delete", "life").returncode == 0
    assert not (state_root / "life").exists()
    with pytest.raises(Exception, match="no cgroup"):
        Cgroup.open("life")


def test_delete_force_kills_a_running_container_and_its_cgroup(runtime: Run, rootfs: str,
                                                               tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "forced", rootfs, ["sh", "-c", "sleep 300 & sleep 300"])
    assert runtime("run", "--detach", "--bundle", str(bundle), "forced").returncode == 0
    pids = json.loads(runtime("ps", "--format", "json", "forced").stdout)
    assert len(pids) == 2
    assert runtime("delete", "--force", "forced").returncode == 0
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(("case", "message"), [
    ("no-config", "JSON specification file config.json not found in bundle"),
    ("version", "unsupported ociVersion '2.0.0': this runtime implements 1.x"),
    ("rootfs", "rootfs ("),
    ("systemd", "--systemd-cgroup is not supported: this runtime drives cgroupfs only"),
    ("slice", "is a systemd slice (slice:prefix:name)"),
    ("idmapped", "mount on /mnt: id-mapped mounts (uidMappings, gidMappings) are not supported"),
])
def test_bad_input_is_one_line_and_exit_1(runtime: Run, state_root: Path, rootfs: str, tmp_path: Path,
                                          case: str, message: str) -> None:
    bundle = make_bundle(tmp_path / "bad", rootfs, ["true"])
    extra: list[str] = []
    config = json.loads((bundle / "config.json").read_text())
    if case == "no-config":
        (bundle / "config.json").unlink()
    elif case == "version":
        config["ociVersion"] = "2.0.0"
    elif case == "rootfs":
        config["root"]["path"] = "missing"
    elif case == "systemd":
        extra = ["--systemd-cgroup"]
    elif case == "slice":
        config["linux"]["cgroupsPath"] = "system.slice:docker:bad"
    elif case == "idmapped":
        mapping = [{"containerID": 0, "hostID": 100000, "size": 1}]
        config["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/tmp",
                                 "options": ["rbind"], "uidMappings": mapping})
    if case != "no-config":
        (bundle / "config.json").write_text(json.dumps(config))
    log = tmp_path / "log.json"
    result = runtime(*extra, "--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle),
                     "bad")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["level"] == "error" and message in line["msg"] and line["time"]
    assert not (state_root / "bad").exists()


def test_an_id_in_use_and_a_start_that_is_not_from_created_are_refused(runtime: Run, rootfs: str,
                                                                       tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "twice", rootfs, ["true"])
    assert runtime("create", "--bundle", str(bundle), "twice").returncode == 0
    again = runtime("create", "--bundle", str(bundle), "twice")
    assert (again.returncode, again.stderr) == (1, "minidocker-runtime: container with id exists: twice\n")
    assert runtime("start", "twice").returncode == 0
    wait_status(runtime, "twice", "stopped")
    late = runtime("start", "twice")
    assert (late.returncode, late.stderr) == (
        1, "minidocker-runtime: cannot start a container that has stopped\n")
    assert runtime("delete", "twice").returncode == 0
    assert runtime("delete", "twice").stderr == "minidocker-runtime: container does not exist: twice\n"


def receive_master(listener: socket.socket) -> tuple[str, int]:
    conn, _ = listener.accept()
    with conn:
        name, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    return name.decode(), fds[0]


def read_until(fd: int, wanted: bytes, timeout: float = 10) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, f"never saw {wanted!r}, only {seen!r}"
        if select.select([fd], [], [], 0.2)[0]:
            seen += os.read(fd, 4096)
    return seen


def test_the_console_socket_receives_the_terminal(runtime: Run, rootfs: str, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "tty", rootfs, ["sh"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=True, env=[*config["process"]["env"], "PS1=box$ "])
    (bundle / "config.json").write_text(json.dumps(config))
    address = tmp_path / "console.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(address))
        listener.listen(1)
        created = runtime("create", "--bundle", str(bundle), "--console-socket", str(address), "tty")
        assert created.returncode == 0, created.stderr
        name, master = receive_master(listener)
    try:
        assert name == "/dev/pts/0"  # the container's own devpts: its first terminal
        assert runtime("start", "tty").returncode == 0
        assert b"box$ " in read_until(master, b"box$ ")  # the prompt (then ash asks where the cursor is)
        os.write(master, b"tty; echo $((6*7))\n")
        assert b"/dev/pts/0\r\n42\r\n" in read_until(master, b"42\r\n")
        os.write(master, b"exit 7\n")
        wait_status(runtime, "tty", "stopped")
    finally:
        os.close(master)
        runtime("delete", "--force", "tty")


@pytest.fixture(scope="module")
def running(runtime: Run, rootfs: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bundle = make_bundle(tmp_path_factory.mktemp("bundles") / "svc", rootfs, ["sleep", "300"])
    result = runtime("run", "--detach", "--bundle", str(bundle), "svc")
    assert result.returncode == 0, result.stderr
    yield "svc"
    runtime("delete", "--force", "svc")


def test_exec_joins_the_container(runtime: Run, running: str, tmp_path: Path) -> None:
    script = "echo $$ $(hostname); tr '\\0' ' ' < /proc/1/cmdline; exit 5"
    result = runtime("exec", running, "sh", "-c", script)
    assert (result.stdout, result.returncode) == ("2 runc\nsleep 300 ", 5)
    process = {"args": ["sh", "-c", "id -u; id -G; grep CapEff /proc/self/status"], "cwd": "/tmp",
               "env": ["PATH=/bin"], "user": {"uid": 1000, "gid": 1000, "additionalGids": [20]},
               "capabilities": {"bounding": ["CAP_KILL"]}}
    (tmp_path / "process.json").write_text(json.dumps(process))
    result = runtime("exec", "--process", str(tmp_path / "process.json"), running)
    assert result.stdout == "1000\n1000 20\nCapEff:\t0000000000000000\n", result.stderr
    detached = runtime("exec", "--detach", "--pid-file", str(tmp_path / "exec.pid"), running, "sleep", "30")
    assert detached.returncode == 0
    pid = int((tmp_path / "exec.pid").read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
    assert pid in json.loads(runtime("ps", "--format", "json", running).stdout)
    os.kill(pid, 9)
    deadline = time.monotonic() + 5
    while alive(pid):  # handed to us (a subreaper) when the runtime exited: ours to reap
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_pause_resume_update_and_events(runtime: Run, running: str) -> None:
    assert runtime("pause", running).returncode == 0
    assert state(runtime, running)["status"] == "paused"
    assert runtime("resume", running).returncode == 0
    assert state(runtime, running)["status"] == "running"
    update = runtime("update", "--resources", "-", running, input=json.dumps(
        {"memory": {"limit": 96 << 20}, "pids": {"limit": 50}}))
    assert update.returncode == 0, update.stderr
    stats = json.loads(runtime("events", "--stats", running).stdout)
    assert (stats["type"], stats["id"]) == ("stats", running)
    assert stats["data"]["memory"]["usage"]["limit"] == 96 << 20
    assert stats["data"]["pids"] == {"current": 1, "limit": 50}


def test_conformance_of_a_few_fields_each(runtime: Run, rootfs: str, tmp_path: Path) -> None:
    """Read-only root, masked paths, a capability dropped, a seccomp rule, hooks with the state, a
    memory limit, a sysctl, a mount, a namespace joined by path: each seen from inside the container."""
    anchor = make_bundle(tmp_path / "anchor", rootfs, ["sleep", "300"])
    assert runtime("run", "--detach", "--bundle", str(anchor), "anchor").returncode == 0
    anchor_pid = state(runtime, "anchor")["pid"]
    try:
        hook = tmp_path / "hook.sh"
        hook.write_text(f"#!/bin/sh\ncat > {tmp_path}/$1.json\n")
        hook.chmod(0o700)
        hooks = {name: [{"path": str(hook), "args": ["hook.sh", name]}] for name in
                 ("prestart", "createRuntime", "poststart", "poststop")}
        script = ("touch /x 2>&1 | sed 's/.*: //'; cat /proc/kcore | wc -c; grep CapBnd /proc/self/status; "
                  "mkdir /tmp/d 2>&1 | sed 's/.*: //'; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                  "cat /proc/sys/kernel/shmmni; cat /home/hello; readlink /proc/self/ns/net")
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "hello").write_text("from the host\n")
        bundle = make_bundle(tmp_path / "conform", rootfs, ["sh", "-c", script], hooks=hooks)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["capabilities"] = {k: ["CAP_KILL", "CAP_CHOWN"]
                                             for k in ("bounding", "effective", "permitted")}
        config["mounts"] += [{"destination": "/home", "type": "bind", "source": str(tmp_path / "data"),
                              "options": ["rbind", "ro", "rprivate"]},
                             {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid"]}]
        config["linux"].update(
            resources={"memory": {"limit": 64 << 20}, "devices": [{"allow": False, "access": "rwm"}]},
            seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": 1}]},
            sysctl={"kernel.shmmni": "2048"},
            namespaces=[n for n in config["linux"]["namespaces"] if n["type"] != "network"]
            + [{"type": "network", "path": f"/proc/{anchor_pid}/ns/net"}])
        (bundle / "config.json").write_text(json.dumps(config))
        result = runtime("run", "--bundle", str(bundle), "conform")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "Read-only file system", "0", "CapBnd:\t0000000000000021", "Operation not permitted",
            str(64 << 20), "2048", "from the host", os.readlink(f"/proc/{anchor_pid}/ns/net")]
        for name in ("prestart", "createRuntime", "poststart", "poststop"):
            seen = json.loads((tmp_path / f"{name}.json").read_text())
            assert (seen["id"], seen["bundle"]) == ("conform", str(bundle)), name
            assert seen["pid"] > 0
    finally:
        runtime("delete", "--force", "anchor")


def test_conformance_of_the_other_fields(runtime: Run, rootfs: str, tmp_path: Path) -> None:
    """rlimits, noNewPrivileges, oomScoreAdj, umask, devices, rootfsPropagation, domainname, CPU
    limits, the createContainer and startContainer hooks (the latter run inside, by a path there)
    with the annotations, a field we do not honour warned about, and a user namespace's id mappings."""
    share = tmp_path / "share"
    share.mkdir()
    (share / "hook.sh").write_text('#!/bin/sh\ncat > "$(dirname "$0")/$1.json"\n')
    (share / "hook.sh").chmod(0o755)
    script = ("ulimit -n; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj; umask; "
              "stat -c '%F %t:%T %a %u:%g' /dev/mine; "
              "awk '$5 == \"/\"' /proc/self/mountinfo | grep -o 'shared:' | tr -d :; "
              "cat /proc/sys/kernel/domainname; cd /sys/fs/cgroup/cpu; cat cpu.cfs_quota_us cpu.shares")
    bundle = make_bundle(tmp_path / "other", rootfs, ["sh", "-c", script],
                         annotations={"org.example/by": "book"})
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(noNewPrivileges=True, oomScoreAdj=500, apparmorProfile="docker-default",
                             rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}])
    config["process"]["user"]["umask"] = 0o027
    config["domainname"] = "example.org"
    config["linux"]["resources"]["memory"] = {"disableOOMKiller": False}  # false: as unset, no warning
    config["linux"]["resources"]["cpu"] = {"quota": 50000, "period": 100000, "shares": 512}
    config["linux"].update(rootfsPropagation="rshared", devices=[
        {"path": "/dev/mine", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1, "gid": 2}])
    config["mounts"].append({"destination": "/share", "type": "bind", "source": str(share),
                             "options": ["rbind", "rw"]})
    config["hooks"] = {
        "createContainer": [{"path": str(share / "hook.sh"), "args": ["hook.sh", "createContainer"]}],
        "startContainer": [{"path": "/share/hook.sh", "args": ["hook.sh", "startContainer"]}]}
    (bundle / "config.json").write_text(json.dumps(config))
    result = runtime("run", "--bundle", str(bundle), "other")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: process.apparmorProfile is not honoured by this runtime: ignored\n"
    assert result.stdout.splitlines() == ["123", "NoNewPrivs:\t1", "500", "0027",
                                          "character special file 1:3 640 1:2", "shared", "example.org",
                                          "50000", "512"]
    for name in ("createContainer", "startContainer"):  # the state on stdin, annotations included
        seen = json.loads((share / f"{name}.json").read_text())
        assert (seen["id"], seen["annotations"]) == ("other", {"org.example/by": "book"}), name
    users = make_bundle(tmp_path / "userns", rootfs, ["cat", "/proc/self/uid_map", "/proc/self/gid_map"])
    config = json.loads((users / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 65536}]
    (users / "config.json").write_text(json.dumps(config))
    mapped = runtime("run", "--bundle", str(users), "userns")
    assert mapped.returncode == 0, mapped.stderr
    assert [line.split() for line in mapped.stdout.splitlines()] == [["0", "100000", "65536"]] * 2


def test_spec_writes_runcs_default_config(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir(), theirs.mkdir()
    assert subprocess.run([RUNTIME, "spec", "--bundle", str(ours)]).returncode == 0
    again = subprocess.run([RUNTIME, "spec", "--bundle", str(ours)], capture_output=True, text=True)
    assert (again.returncode, again.stderr) == (
        1, "minidocker-runtime: File config.json exists. Remove it first.\n")
    if shutil.which("runc"):
        subprocess.run(["runc", "spec", "--bundle", str(theirs)], check=True)
        ours_config, theirs_config = (json.loads((d / "config.json").read_text()) for d in (ours, theirs))
        assert ours_config == theirs_config
    features = json.loads(subprocess.run([RUNTIME, "features"], capture_output=True, text=True).stdout)
    assert features["linux"]["cgroup"]["systemd"] is False
    assert "SCMP_ACT_ERRNO" in features["linux"]["seccomp"]["actions"]


def test_the_console_socket_message_is_runcs(tmp_path: Path) -> None:
    """One message: the name as payload, the descriptor in SCM_RIGHTS (runc's utils.SendFd)."""
    from minidocker.oci import console

    address = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(address))
        listener.listen(1)
        read_end, write_end = os.pipe()
        console.send_master(console.connect(str(address)), write_end, "/dev/pts/9")
        conn, _ = listener.accept()
        with conn:
            msg, ancillary, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
    fds = array.array("i", ancillary[0][2])
    assert (msg, ancillary[0][:2], len(fds)) == (b"/dev/pts/9", (socket.SOL_SOCKET, socket.SCM_RIGHTS), 1)
    os.write(fds[0], b"x")
    assert os.read(read_end, 1) == b"x"
    os.close(fds[0]), os.close(read_end)


def test_only_stdio_and_preserved_descriptors_reach_the_container(state_root: Path, rootfs: str,
                                                                  tmp_path: Path) -> None:
    """As runc: descriptors 3..3+N-1 with --preserve-fds N, never another the caller left open (7)."""
    bundle = make_bundle(tmp_path / "fds", rootfs, ["sh", "-c", "cd /proc/self/fd; echo *"])
    seen = []
    for extra in (["--preserve-fds", "1"], []):
        command = (f"exec 3>/dev/null 7>/dev/null; "
                   f"exec {RUNTIME} --root {state_root} run {' '.join(extra)} fds")
        seen.append(subprocess.run(["sh", "-c", command], cwd=bundle, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=60).stdout)
    assert seen == ["0 1 2 3 4\n", "0 1 2 3\n"]  # the last one is the shell's own, reading the directory


def test_each_command_stays_within_its_import_budget() -> None:
    """``start``, ``delete`` (and ``kill``, ``state``) import no dear module; ``create`` only chapters 02-06.

    Counted, not timed: each named module cost 2-10 ms of each of the three runtime calls a
    container takes when it crept in (``typing``, ``json``, ``subprocess`` for hooks, ``socket`` for
    the console socket, ``shutil``, ``ctypes``; ``dataclasses`` with ``inspect`` and ``ast`` for create).
    """
    dear = ("typing", "json", "subprocess", "socket", "shutil", "ctypes", "threading", "dataclasses",
            "inspect", "ast", "tempfile", "tarfile", "asyncio", "aiohttp", "pyroute2")
    for modules, budget in (("minidocker.oci.cli", 60), ("minidocker.oci.cli, minidocker.oci.specconv", 110)):
        code = (f"import sys; before = set(sys.modules); import {modules}; "
                "print(sorted(set(sys.modules) - before))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        imported = json.loads(result.stdout.replace("'", '"'))
        heavy = [m for m in imported if m.split(".")[0] in dear]
        # create runs the engine: ctypes for its system calls, shutil for chapter 04's removals
        allowed = ("shutil", "ctypes") if "specconv" in modules else ()
        assert [m for m in heavy if m.split(".")[0] not in allowed] == [], (modules, heavy)
        assert len(imported) <= budget, f"import {modules}: {len(imported)} modules: {imported}"
