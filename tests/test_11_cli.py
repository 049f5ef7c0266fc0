"""Chapter 11, driven by our own client: the ``minidocker`` command against a daemon on a private socket."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time

import pytest

from minidocker.cgroups.cgroup import cgroup_mode
from tests.helpers_10_daemon import daemon_fixture


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def test_version_and_info(daemon):
    version = daemon.cli("version")
    assert version.returncode == 0 and "API version:      1.50" in version.stdout
    info = daemon.cli("info")
    assert info.returncode == 0 and re.search(r"Containers: \d+", info.stdout)
    assert "Storage Driver: overlay2" in info.stdout


def test_pull_and_images(daemon):
    pulled = daemon.cli("pull", "busybox")
    assert pulled.returncode == 0, pulled.stderr
    assert "Digest: sha256:" in pulled.stdout
    assert "Status: Image is up to date for busybox:latest" in pulled.stdout
    images = daemon.cli("images")
    assert images.stdout.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert re.search(r"^busybox\s+latest\s+[0-9a-f]{12}\s", images.stdout, re.M)


def test_run_rm_output_and_exit_code(daemon):
    result = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert daemon.cli("run", "--rm", "busybox", "nope").returncode == 127
    assert daemon.cli("run", "--rm", "busybox", "/etc/passwd").returncode == 126
    assert daemon.cli("ps", "-aq").stdout == ""  # --rm removed them all


def test_run_d_logs_follow_stop_rm(daemon):
    cid = daemon.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                     "trap 'echo bye; exit 0' TERM; for i in 1 2 3; do echo tick $i; done; "
                     "while true; do sleep 0.1; done").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    follower = subprocess.Popen([sys.executable, "-m", "minidocker", "-H", daemon.host, "logs", "-f",
                                 "ticker"], stdout=subprocess.PIPE, text=True, env=daemon.env)
    try:
        assert [follower.stdout.readline() for _ in range(3)] == ["tick 1\n", "tick 2\n", "tick 3\n"]
        assert daemon.cli("stop", "-t", "5", "ticker").stdout == "ticker\n"
        assert follower.stdout.read() == "bye\n"  # the follow ends with the container
        assert follower.wait(timeout=10) == 0
    finally:
        follower.kill()
        follower.wait()
    ps = daemon.cli("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}")
    assert re.search(r"^ticker exited Exited \(0\) ", ps.stdout, re.M)
    assert daemon.cli("logs", "ticker").stdout == "tick 1\ntick 2\ntick 3\nbye\n"
    assert daemon.cli("rm", "ticker").returncode == 0
    assert "ticker" not in daemon.cli("ps", "-a").stdout


def test_exec_inspect_ps(daemon):
    daemon.cli("run", "-d", "--name", "box", "-e", "GREETING=hi", "busybox", "sleep", "60")
    try:
        result = daemon.cli("exec", "-e", "X=1", "box", "sh", "-c", 'echo "$GREETING $X $(hostname)"; exit 4')
        assert result.returncode == 4
        greeting, x, hostname = result.stdout.split()
        assert (greeting, x) == ("hi", "1")
        info = json.loads(daemon.cli("inspect", "box").stdout)[0]
        assert info["State"]["Running"] is True and info["Config"]["Hostname"] in ("", hostname)
        assert info["Id"].startswith(hostname) and info["Name"] == "/box"
        assert daemon.cli("exec", "box", "nope").returncode == 127
        assert daemon.cli("inspect", "-f", "{{.State.Status}}", "box").stdout == "running\n"
        ps = daemon.cli("ps").stdout.splitlines()
        assert ps[0].split()[:2] == ["CONTAINER", "ID"] and any(line.endswith("box") for line in ps)
        # Removing a running container needs force: 409, and nothing changes.
        refused = daemon.cli("rm", "box")
        assert refused.returncode == 1 and "Stop the container" in refused.stderr
    finally:
        assert daemon.cli("rm", "-f", "box").returncode == 0


def test_rmi_and_tag(daemon):
    assert daemon.cli("tag", "busybox", "mine:1").returncode == 0
    assert "mine" in daemon.cli("images").stdout
    removed = daemon.cli("rmi", "mine:1")
    assert removed.returncode == 0 and removed.stdout == "Untagged: mine:1\n"
    assert daemon.cli("rmi", "nothing:here").returncode == 1


def test_name_conflict_and_missing_things(daemon):
    daemon.cli("create", "--name", "twice", "busybox", "true")
    try:
        again = daemon.cli("run", "--name", "twice", "busybox", "true")
        assert again.returncode == 125 and "is already in use" in again.stderr
    finally:
        daemon.cli("rm", "twice")
    missing = daemon.cli("logs", "nobody-here")
    assert missing.returncode == 1
    assert missing.stderr == "Error response from daemon: No such container: nobody-here\n"


def test_volumes_named_and_bind(daemon, tmp_path):
    assert daemon.cli("volume", "create", "data").stdout == "data\n"
    try:
        daemon.cli("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        kept = daemon.cli("run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f")
        assert kept.stdout == "kept\n"
        ro = daemon.cli("run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g")
        assert ro.returncode == 1 and "Read-only file system" in ro.stderr
        (tmp_path / "host.txt").write_text("from the host\n")
        bind = daemon.cli("run", "--rm", "-v", f"{tmp_path}:/mnt", "busybox", "cat", "/mnt/host.txt")
        assert bind.stdout == "from the host\n"
        assert "data" in daemon.cli("volume", "ls").stdout
        assert json.loads(daemon.cli("volume", "inspect", "data").stdout)[0]["Name"] == "data"
    finally:
        assert daemon.cli("volume", "rm", "data").stdout == "data\n"


def test_limits_and_oom(daemon):
    result = daemon.cli("run", "--rm", "--memory", "32m", "--pids-limit", "20", "busybox", "sh", "-c",
                        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                        "2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    assert result.stdout.split() == ["33554432", "20"], result.stderr
    daemon.cli("run", "--name", "hog", "--memory", "16m", "busybox", "sh", "-c",
               "dd if=/dev/zero bs=1M count=64 | cat > /dev/shm/x; tail /dev/zero")
    try:
        state = json.loads(daemon.cli("inspect", "hog").stdout)[0]["State"]
        assert state["ExitCode"] == 137 and state["OOMKilled"] is True
    finally:
        daemon.cli("rm", "hog")


def test_interactive_terminal(daemon):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "minidocker", "-H", daemon.host, "run", "-it", "--rm",
                                           "busybox", "sh"], env=daemon.env, encoding="utf-8", timeout=20,
                          dimensions=(30, 100))
    try:
        child.expect(r"# ")
        child.sendline("echo $((6*7)); stty size")
        child.expect("42")
        child.expect("30 100")
        child.setwinsize(40, 120)  # SIGWINCH -> resize -> the container's terminal
        time.sleep(0.3)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("sleep 30")  # Ctrl-C reaches the container's foreground job
        time.sleep(0.3)
        child.sendcontrol("c")
        child.expect(r"# ")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 7


def test_daemon_not_reachable_says_how_to_start_it(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minidocker", "-H", f"unix://{tmp_path}/none.sock", "ps"],
                            capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "minidocker daemon start" in result.stderr


def test_ps_imports_nothing_heavy():
    code = ("import sys; from minidocker.client import cli; sys.argv=['minidocker','ps']; "
            "import minidocker.client.containers, minidocker.client.client; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('aiohttp', 'pyroute2', 'docker', 'asyncio')"
            " or m in ('minidocker.daemon.server', 'minidocker.daemon.monitor',"
            " 'minidocker.daemon.supervisor')]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_ps_images_and_run_stay_within_their_import_budget(daemon):
    """The commands typed most import ~45 modules and none of the dear ones: counted, not timed.

    Each module named here cost 2-30 ms of every ``minidocker ps`` when it crept in (``http.client``
    brings the ``email`` package; ``ssl`` is for TLS hosts only); a count catches the rest.
    """
    dear = ("http", "email", "ssl", "urllib", "typing", "shutil", "datetime", "dataclasses", "inspect",
            "asyncio", "aiohttp", "pyroute2")
    for verb in (["ps"], ["images"], ["images", "-a", "--digests"], ["images", "--format", "{{json .ID}}"]):
        code = ("import sys; before = set(sys.modules); from minidocker.client.cli import main; "
                f"status = main(['-H', {daemon.host!r}, *{verb!r}]); "
                "print(status, sorted(set(sys.modules) - before))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=daemon.env)
        status, _, modules = result.stdout.splitlines()[-1].partition(" ")
        imported = ast.literal_eval(modules)
        assert status == "0", result.stderr
        assert [m for m in imported if m.split(".")[0] in dear] == [], verb
        assert len(imported) <= 60, f"{verb} imports {len(imported)} modules: {imported}"
        # each of these imports enum (4-5 ms): ps and images parse flags and JSON without them
        lean = ("argparse", "re", "enum", "socket", "json", "signal", "threading", "collections")
        assert [m for m in imported if m.split(".")[0] in lean] == [], (verb, imported)
        assert len(imported) <= 25, f"{verb} imports {len(imported)} modules: {imported}"

    lean = ("argparse", "re", "enum", "socket", "json", "signal", "threading", "collections", "typing",
            "shutil", "termios", "contextlib")
    code = ("import sys; before = set(sys.modules); from minidocker.client.cli import main; "
            f"status = main(['-H', {daemon.host!r}, 'run', '--rm', '--network', 'none', 'busybox', 'true']); "
            "print(status, sorted(set(sys.modules) - before))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=daemon.env)
    status, _, modules = result.stdout.splitlines()[-1].partition(" ")
    imported = ast.literal_eval(modules)
    assert status == "0", result.stderr
    assert [m for m in imported if m.split(".")[0] in lean + dear] == [], imported
    assert len(imported) <= 25, f"run imports {len(imported)} modules: {imported}"


def test_stats_diff_commit(daemon):
    daemon.cli("run", "-d", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c",
               "echo x > /added; rm /etc/group; sleep 60")
    try:
        time.sleep(0.5)
        stats = daemon.cli("stats", "--no-stream", "busy")
        header, row = stats.stdout.splitlines()
        assert header.split()[:3] == ["CONTAINER", "ID", "NAME"]
        assert row.split()[1] == "busy" and "/ 67.1MB" in row, stats.stdout
        assert daemon.cli("diff", "busy").stdout.splitlines() == ["A /added", "C /etc", "D /etc/group"]
        image_id = daemon.cli("commit", "busy", "snap:1").stdout.strip()
        assert image_id.startswith("sha256:")
        result = daemon.cli("run", "--rm", "snap:1", "sh", "-c", "cat /added; ls /etc/group")
        assert result.stdout == "x\n" and result.returncode == 1
    finally:
        daemon.cli("rm", "-f", "busy")
        daemon.cli("rmi", "snap:1")


def test_stats_info_and_exec_go_through_chapter_03s_cgroup(daemon):
    """No limit is the host's memory (not v1's 2**63), the version is the mount table's, exec joins."""
    daemon.cli("run", "-d", "--name", "free", "busybox", "sleep", "60")
    try:
        info = daemon.client.json("GET", "/info")
        assert info["CgroupVersion"] == ("2" if cgroup_mode() == "v2" else "1")
        s = json.loads(daemon.client.request("GET", "/containers/free/stats", {"stream": False}).read())
        assert s["memory_stats"]["limit"] == info["MemTotal"] and s["pids_stats"]["current"] == 1
        assert s["memory_stats"]["usage"] > 0 and s["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        # in the container's cgroup namespace its cgroup is "/": an exec outside it would see "/.."
        inside = daemon.cli("exec", "free", "cat", "/proc/self/cgroup").stdout.splitlines()
        assert inside and all(line.endswith(":/") for line in inside), inside
    finally:
        daemon.cli("rm", "-f", "free")


def test_save_and_load(daemon, tmp_path):
    daemon.cli("tag", "busybox", "saved:1")
    assert daemon.cli("save", "-o", str(tmp_path / "img.tar"), "saved:1").returncode == 0
    assert daemon.cli("rmi", "saved:1").returncode == 0
    loaded = daemon.cli("load", "-i", str(tmp_path / "img.tar"))
    assert loaded.returncode == 0 and "saved:1" in loaded.stdout, loaded.stderr
    assert daemon.cli("run", "--rm", "saved:1", "echo", "back").stdout == "back\n"
    daemon.cli("rmi", "saved:1")


def test_exec_interactive_terminal(daemon):
    pexpect = pytest.importorskip("pexpect")
    daemon.cli("run", "-d", "--name", "shell", "busybox", "sleep", "60")
    command = ["-m", "minidocker", "-H", daemon.host, "exec", "-it", "shell", "sh"]
    child = pexpect.spawn(sys.executable, command, env=daemon.env, encoding="utf-8", timeout=20,
                          dimensions=(25, 90))
    try:
        child.expect(r"# ")
        child.sendline("stty size; echo $TERM")
        child.expect("25 90")
        child.expect("xterm")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        daemon.cli("rm", "-f", "shell")
    assert child.exitstatus == 5


def test_user_workdir_env_hostname_and_hardening(daemon):
    script = 'echo "$A $(pwd) $(id -u) $(hostname)"; grep CapEff /proc/self/status'
    result = daemon.cli("run", "--rm", "-e", "A=1", "-w", "/tmp/new", "-u", "nobody", "--hostname", "hh",
                        "busybox", "sh", "-c", script)
    assert result.stdout == "1 /tmp/new 65534 hh\nCapEff:\t0000000000000000\n", result.stderr
    root = daemon.cli("run", "--rm", "busybox", "grep", "-E", "CapEff|Seccomp:", "/proc/self/status")
    assert root.stdout == "CapEff:\t00000000a80425fb\nSeccomp:\t2\n"  # Docker's default set, filtered
    privileged = daemon.cli("run", "--rm", "--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert privileged.stdout == "Seccomp:\t0\n"
    daemon.cli("run", "-d", "--name", "hard", "busybox", "sleep", "60")
    try:  # an exec'd process gets the same restrictions as PID 1
        exec_ = daemon.cli("exec", "-u", "nobody", "hard", "sh", "-c",
                           "id -u; grep Seccomp: /proc/self/status")
        assert exec_.stdout == "65534\nSeccomp:\t2\n"
    finally:
        daemon.cli("rm", "-f", "hard")


def test_cp_pause_rename_top(daemon, tmp_path):
    """``cp`` both ways (a file, a directory, ``-`` as a tar), ``pause``/``unpause``, ``rename``, ``top``."""
    assert daemon.cli("run", "-d", "--name", "box", "busybox", "sh", "-c",
                      "mkdir -p /srv/d && echo made > /srv/d/a && ln -s a /srv/d/link && sleep 60"
                      ).returncode == 0
    try:
        (tmp_path / "in.txt").write_text("hello\n")
        copied = daemon.cli("cp", str(tmp_path / "in.txt"), "box:/srv/renamed.txt")
        assert copied.returncode == 0, copied.stderr
        assert daemon.cli("exec", "box", "cat", "/srv/renamed.txt").stdout == "hello\n"
        for _ in range(50):
            if daemon.cli("exec", "box", "test", "-L", "/srv/d/link").returncode == 0:
                break
            time.sleep(0.1)
        out = daemon.cli("cp", "box:/srv/d", str(tmp_path / "copy"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "copy" / "a").read_text() == "made\n"
        assert os.readlink(tmp_path / "copy" / "link") == "a"
        (tmp_path / "into").mkdir()
        assert daemon.cli("cp", "box:/srv/d/a", str(tmp_path / "into")).returncode == 0
        assert (tmp_path / "into" / "a").read_text() == "made\n"
        tar = subprocess.run([sys.executable, "-m", "minidocker", "-H", daemon.host, "cp", "box:/srv/d/a",
                              "-"], capture_output=True, env=daemon.env)
        assert tar.returncode == 0 and b"made\n" in tar.stdout and tar.stdout[257:262] == b"ustar"
        assert daemon.cli("pause", "box").stdout == "box\n"
        assert "(Paused)" in daemon.cli("ps", "--format", "{{.Status}}").stdout
        assert daemon.cli("unpause", "box").stdout == "box\n"
        assert daemon.cli("rename", "box", "crate").returncode == 0
        top = daemon.cli("top", "crate")
        assert top.returncode == 0 and top.stdout.split()[0] == "UID" and "sleep 60" in top.stdout
        assert daemon.cli("update", "--pids-limit", "30", "--restart", "always", "crate").stdout == "crate\n"
        host = json.loads(daemon.cli("inspect", "crate").stdout)[0]["HostConfig"]
        assert host["PidsLimit"] == 30 and host["RestartPolicy"]["Name"] == "always"
    finally:
        daemon.cli("rm", "-f", "box")
        daemon.cli("rm", "-f", "crate")


def test_run_flags_of_the_docker_cli(daemon, tmp_path):
    """``--add-host``, ``--dns*``, ``--group-add``, ``--cidfile``, ``--pull never``, ``--platform``,
    ``--log-*``, ``--device``."""
    cidfile = tmp_path / "cid"
    result = daemon.cli("run", "--rm", "--cidfile", str(cidfile), "--add-host", "db:10.1.2.3", "--dns",
                        "9.9.9.9", "--dns-search", "example.com", "--group-add", "tty", "--log-opt",
                        "max-size=1k", "--pull", "never", "--platform", "linux", "busybox", "sh", "-c",
                        "grep -h -e db -e 9.9.9.9 -e search /etc/hosts /etc/resolv.conf; id -G")
    assert result.stdout == "10.1.2.3\tdb\nsearch example.com\nnameserver 9.9.9.9\n0 5\n", result.stderr
    assert len(cidfile.read_text()) == 64
    mapped = daemon.cli("run", "--rm", "--device", "/dev/null:/dev/mynull", "busybox", "stat", "-c", "%t:%T",
                        "/dev/mynull")
    assert mapped.stdout == "1:3\n", mapped.stderr
    again = daemon.cli("run", "--rm", "--cidfile", str(cidfile), "busybox", "true")
    assert again.returncode != 0 and "container ID file found" in again.stderr
    for args, words in ((("--pull", "never", "nosuch/image"), "No such image"),
                        (("--log-driver", "syslog", "busybox"), "no log driver named 'syslog'"),
                        (("--device", "/dev/nope", "busybox"), 'adding custom device "/dev/nope": no such'),
                        (("--add-host", "db", "busybox"), 'bad format for add-host: "db"')):
        refused = daemon.cli("run", "--rm", *args, "true")
        assert refused.returncode != 0 and words in refused.stderr, (args, refused.stderr)


def test_anonymous_volume_removed_by_rm_v(daemon):
    """``run -v /path`` makes an anonymous volume, ``rm -v`` removes it with its container."""
    cid = daemon.cli("run", "-d", "-v", "/scratch", "busybox", "sleep", "30").stdout.strip()
    try:
        listed = daemon.cli("volume", "ls", "-q").stdout.split()
        name = json.loads(daemon.cli("inspect", cid).stdout)[0]["Mounts"][0]["Name"]
        assert name in listed
    finally:
        daemon.cli("rm", "-f", "-v", cid)
    assert name not in daemon.cli("volume", "ls", "-q").stdout.split()


def test_link_and_rm_link(daemon):
    """``run --link NAME:ALIAS``: the alias in /etc/hosts and Docker's variables; ``rm --link`` drops it."""
    daemon.cli("run", "-d", "--name", "linked", "--expose", "80", "busybox", "sleep", "30")
    try:
        result = daemon.cli("run", "--rm", "--name", "linking", "--link", "linked:al", "busybox", "sh", "-c",
                            "grep -cw al /etc/hosts; echo $AL_NAME $AL_PORT_80_TCP_PORT")
        assert result.stdout == "1\n/linking/al 80\n", result.stderr
        daemon.cli("create", "--name", "kept", "--link", "linked:al", "busybox", "true")
        assert daemon.cli("rm", "--link", "/kept/al").returncode == 0
        assert json.loads(daemon.cli("inspect", "kept").stdout)[0]["HostConfig"]["Links"] is None
    finally:
        daemon.cli("rm", "-f", "linked", "kept")


def test_attach_detach_export_import_and_df(daemon, tmp_path):
    """``minidocker attach`` and ctrl-p ctrl-q (the container runs on), ``run -it --detach-keys``,
    ``export -o`` then ``import -c`` from stdin, and ``system df``'s table."""
    pexpect = pytest.importorskip("pexpect")
    base = [sys.executable, "-m", "minidocker", "-H", daemon.host]
    child = pexpect.spawn(base[0], [*base[1:], "run", "-it", "--detach-keys", "ctrl-a,d", "--name", "att",
                                    "busybox", "sh"], env=daemon.env, encoding="utf-8", timeout=15)
    try:
        child.expect(r"# ")
        child.send("echo made > /made\r")
        child.send("\x01d")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        child = pexpect.spawn(base[0], [*base[1:], "attach", "att"], env=daemon.env, encoding="utf-8",
                              timeout=15)
        for _ in range(50):  # what is typed before attach is connected is not kept: until a prompt shows
            child.send("\r")
            try:
                child.expect("# ", timeout=0.3)
                break
            except pexpect.TIMEOUT:
                continue
        child.sendline("echo hel''lo")
        child.expect("hello")
        child.send("\x10\x11")
        child.expect("read escape sequence")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        assert daemon.cli("inspect", "-f", "{{.State.Status}}", "att").stdout == "running\n"
        assert daemon.cli("export", "-o", str(tmp_path / "fs.tar"), "att").returncode == 0
        with open(tmp_path / "fs.tar", "rb") as tar:
            imported = daemon.cli("import", "-c", "CMD cat /made", "-", "flat:cli", stdin=tar)
        assert imported.returncode == 0 and imported.stdout.startswith("sha256:"), imported.stderr
        assert daemon.cli("run", "--rm", "flat:cli").stdout == "made\n"
        df = daemon.cli("system", "df").stdout.splitlines()
        assert re.match(r"TYPE {12}TOTAL {5}ACTIVE {4}SIZE {6}RECLAIMABLE$", df[0])
        assert [line.split()[0] for line in df[1:]] == ["Images", "Containers", "Local", "Build"]
        assert re.match(r"Containers\s+1\s+1\s", df[2])
    finally:
        child.close(force=True)
        daemon.cli("rm", "-f", "att")
        daemon.cli("rmi", "flat:cli")


def test_images_flags_digests_and_filters(daemon):
    """``images`` reads its flags without argparse; an abbreviation goes through argparse: the same output."""
    assert daemon.cli("tag", "busybox", "other/box:2").returncode == 0
    try:
        for quick, slow in ((["-a"], ["--al"]), (["-q"], ["--qui"]), (["--no-trunc"], ["--no-tr"]),
                            (["--digests", "-a"], ["--dig", "--al"])):
            fast, argparsed = daemon.cli("images", *quick), daemon.cli("images", *slow)
            # the two ran a moment apart: "59 seconds ago" may have become "About a minute ago" (and
            # the column's width with it): the cells compared, the CREATED one masked
            fast_out, slow_out = ([["ago" if cell.endswith(" ago") else cell
                                    for cell in re.split(r"\s{2,}", row)]
                                   for row in p.stdout.splitlines()] for p in (fast, argparsed))
            assert fast.returncode == 0 and (fast_out, fast.stderr) == (slow_out, argparsed.stderr)
        digest = daemon.client.json("GET", "/images/busybox/json")["RepoDigests"][0].partition("@")[2]
        table = [line.split() for line in daemon.cli("images", "--digests").stdout.splitlines()]
        assert table[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
        assert ["busybox", "latest", digest] in [row[:3] for row in table]
        assert ["other/box", "2", "<none>"] in [row[:3] for row in table]  # a tag of ours: never pulled
        shown = daemon.cli("images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}")
        assert f"busybox:latest {digest}" in shown.stdout.splitlines()
        for args in (["other/box"], ["-f", "reference=other/*"], ["--filter=reference=*box:2"]):
            rows = daemon.cli("images", *args).stdout.splitlines()[1:]
            assert [row.split()[:2] for row in rows] == [["other/box", "2"]], (args, rows)
        dangling = daemon.client.json("GET", "/images/json", {"filters": '{"dangling": ["true"]}'})
        shown = daemon.cli("images", "-q", "-f", "dangling=true").stdout.split()  # earlier tests' leave some
        assert sorted(shown) == sorted({i["Id"].split(":")[1][:12] for i in dangling})
        assert all(i["RepoTags"] in ([], ["<none>:<none>"], None) for i in dangling)
        bad = daemon.cli("images", "-f", "colour=blue")
        assert bad.returncode == 1 and bad.stderr == "Error response from daemon: invalid filter 'colour'\n"
    finally:
        daemon.cli("rmi", "other/box:2")


def test_ps_fast_path_flags_and_json_scanner_agree_with_argparse_and_json():
    """``ps`` parses its flags and the daemon's JSON without argparse and json: the same results."""
    from minidocker.core import jsonscan
    from minidocker.core.console import flags

    names = {"-a": "all", "--all": "all", "-q": "quiet", "--no-trunc": "no_trunc"}
    opts = flags(["-aq", "--no-trunc"], names)
    assert opts is not None and (opts.all, opts.quiet, opts.no_trunc) == (True, True, True)
    assert vars(flags([], names)) == {"all": False, "quiet": False, "no_trunc": False}
    for other in (["-x"], ["-ax"], ["--format", "x"], ["--help"], ["web"], ["-"]):
        assert flags(other, names) is None, other  # left to argparse: its usage, its errors
    for text in ('[{"Id": "4bf2", "Names": ["/web"], "Ports": [], "Created": 1.5e9, "X": null}]',
                 ' {"a": [true, false, -1, 2.5, "\\u00e9\\n"]}\n', "NaN", '"x"', "[]"):
        assert repr(jsonscan.loads(text.encode())) == repr(json.loads(text))
    for bad in ("", "[1,", "[1] x", '{"a" 1}'):
        with pytest.raises(json.JSONDecodeError):
            jsonscan.loads(bad)


def test_flags_with_values_and_templates_without_re_agree_with_argparse_and_re():
    """``images --format T``: read by ``flags``, rendered without ``re`` and ``json``; the same results."""
    import argparse

    from minidocker.core.console import flags, render_template

    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    p.add_argument("-a", action="store_true", dest="all")
    p.add_argument("--format")
    for argv in (["--format", "{{.ID}}"], ["-a", "--format={{.ID}}"], ["--format", "x", "--format", "y"],
                 ["--format=-a"], []):
        opts = flags(argv, {"-a": "all"}, {"--format": "format"})
        assert opts is not None and vars(opts) == vars(p.parse_args(argv)), argv
    for argv in (["--format"], ["--format", "-a"], ["--format", "-"], ["--format", "x", "y"], ["--form=x"]):
        assert flags(argv, {"-a": "all"}, {"--format": "format"}) is None, argv  # argparse reads these
    value = {"ID": "4bf2", "Tags": ["a", "b"], "Size": 3, "On": True, "Labels": {"k": "v"}, "Nil": None}

    def with_re(template: str) -> str:  # what render_template did with a regular expression
        def one(match: re.Match) -> str:
            expression = match.group(1).strip()
            if expression.startswith("json "):
                return json.dumps(console._lookup(value, expression[5:].strip()))
            return console._show(console._lookup(value, expression))

        return re.sub(r"\{\{(.*?)\}\}", one, template)

    from minidocker.core import console

    for template in ("{{.ID}}", "{{ .ID }}:{{json .Tags}}\t{{.Size}} {{.On}} {{.Labels}} {{.Nil}}",
                     "{{.No.Such}}", "{{{.ID}}}", "{{}}", "{{.ID", "}}{{.ID}}{{", "{{.I\nD}} {{.ID}}",
                     "{{a\n{{.ID}}", "",
                     "{{json .}}", "no fields", "{{ json .Labels }}{{.ID}}}}", "{{.ID}}\r{{.Size\r}}"):
        assert render_template(template, value) == with_re(template), template


def test_run_reads_its_options_as_argparse_does():
    """``run``'s quick reader of its option table gives argparse's Namespace, or leaves the words to it."""
    from minidocker.client.run import _run_parser, quick_options
    from minidocker.core import jsonscan

    argparse_reads = _run_parser("run").parse_args
    for argv in ([], ["--rm"], ["-it", "--rm", "--name=web", "-e", "A=1", "-e", "B", "--network", "none"],
                 ["-d", "-p", "8080:80", "-v", "/a:/b:ro", "-m", "64m", "--cpus", "1.5", "--pids-limit", "9"],
                 ["--restart", "on-failure:3", "--health-interval", "1m30s", "--pull", "never", "-h", "box"],
                 ["--entrypoint", "", "--stop-timeout", "5", "--net", "a", "--net-alias", "x", "-dit"]):
        quick = quick_options(argv)
        assert quick is not None and vars(quick) == vars(argparse_reads(argv)), argv
    for other in (["--help"], ["--det"], ["-eA=1"], ["-e", "-x"], ["-m", "12x"], ["--pull", "often"],
                  ["-ix"], ["--rm=1"], ["--"], ["--cpus", "-1"]):
        assert quick_options(other) is None, other  # left to argparse: its usage, its errors
    for bad, words in ((["-m", "12x"], "invalid size"), (["--pull", "often"], "invalid choice"),
                       (["--pids-limit", "x"], "invalid int value")):
        with pytest.raises(SystemExit, match=words):
            argparse_reads(bad)
    for value in ({"a": [1, 2.5, None, True, "\u00e9\n\""], "b": {}, "c": (1,)}, "x", float("nan"), []):
        assert jsonscan.dumps(value) == json.dumps(value)


def test_run_it_keeps_the_exit_status_when_input_comes_after_the_container_closed(daemon):
    """``script`` whose own stdin is at an end writes to the terminal after the container has exited:
    sending that to the closed attach is a broken pipe, which must not pass for our stdout's (exit 0)."""
    command = (f"{sys.executable} -m minidocker -H {daemon.host} run -it --rm busybox "
               "sh -c 'echo hi; exit 7'; echo status=$?")
    for _ in range(3):
        done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                              env=daemon.env, stdin=subprocess.DEVNULL, timeout=60)
        assert done.stdout.replace("\r", "").endswith("hi\nstatus=7\n"), done.stdout
