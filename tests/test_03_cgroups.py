"""Chapter 03: cgroups: memory, CPU, pids and cpuset limits, OOM, stats, the container's view, clean-up.

Real kernel first (this host is hybrid: v1 controllers, hugetlb alone on v2); the v2 backend, which
this host cannot show, is checked against a fake cgroupfs in a temp dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidocker import doctor
from minidocker.cgroups import stage as cgroups
from minidocker.cgroups import v2 as cgroups_v2
from minidocker.cgroups.cgroup import Hierarchy
from minidocker.cgroups.stage import Cgroup, Limits, cgroup_mode, hierarchies, parse_limits, parse_size
from minidocker.core import paths as _paths
from minidocker.core.process import EngineError
from minidocker.rootfs import busybox_binary

MODE = cgroup_mode()
needs_v1 = pytest.mark.skipif(MODE not in ("v1", "hybrid"),
                              reason=f"this host's cgroups are {MODE}: no v1 controllers to write to")


def parent_dirs() -> list[Path]:
    """This run's cgroup parent in every tree (all must be gone when no container runs)."""
    return [h.mountpoint / _paths.cgroup_parent() for h in hierarchies()]


def running_cgroup() -> Cgroup:
    """The cgroup of the one container running now under this run's parent."""
    for base in parent_dirs():
        if base.is_dir():
            ids = [p.name for p in base.iterdir() if p.is_dir()]
            assert len(ids) == 1, ids
            return Cgroup.open(ids[0])
    raise AssertionError("no container cgroup")


def start_held(argv: list[str]) -> tuple[int, int]:
    """Fork a child that waits for a byte before exec'ing ``argv``: (pid, fd to release it)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.read(r, 1)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(r)
    return pid, w


# -- the chapter's goal, on the real kernel -------------------------------------------------------

def test_done_when_memory_hog_is_oom_killed(stage, rootfs):
    """dd's 64 MiB buffer, written by read(2) from /dev/zero, cannot fit in 32 MiB."""
    result = stage("cgroups", "--memory", "32m", rootfs, "--", "/bin/sh", "-c",
                   "dd if=/dev/zero of=/dev/null bs=64M count=1")
    assert result.returncode == 137, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("minidocker: the container ran out of memory (limit 32 MiB)"), lines
    assert not any(d.exists() for d in parent_dirs())


def test_the_same_hog_under_the_limit_succeeds(stage, rootfs):
    result = stage("cgroups", "--memory", "32m", rootfs, "--", "/bin/sh", "-c",
                   "dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null && echo done")
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")


def test_sigkill_without_oom_is_137_but_not_reported_as_oom(stage, rootfs):
    result = stage("cgroups", "--memory", "32m", rootfs, "--", "/bin/sh", "-c",
                   "sh -c 'kill -KILL $$'; exit $?")
    assert result.returncode == 137 and "memory" not in result.stderr


def test_fork_loop_cannot_exceed_pids_limit(stage, rootfs):
    """100 background sleeps asked for, 20 tasks allowed: forks fail, the count stays <= 20."""
    script = ("d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup; "
              "sh -c 'i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done' 2>/dev/null; "
              "read n < $d/pids.current; echo $n; read k failed < $d/pids.events; echo $failed")
    started = time.monotonic()
    result = stage("cgroups", "--pids-limit", "20", rootfs, "--", "/bin/sh", "-c", script, timeout=30)
    current, failed = (int(x) for x in result.stdout.split())
    assert 10 <= current <= 20, result.stdout
    assert failed >= 1  # the kernel refused at least one fork
    assert time.monotonic() - started < 10  # the host stayed responsive enough to finish quickly


def test_busy_loop_under_cpus_quarter_uses_a_quarter(rootfs):
    """Measured from the cgroup's own CPU accounting over 2 s of wall time.

    The CFS quota is a ceiling (25 ms per 100 ms period), so the upper bound is tight, and a loop
    that reaches it is throttled. A loaded machine can only give the loop *less* (its cgroup's
    parent competes with everything else at the root), hence the generous lower bound.
    """
    cmd = [sys.executable, "-m", "minidocker.cgroups", "--cpus", "0.25", rootfs, "--", "/bin/sh", "-c",
           "sh -c 'while :; do :; done' & echo ready; sleep 4; kill $!"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline() == "ready\n"
            cgroup = running_cgroup()
            time.sleep(0.3)
            before, t0 = cgroup.stats(), time.monotonic()
            time.sleep(2)
            after, t1 = cgroup.stats(), time.monotonic()
        finally:
            proc.kill()
            proc.wait()
    used = (after.cpu_ns - before.cpu_ns) / 1e9 / (t1 - t0)
    assert 0.05 <= used <= 0.32, f"{used:.2f} CPUs"
    assert after.throttled_periods > before.throttled_periods  # without a quota: never throttled
    assert after.throttled_ns > before.throttled_ns


def test_cpuset_pins_the_container(stage, rootfs):
    result = stage("cgroups", "--cpuset-cpus", "0", rootfs, "--", "/bin/sh", "-c",
                   "grep Cpus_allowed_list /proc/self/status")
    assert result.stdout.split() == ["Cpus_allowed_list:", "0"], result.stderr


def test_container_sees_its_cgroup_as_root_and_read_only(rootfs):
    """Inside: every controller's cgroup is "/", /sys/fs/cgroup is read-only. Outside: the real path."""
    script = ("cat /proc/self/cgroup; echo 1 > /sys/fs/cgroup/x; "
              "cat /sys/fs/cgroup/*/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; echo ready; read x")
    cmd = [sys.executable, "-m", "minidocker.cgroups", "--pids-limit", "50", rootfs, "--", "/bin/sh", "-c",
           script]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        lines = []
        while (line := proc.stdout.readline()) not in ("ready\n", ""):  # "": it failed, see stderr
            lines.append(line)
        assert line == "ready\n", proc.communicate()[1]
        cgroup = running_cgroup()
        (pid1,) = cgroup.pids()  # the shell, waiting in its built-in read
        host_view = Path(f"/proc/{pid1}/cgroup").read_text()
        _, err = proc.communicate("\n", timeout=30)
    assert proc.returncode == 0, err
    joined = {c for h in cgroup.hierarchies for c in h.controllers}
    for line in lines[:-1]:
        _, controllers, path = line.strip().split(":", 2)
        if set(controllers.split(",")) & joined:
            assert path == "/", lines
    assert f"/{cgroup.name}" in host_view  # on the host: under the parent, from the tree's root
    assert "Read-only file system" in err
    assert lines[-1] == "50\n"


def test_the_stage_keeps_the_exit_status_contract(stage, rootfs):
    assert stage("cgroups", "--memory", "64m", rootfs, "--", "/bin/sh", "-c", "exit 42").returncode == 42
    assert stage("cgroups", "--pids-limit", "5", rootfs, "--", "nope").returncode == 127
    assert stage("cgroups", "--cpus", "1", "/nonexistent", "--", "/bin/true").returncode == 125
    assert stage("cgroups", "--userns", "--memory", "64m", rootfs, "--", "/bin/true").returncode == 0


@needs_v1
def test_cgroup_is_made_from_the_tree_root_not_our_own_cgroup():
    """This session's own processes sit in a nested memory cgroup; containers must not."""
    ours = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    cgroup = Cgroup.create("root-check", Limits(memory=64 << 20))
    try:
        memory_tree = next(h for h in cgroup.hierarchies if "memory" in h.controllers)
        assert cgroup.path("memory") == memory_tree.mountpoint / _paths.cgroup_parent() / "root-check"
        if ours.get("memory", "/") != "/":
            assert ours["memory"].strip("/") not in str(cgroup.path("memory"))
    finally:
        cgroup.remove()


@needs_v1
def test_v1_backend_writes_the_real_files():
    limits = parse_limits(memory="48m", memory_swap="96m", cpus="0.5", cpu_shares="512", pids_limit="20",
                          cpuset_cpus="0")
    cgroup = Cgroup.create("v1-files", limits)
    try:
        def read(controller: str, name: str) -> str:
            return (cgroup.path(controller) / name).read_text().strip()

        assert read("memory", "memory.limit_in_bytes") == str(48 << 20)
        if (cgroup.path("memory") / "memory.memsw.limit_in_bytes").exists():
            assert read("memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
        assert (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")) == ("50000", "100000")
        assert read("cpu", "cpu.shares") == "512"
        assert read("pids", "pids.max") == "20"
        assert (read("cpuset", "cpuset.cpus"), read("cpuset", "cpuset.mems")) == ("0", "0")
        stats = cgroup.stats()
        assert (stats.memory_limit, stats.pids_limit, stats.pids) == (48 << 20, 20, 0)
        # cgroup.procs: a process joins every tree at once
        pid, go = start_held(["/bin/sleep", "30"])
        cgroup.add(pid)
        for directory in cgroup.directories:
            assert str(pid) in (directory / "cgroup.procs").read_text().split()
        assert cgroup.pids() == {pid} and cgroup.stats().pids == 1
        os.close(go)
    finally:
        cgroup.remove()
    os.waitpid(pid, 0)
    assert not any(d.exists() for d in cgroup.directories)
    assert not any(d.exists() for d in parent_dirs())  # the parent went with its last child


def test_oom_is_known_from_the_cgroup_and_peak_memory_is_kept():
    cgroup = Cgroup.create("oom-api", Limits(memory=16 << 20))
    try:
        hog = [str(busybox_binary()), "dd", "if=/dev/zero", "of=/dev/null", "bs=48M", "count=1"]
        pid, go = start_held(hog)
        cgroup.add(pid)
        os.close(go)
        _, status = os.waitpid(pid, 0)
        assert os.WTERMSIG(status) == signal.SIGKILL
        assert cgroup.oom_killed() and cgroup.stats().oom_kills == 1
        peak = cgroup.stats().memory_peak
        assert peak is None or 15 << 20 <= peak <= 16 << 20
    finally:
        cgroup.remove()


def test_a_process_cgroup_is_found_from_proc_and_the_mount_table():
    """How docker exec and docker stats find a container's cgroup: from its PID 1, whatever the parent."""
    cgroup = Cgroup.create("found", Limits(memory=32 << 20), parent=f"{_paths.cgroup_parent()}/elsewhere")
    try:
        pid, go = start_held(["/bin/sleep", "30"])
        cgroup.add(pid)
        found = Cgroup.of_process(pid)
        assert (found.name, found.version, found.directories) == (cgroup.name, cgroup.version,
                                                                  cgroup.directories)
        assert found.stats().memory_limit == 32 << 20 and found.stats().pids == 1
        os.close(go)
    finally:
        cgroup.remove()
    os.waitpid(pid, 0)
    with pytest.raises(EngineError, match="gone"):
        Cgroup.of_process(pid)


def test_remove_kills_what_is_left_and_leaves_nothing():
    cgroup = Cgroup.create("leftovers")
    pid, go = start_held(["/bin/sh", "-c", "sleep 60 & sleep 60 & sleep 60"])
    cgroup.add(pid)
    os.close(go)
    deadline = time.monotonic() + 5
    while len(cgroup.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cgroup.pids()) >= 3
    cgroup.remove()
    cgroup.remove()  # twice is fine
    os.waitpid(pid, 0)
    assert not any(d.exists() for d in cgroup.directories + parent_dirs())


def test_engine_killed_still_removes_the_cgroup(rootfs):
    """SIGKILL leaves the engine no chance to clean up: its watchdog does it."""
    cmd = [sys.executable, "-m", "minidocker.cgroups", "--memory", "64m", rootfs, "--", "/bin/sh", "-c",
           "echo ready; exec sleep 30"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline() == "ready\n"
        directories = running_cgroup().directories
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while any(d.exists() for d in directories) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(d.exists() for d in directories + parent_dirs())


def test_the_watchdog_waits_as_a_small_shell_not_a_copy_of_the_engine(rootfs):
    """A fork of the Python engine would soon own megabytes (7 MiB in a daemon's monitor); ``sh`` does not."""
    cmd = [sys.executable, "-m", "minidocker.cgroups", rootfs, "--", "/bin/sh", "-c",
           "echo ready; read line || exit 0"]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline() == "ready\n"
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            argvs = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children}
            watchdog = next((pid for pid, argv in argvs.items() if argv[:2] == [b"sh", b"-c"]), None)
            assert watchdog, f"no shell among the engine's children: {argvs}"
            rollup = Path(f"/proc/{watchdog}/smaps_rollup").read_text().splitlines()
            pss_kib = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
            assert pss_kib < 1024, f"the watchdog's PSS is {pss_kib} KiB"
        finally:
            proc.stdin.close()  # the container reads EOF and exits; the engine tells the watchdog
            assert proc.wait(timeout=10) == 0


def test_the_same_id_twice_is_refused_and_the_first_kept():
    first = Cgroup.create("twice")
    try:
        with pytest.raises(EngineError, match="already exists"):
            Cgroup.create("twice")
        assert all(d.is_dir() for d in first.directories)
    finally:
        first.remove()


def test_the_leak_check_sees_and_removes_a_leaked_container_cgroup():
    """tests/leaks.py's probe and remover, on a cgroup left with a live process in it."""
    from tests import leaks

    before = leaks.cgroups()
    cgroup = Cgroup.create("leaked")
    pid, go = start_held(["/bin/sleep", "60"])
    cgroup.add(pid)
    os.close(go)
    leaked = leaks.cgroups() - before
    assert leaked == {str(d) for d in parent_dirs() if d.exists()} and leaked
    for path in leaked:
        leaks.PROBES["cgroups"][1](path)
    os.waitpid(pid, 0)
    assert leaks.cgroups() == before and not any(d.exists() for d in cgroup.directories)


# -- bad input: one line, exit 125, nothing created -----------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    (["--memory", "64x"], """invalid argument "64x" for "--memory" flag: invalid size: '64x'"""),
    (["--memory", "1m"], "the minimum is 6m"),
    (["--memory-swap", "1g"], "--memory-swap needs --memory"),
    (["--memory", "64m", "--memory-swap", "32m"], "must be at least --memory"),
    (["--cpus", "0.001"], "the range is 0.01 to"),
    (["--cpus", str((os.cpu_count() or 1) + 1)], "the range is 0.01 to"),
    (["--cpus", "half"], "must be a number"),
    (["--cpu-shares", "1"], "the range is 2 to 262144"),
    (["--pids-limit", "ten"], "must be a whole number"),
    (["--pids-limit", "99999999999"], "the kernel allows at most 4194304"),
    (["--memory", "100000p"], "the largest size the kernel takes is 8 EiB"),
    (["--cpuset-cpus", "99"], "this host has CPUs 0-"),
    (["--cpuset-cpus", "0-x"], "use CPU numbers and ranges"),
])
def test_bad_limits_are_one_line_and_create_nothing(stage, rootfs, options, message):
    result = stage("cgroups", *options, rootfs, "--", "/bin/true")
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not any(d.exists() for d in parent_dirs())


@needs_v1
def test_a_cgroup_that_cannot_be_made_is_125_and_nothing_is_left(rootfs):
    """The pids tree read-only (in a private mount namespace): the trees before it are cleaned up."""
    pids_tree = next(h.mountpoint for h in hierarchies() if "pids" in h.controllers)
    script = (f"mount -o remount,bind,ro {pids_tree} && exec {sys.executable} -m minidocker.cgroups "
              f"--pids-limit 10 {rootfs} -- /bin/true")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 125
    assert result.stderr.startswith("minidocker: cannot create cgroup") and "Read-only" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not any(d.exists() for d in parent_dirs())


# -- parsing, as Docker does it -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "size"), [
    ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29), ("512k", 512 << 10),
    ("64MiB", 64 << 20), ("64mb", 64 << 20), ("1048576", 1 << 20), ("100b", 100), (4096, 4096),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "64x", "-1", "1.2.3g", "64 m b x", "0x10", "64mbb", "64ib",
                                  " 64m"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError) as error:
        parse_size(text)
    assert str(error.value) == f"invalid size: '{text}'"  # Docker's words


def test_parse_limits_defaults_like_docker():
    assert parse_limits() == Limits()
    limits = parse_limits(memory="64m", cpus="0.5", cpu_shares="512", pids_limit="100", cpuset_cpus="0")
    assert limits == Limits(64 << 20, 128 << 20, 0.5, 512, 100, "0")  # swap: as much as memory
    assert parse_limits(memory="64m", memory_swap="-1").memory_swap == -1
    assert parse_limits(memory="0", pids_limit="-1", cpus="0") == Limits()  # 0/-1: no limit
    assert limits.controllers() == {"memory", "cpu", "pids", "cpuset"}


# -- discovering the trees, and the v2 backend on a fake cgroupfs ---------------------------------

def mountinfo_file(tmp_path: Path, *mounts: tuple[str, str, str]) -> str:
    path = tmp_path / "mountinfo"
    lines = [f"{30 + i} 1 0:{40 + i} / {point} rw,relatime - {fstype} {fstype} {options}\n"
             for i, (fstype, point, options) in enumerate(mounts)]
    path.write_text("".join(lines))
    return str(path)


def test_hierarchies_from_the_mount_table(tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    table = mountinfo_file(tmp_path, ("tmpfs", "/sys/fs/cgroup", "rw"),
                           ("cgroup", "/sys/fs/cgroup/cpu,cpuacct", "rw,cpu,cpuacct"),
                           ("cgroup", "/sys/fs/cgroup/memory", "rw,memory"),
                           ("cgroup", "/sys/fs/cgroup/systemd", "rw,xattr,name=systemd"),
                           ("cgroup", "/sys/fs/cgroup/my\\040pids", "rw,pids"),
                           ("cgroup2", str(unified), "rw,nsdelegate"))
    found = hierarchies(table)
    assert [(h.version, h.mountpoint.name, sorted(h.controllers)) for h in found] == [
        (1, "cpu,cpuacct", ["cpu", "cpuacct"]), (1, "memory", ["memory"]), (1, "my pids", ["pids"]),
        (2, "unified", ["hugetlb"])]
    assert cgroup_mode(table) == "hybrid"
    assert doctor.cgroup_mode is cgroups.cgroup_mode  # one probe, owned by this chapter


@pytest.fixture
def fake_v2(tmp_path: Path) -> Hierarchy:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return Hierarchy(2, root, frozenset({"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}))


def test_a_hybrid_hosts_v2_only_controller_is_one_clear_error(tmp_path, fake_v2):
    """A limit whose controller lives only on the v2 tree of a hybrid host: say so, make nothing."""
    memory = tmp_path / "memory"
    memory.mkdir()
    v1 = Hierarchy(1, memory, frozenset({"memory"}))
    v2 = Hierarchy(2, fake_v2.mountpoint, frozenset({"pids"}))
    with pytest.raises(EngineError, match="pids cgroup controller is on this hybrid host's v2 tree"):
        Cgroup.create("abc", Limits(pids=10), parent="minidocker", found=[v1, v2])
    assert list(memory.iterdir()) == [] and not (fake_v2.mountpoint / "minidocker").exists()


def test_v2_backend_writes_the_right_files(fake_v2):
    limits = parse_limits(memory="64m", cpus="0.5", cpu_shares="1024", pids_limit="20", cpuset_cpus="0")
    cgroup = Cgroup.create("abc", limits, parent="minidocker", found=[fake_v2])
    directory = fake_v2.mountpoint / "minidocker" / "abc"
    assert (cgroup.version, cgroup.directories, cgroup.path("memory")) == (2, [directory], directory)

    def read(name: str) -> str:
        return (directory / name).read_text()

    assert read("memory.max") == str(64 << 20)
    assert read("cpu.max") == "50000 100000"
    assert read("cpu.weight") == "39"  # runc's conversion of the default 1024 shares
    assert read("pids.max") == "20"
    assert read("cpuset.cpus") == "0"
    # the root hands controllers down to minidocker/ (the fake has no kernel to propagate them,
    # so only the root's write shows)
    assert (fake_v2.mountpoint / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    cgroup.add(4242)
    assert read("cgroup.procs") == "4242"


def test_v2_swap_is_swap_alone_and_stats_parse(fake_v2):
    directory = fake_v2.mountpoint / "c"
    directory.mkdir()
    (directory / "memory.swap.max").write_text("max")
    cgroups_v2.write_limits(directory, Limits(memory=64 << 20, memory_swap=96 << 20))
    assert (directory / "memory.swap.max").read_text() == str(32 << 20)
    cgroups_v2.write_limits(directory, Limits(memory=64 << 20, memory_swap=-1))
    assert (directory / "memory.swap.max").read_text() == "max"
    files = {"memory.current": "1000\n", "memory.peak": "5000\n", "memory.max": "max\n",
             "pids.current": "3\n", "pids.max": "max\n",
             "cpu.stat": "usage_usec 250\nuser_usec 200\nsystem_usec 50\nnr_periods 10\n"
                         "nr_throttled 4\nthrottled_usec 700\n",
             "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n"}
    for name, text in files.items():
        (directory / name).write_text(text)
    stats = cgroups_v2.read_stats(directory)
    assert (stats.memory, stats.memory_peak, stats.memory_limit, stats.pids, stats.pids_limit) == (
        1000, 5000, None, 3, None)
    assert (stats.cpu_ns, stats.periods, stats.throttled_periods, stats.throttled_ns) == (
        250_000, 10, 4, 700_000)
    assert stats.oom_kills == 1


def test_shares_to_weight_like_runc():
    assert [cgroups_v2.shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]


def test_frozen_stops_every_process_and_lets_them_go(tmp_path):
    """The freezer (``docker pause``): nothing of the cgroup runs inside the block, all of it after."""
    counter = tmp_path / "counter"
    cgroup = Cgroup.create("freeze-api")
    loop = f"import time\nn = 0\nwhile True:\n    n += 1\n    open({str(counter)!r}, 'w').write(str(n))\n" \
           "    time.sleep(0.001)"
    child = subprocess.Popen([sys.executable, "-c", loop])
    try:
        cgroup.add(child.pid)
        while not counter.exists() or not counter.read_text():
            time.sleep(0.01)
        with cgroup.frozen():
            before = counter.read_text()
            time.sleep(0.2)
            assert counter.read_text() == before  # frozen: not one more write
        time.sleep(0.2)
        assert counter.read_text() != before  # thawed: running again
    finally:
        cgroup.remove()
        child.wait()
