"""Chapter 10, driven by a client we did not write: the real ``docker`` CLI, ``DOCKER_HOST=unix://...``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from minidocker.daemon.volumes import _mount_of
from tests.helpers_10_daemon import daemon_fixture

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="no docker CLI here: apt-get install docker.io")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def docker(daemon, tmp_path):
    env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=timeout)

    run.env = env
    return run


def test_version_and_info(docker):
    version = docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert version.returncode == 0, version.stderr
    assert version.stdout == "1.50 linux\n"
    info = docker("info", "--format", "{{.Driver}} {{.LoggingDriver}} {{.Swarm.LocalNodeState}}")
    assert info.stdout == "overlay2 json-file inactive\n", info.stderr


def test_pull_and_images(docker):
    pulled = docker("pull", "busybox")
    assert pulled.returncode == 0, pulled.stderr
    assert "Status: Image is up to date for busybox:latest" in pulled.stdout
    assert pulled.stdout.rstrip().endswith("docker.io/library/busybox:latest")
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert re.search(r"^busybox:latest [0-9a-f]{12}$", images.stdout, re.M)


_AGO = "<ago>"
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
          "month": 2592000, "year": 31536000}


def _seconds_ago(text: str) -> int:
    """``"55 seconds ago"``, ``"About a minute ago"``, ``"2 hours ago"`` as seconds (go-units' words)."""
    words = text.replace("About ", "").replace("Less than ", "").split()
    count = 1 if words[0] in ("a", "an") else int(words[0])
    return count * _UNITS[words[1].rstrip("s")]


def test_images_tables_as_dockers_cli_prints_them(docker, daemon):
    """Our ``images`` shows the rows docker's CLI shows for the same daemon (cells; the padding is ours)."""
    assert daemon.cli("tag", "busybox", "other/box:2").returncode == 0
    try:
        for args in ([], ["--digests"], ["-a", "--no-trunc"], ["other/box"], ["-f", "reference=busy*"]):
            theirs, ours = docker("images", *args), daemon.cli("images", *args)
            assert theirs.returncode == ours.returncode == 0, ours.stderr + theirs.stderr
            cells = [sorted(re.split(r"\s{2,}", row) for row in out.stdout.splitlines())
                     for out in (theirs, ours)]
            # the CREATED cell is read a second apart ("55 seconds ago" against "56 seconds ago"):
            # equal within a minute, every other cell equal
            masked = [[[_AGO if cell.endswith(" ago") else cell for cell in row] for row in table]
                      for table in cells]
            assert masked[0] == masked[1], args
            for theirs_row, ours_row in zip(*cells, strict=True):
                for a, b in zip(theirs_row, ours_row, strict=True):
                    if a.endswith(" ago"):
                        assert a == b or abs(_seconds_ago(a) - _seconds_ago(b)) <= 60, (a, b)
        # the same IDs; docker 20.10's CLI repeats one for each of its tags, ours prints each once (as before)
        assert set(docker("images", "-q").stdout.split()) == set(daemon.cli("images", "-q").stdout.split())
    finally:
        daemon.cli("rmi", "other/box:2")


def test_run_rm_output_and_exit_code(docker):
    result = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    missing = docker("run", "--rm", "busybox", "nope")
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    assert docker("ps", "-aq").stdout == ""


def test_run_d_logs_follow_stop_rm(docker):
    cid = docker("run", "-d", "--name", "web", "busybox", "sh", "-c",
                 "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    follower = subprocess.Popen([DOCKER, "logs", "-f", "web"], stdout=subprocess.PIPE, text=True,
                                env=docker.env)
    try:
        assert follower.stdout.readline() == "ready\n"
        assert docker("stop", "web").stdout == "web\n"
        assert follower.stdout.read() == "bye\n"
        assert follower.wait(timeout=10) == 0
    finally:
        follower.kill()
        follower.wait()
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web").stdout == "exited 0\n"
    assert docker("rm", "web").stdout == "web\n"


def test_exec_inspect_ps(docker):
    docker("run", "-d", "--name", "box", "busybox", "sleep", "60")
    try:
        result = docker("exec", "box", "sh", "-c", "echo inside; exit 5")
        assert (result.returncode, result.stdout) == (5, "inside\n")
        assert docker("exec", "box", "nope").returncode == 127
        info = json.loads(docker("inspect", "box").stdout)[0]
        assert info["State"]["Running"] and info["HostConfig"]["LogConfig"]["Type"] == "json-file"
        ps = docker("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Command}}").stdout
        assert re.search(r'^box\|Up .*\|"sleep 60"$', ps, re.M)
        refused = docker("rm", "box")
        assert refused.returncode == 1 and "Stop the container" in refused.stderr
    finally:
        assert docker("rm", "-f", "box").returncode == 0


def test_rmi(docker):
    assert docker("tag", "busybox", "other:2").returncode == 0
    removed = docker("rmi", "other:2")
    assert removed.returncode == 0 and removed.stdout == "Untagged: other:2\n"
    assert "No such image" in docker("rmi", "other:2").stderr


def test_interactive_terminal(docker):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", "busybox", "sh"], env=docker.env, encoding="utf-8",
                          timeout=20, dimensions=(30, 100))
    try:
        child.expect(r"# ")
        child.sendline("stty size")
        child.expect("30 100")
        child.setwinsize(40, 120)
        time.sleep(0.3)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 7


def test_stdin_piped_through(docker):
    result = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; exit 2"],
                            input="hello\n", capture_output=True, text=True, env=docker.env, timeout=60)
    assert (result.returncode, result.stdout) == (2, "HELLO\n")
    assert sys.version_info >= (3, 11)


def test_cp_both_ways_running_and_stopped(docker, tmp_path):
    """``docker cp``: into a running container and back out, a directory, and out of a stopped one."""
    assert docker("run", "-d", "--name", "cp", "busybox", "sh", "-c",
                  "mkdir -p /srv/d && echo made > /srv/d/a && sleep 60").returncode == 0
    try:
        (tmp_path / "in.txt").write_text("from the host\n")
        copied = docker("cp", str(tmp_path / "in.txt"), "cp:/srv/")
        assert copied.returncode == 0, copied.stderr
        assert docker("exec", "cp", "cat", "/srv/in.txt").stdout == "from the host\n"
        for _ in range(50):  # the sh -c has made /srv/d/a by now, or soon
            if docker("exec", "cp", "test", "-f", "/srv/d/a").returncode == 0:
                break
            time.sleep(0.1)
        out = docker("cp", "cp:/srv/d", str(tmp_path / "out"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "out" / "a").read_text() == "made\n"
        missing = docker("cp", "cp:/nope", str(tmp_path / "x"))
        assert missing.returncode == 1 and "Could not find the file /nope in container cp" in missing.stderr
        assert docker("stop", "-t", "0", "cp").returncode == 0
        stopped = docker("cp", "cp:/srv/in.txt", str(tmp_path / "back.txt"))
        assert stopped.returncode == 0, stopped.stderr
        assert (tmp_path / "back.txt").read_text() == "from the host\n"
    finally:
        docker("rm", "-f", "cp")


def test_cp_into_a_planted_symlink_stays_in_the_container(docker, tmp_path):
    """A container's ``/srv -> <a host dir>`` symlink: the copy lands in the container's dir of that name.

    Joined as a string to ``/proc/PID/root``, the absolute link would be resolved from the daemon's
    root, the host's: the file would land on the host (CVE-2018-15664's class).
    """
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    assert docker("run", "-d", "--name", "cptrap", "busybox", "sh", "-c",
                  f"mkdir -p {host_dir} && ln -s {host_dir} /srv && sleep 60"
                  ).returncode == 0
    try:
        for _ in range(50):
            if docker("exec", "cptrap", "test", "-L", "/srv").returncode == 0:
                break
            time.sleep(0.1)
        (tmp_path / "payload").write_text("pwned\n")
        copied = docker("cp", str(tmp_path / "payload"), "cptrap:/srv/")
        assert copied.returncode == 0, copied.stderr
        assert list(host_dir.iterdir()) == []  # nothing on the host
        assert docker("exec", "cptrap", "cat", f"{host_dir}/payload").stdout == "pwned\n"
    finally:
        docker("rm", "-f", "cptrap")


def test_pause_unpause_and_stop_a_paused_container(docker):
    """``docker pause``: the processes stop (the log stops growing), every view says so, stop still works."""
    assert docker("run", "-d", "--name", "frozen", "busybox", "sh", "-c",
                  "while true; do echo tick; sleep 0.05; done").returncode == 0
    try:
        assert docker("pause", "frozen").returncode == 0
        assert docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
                      "frozen").stdout == "paused true true\n"
        assert docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.rstrip().endswith("(Paused)")
        assert docker("info", "--format", "{{.ContainersPaused}}").stdout == "1\n"
        before = docker("logs", "frozen").stdout.count("tick")
        time.sleep(0.5)
        assert docker("logs", "frozen").stdout.count("tick") == before  # nothing ran meanwhile
        again = docker("pause", "frozen")
        assert again.returncode == 1 and "is already paused" in again.stderr
        refused = docker("exec", "frozen", "true")
        assert refused.returncode == 1 and "is paused, unpause the container before exec" in refused.stderr
        assert docker("unpause", "frozen").returncode == 0
        time.sleep(0.5)
        assert docker("logs", "frozen").stdout.count("tick") > before
        not_paused = docker("unpause", "frozen")
        assert not_paused.returncode == 1 and "is not paused" in not_paused.stderr
        assert docker("pause", "frozen").returncode == 0
        started = time.monotonic()
        assert docker("stop", "-t", "1", "frozen").returncode == 0  # thawed, then signalled
        assert time.monotonic() - started < 10
        stopped = docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "frozen")
        assert stopped.stdout == "exited false\n"
    finally:
        docker("rm", "-f", "frozen")


def test_update_limits_live_and_refuse_below_current_use(docker):
    """``docker update``: a running container's limits change in its cgroup; one below its use is refused."""
    assert docker("run", "-d", "--name", "upd", "--memory", "256m", "busybox", "sh", "-c",
                  "head -c 40m /dev/zero > /dev/shm/held && touch /ready; sleep 60").returncode == 0
    try:
        changed = docker("update", "--memory", "200m", "--cpus", "0.5", "--pids-limit", "50",
                         "--restart", "on-failure:2", "upd")
        assert changed.returncode == 0, changed.stderr
        host = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", "upd").stdout)
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (200 << 20, 500_000_000, 50)
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "upd").stdout
        assert usage.strip().endswith("/ 200MiB"), usage  # read from the cgroup's own limit file
        for _ in range(100):  # the 40 MB in its tmpfs are charged to its cgroup
            if docker("exec", "upd", "test", "-f", "/ready").returncode == 0:
                break
            time.sleep(0.1)
        below = docker("update", "--memory", "8m", "upd")
        assert below.returncode == 1 and "is below the" in below.stderr, below.stderr
        host = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", "upd").stdout)
        usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "upd").stdout
        assert host["Memory"] == 200 << 20 and usage.strip().endswith("/ 200MiB")  # nothing changed
    finally:
        docker("rm", "-f", "upd")


def test_run_network_files_groups_and_mac(docker):
    result = docker("run", "--rm", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
                    "--dns", "9.9.9.9", "--dns-search", "example.com", "--dns-option", "ndots:2",
                    "--mac-address", "02:aa:bb:cc:dd:ee", "--group-add", "tty", "--group-add", "1234",
                    "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf; ip link show eth0; id -G")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "10.1.2.3\tdb" in lines and any(re.fullmatch(r"[\d.]+\tgw", line) for line in lines)
    assert lines[lines.index("search example.com"):][:3] == ["search example.com", "nameserver 9.9.9.9",
                                                             "options ndots:2"]
    assert "link/ether 02:aa:bb:cc:dd:ee" in result.stdout
    assert lines[-1].split() == ["0", "5", "1234"]


def test_unsupported_options_are_refused_in_dockers_words(docker):
    for args, words in ((("--log-driver", "xyz"), "logger: no log driver named 'xyz' is registered"),
                        (("--log-opt", "foo=1"), "unknown log opt 'foo' for json-file log driver"),
                        (("--device", "/dev/nope"), 'error gathering device information while adding custom '
                                                    'device "/dev/nope": no such file or directory'),
                        (("--sysctl", "net.ipv4.ip_forward=1"), "HostConfig.Sysctls: not supported"),
                        (("--platform", "linux/s390x"), "does not match the specified platform"),
                        (("--group-add", "nosuch"), "Unable to find group nosuch")):
        result = docker("run", "--rm", *args, "busybox", "true")
        assert result.returncode != 0 and words in result.stderr, (args, result.stderr)
    volume = docker("volume", "create", "-d", "nope", "v2")
    assert volume.returncode == 1 and 'error looking up volume plugin nope: plugin "nope" not found' in \
        volume.stderr
    assert docker("volume", "ls", "-q").stdout == "" and docker("ps", "-aq").stdout == ""
    logged = docker("run", "--rm", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "--stop-signal",
                    "SIGUSR1", "--stop-timeout", "3", "busybox", "true")
    assert logged.returncode == 0, logged.stderr


def test_commit_keeps_exposed_ports_and_applies_changes(docker):
    docker("run", "-d", "--name", "committed", "-p", "8080", "busybox", "sleep", "30")
    try:
        result = docker("commit", "-c", "EXPOSE 9090", "-c", "ENV COMMITTED=1", "committed", "mine:1")
        assert result.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", result.stdout), result.stderr
        shown = docker("inspect", "-f", "{{json .Config.ExposedPorts}} {{json .Config.Cmd}}", "mine:1").stdout
        assert shown == '{"8080/tcp":{},"9090/tcp":{}} ["sleep","30"]\n'
        bad = docker("commit", "-c", "RUN true", "committed", "mine:2")
        assert bad.returncode == 1 and "run is not a valid change command" in bad.stderr
    finally:
        docker("rm", "-f", "committed")
        docker("rmi", "mine:1")


def test_container_prune_honours_label_filters(docker):
    kept = docker("create", "--label", "keep=1", "busybox", "true").stdout.strip()
    gone = docker("create", "busybox", "true").stdout.strip()
    docker("run", "--name", "ran", "busybox", "true")
    try:
        result = docker("container", "prune", "-f", "--filter", "label!=keep")
        assert result.returncode == 0, result.stderr
        assert sorted(docker("ps", "-aq", "--no-trunc").stdout.split()) == [kept]
        assert gone in result.stdout
    finally:
        docker("rm", "-f", kept, gone, "ran")


def test_tmpfs_and_mount_bind_volume_tmpfs(docker, tmp_path):
    (tmp_path / "f").write_text("hi\n")
    result = docker("run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,target=/t2",
                    "--mount", f"type=bind,source={tmp_path},target=/src,readonly",
                    "--mount", "type=volume,source=mounted,target=/vol", "busybox", "sh", "-c",
                    "grep -E ' /(scratch|t2) ' /proc/mounts | cut -d' ' -f2,3; cat /src/f; "
                    "touch /src/x || echo read-only; echo kept > /vol/a")
    assert result.stdout == "/t2 tmpfs\n/scratch tmpfs\nhi\nread-only\n", result.stderr
    again = docker("run", "--rm", "-v", "mounted:/vol", "busybox", "cat", "/vol/a")
    assert again.stdout == "kept\n", again.stderr
    shared = f"type=bind,source={tmp_path},target=/s,bind-propagation=rshared"
    refused = docker("run", "--rm", "--mount", shared, "busybox", "true")
    if not any(o.startswith("shared:") for o in _mount_of(str(tmp_path))[1]):  # a private / (no systemd)
        assert refused.returncode == 125 and "is not a shared mount" in refused.stderr
    assert docker("volume", "rm", "mounted").returncode == 0
    assert docker("volume", "ls", "-q").stdout == ""


def test_detach_keys_leave_the_container_running(docker):
    """``docker run -it`` then ctrl-p ctrl-q: the CLI returns (0), the container runs on; ``docker attach
    --detach-keys`` comes back and leaves the same way ("read escape sequence", 1, docker 28's words)."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(DOCKER, ["run", "-it", "--name", "detached", "busybox", "sh"], env=docker.env,
                          encoding="utf-8", timeout=10)
    try:
        child.expect(r"# ")
        child.send("\x10\x11")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert docker("inspect", "-f", "{{.State.Status}}", "detached").stdout == "running\n"
        child = pexpect.spawn(DOCKER, ["attach", "--detach-keys", "ctrl-x,x", "detached"], env=docker.env,
                              encoding="utf-8", timeout=10)
        child.sendline("echo hel''lo")
        child.expect("hello")
        child.send("\x18x")
        child.expect("read escape sequence")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        assert docker("inspect", "-f", "{{.State.Status}}", "detached").stdout == "running\n"
    finally:
        child.close(force=True)
        docker("rm", "-f", "detached")


def test_export_then_import_with_a_change(docker, tmp_path):
    """``docker export`` (a running container: paused meanwhile) and ``docker import -c CMD -m``: a
    one-layer image that runs; a bad change line is refused in one line."""
    assert docker("run", "-d", "--name", "exported", "busybox", "sh", "-c",
                  "echo made > /made; sleep 60").returncode == 0
    try:
        deadline = time.monotonic() + 10
        while docker("exec", "exported", "cat", "/made").stdout != "made\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        exported = docker("export", "-o", str(tmp_path / "fs.tar"), "exported")
        assert exported.returncode == 0, exported.stderr
        import tarfile

        with tarfile.open(tmp_path / "fs.tar") as tar:
            names = set(tar.getnames())
        assert {"made", "bin/busybox", "etc/passwd"} <= names
        assert not any(n.startswith("proc/") for n in names)  # mounts are not the container's filesystem
        imported = docker("import", "-c", 'CMD ["cat", "/made"]', "-m", "flat", str(tmp_path / "fs.tar"),
                          "flat:1")
        assert imported.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", imported.stdout)
        assert docker("run", "--rm", "flat:1").stdout == "made\n"
        shown = docker("inspect", "-f", "{{.Comment}} {{json .Config.Cmd}} {{len .RootFS.Layers}}", "flat:1")
        assert shown.stdout == 'flat ["cat","/made"] 1\n'
        refused = docker("import", "-c", "BOGUS x", str(tmp_path / "fs.tar"), "flat:2")
        assert refused.returncode == 1 and "unknown instruction: BOGUS" in refused.stderr
    finally:
        docker("rm", "-f", "exported")
        docker("rmi", "flat:1")


def test_device_node_and_its_cgroup_rule(docker):
    result = docker("run", "--rm", "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
                    "stat -c '%t:%T %F' /dev/mynull; echo x > /dev/mynull && echo written; "
                    "mknod /dev/again c 1 3 && echo mknod; head -c1 /dev/mynull && echo read")
    assert result.stdout.splitlines() == ["1:3 character special file", "written", "mknod", "read"], \
        result.stderr
    if not os.path.exists("/dev/fuse"):  # a device outside Docker's allow-list: its rule is the --device's
        pytest.skip("no /dev/fuse on this host: the cgroup rule's half needs it")
    ruled = docker("run", "--rm", "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c",
                   "(: < /dev/f) && echo read; (: > /dev/f) || echo no-write; mknod /dev/g c 10 229; "
                   "(: < /dev/g) && echo same-numbers")
    assert ruled.stdout.splitlines() == ["read", "no-write", "same-numbers"], ruled.stderr
    assert "Operation not permitted" in ruled.stderr
    plain = docker("run", "--rm", "busybox", "sh", "-c", "mknod /dev/g c 10 229; : < /dev/g")
    assert plain.returncode != 0 and "Operation not permitted" in plain.stderr


def test_bind_propagation_rslave_brings_the_hosts_new_mounts_in(docker, tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    if not _mount_of(str(source))[1]:  # a private mount, as / is without systemd: refused as dockerd does
        refused = docker("run", "--rm", "-v", f"{source}:/src:rslave", "busybox", "true")
        assert refused.returncode == 125 and "is not a shared or slave mount" in refused.stderr
    subprocess.run(["mount", "--bind", source, source], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", source], check=True)
        for spec in (f"{source}:/src:rslave", f"type=bind,source={source},target=/src,"
                                              "bind-propagation=rslave"):
            flag = "-v" if spec.startswith("/") else "--mount"
            docker("run", "-d", "--name", "prop", flag, spec, "busybox", "sleep", "30")
            try:
                subprocess.run(["mount", "-t", "tmpfs", "late", source / "sub"], check=True)
                (source / "sub" / "f").write_text("from the host\n")
                seen = docker("exec", "prop", "sh", "-c", "cat /src/sub/f; grep ' /src/sub ' /proc/mounts")
                assert seen.stdout.startswith("from the host\nlate /src/sub tmpfs"), seen.stderr
                shown = docker("inspect", "-f", "{{range .Mounts}}{{.Propagation}}{{end}}", "prop").stdout
                assert shown == "rslave\n"
            finally:
                docker("rm", "-f", "prop")
                subprocess.run(["umount", source / "sub"])
        private = docker("run", "--rm", "-v", f"{source}:/src", "busybox", "true")
        assert private.returncode == 0, private.stderr
    finally:
        subprocess.run(["umount", "-R", source])


def test_anonymous_volumes_of_the_image_and_of_dash_v(docker):
    docker("run", "--name", "seed", "busybox", "sh", "-c",
           "mkdir /data; echo seeded > /data/f; chown 7:8 /data/f; ln -s /etc/passwd /data/link; "
           "chmod 750 /data")
    assert docker("commit", "-c", "VOLUME /data", "seed", "vol:1").returncode == 0
    docker("rm", "seed")
    try:
        docker("run", "-d", "--name", "anon", "-v", "/extra", "vol:1", "sleep", "30")
        mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", "anon").stdout)
        named = {m["Destination"]: m["Name"] for m in mounts if m["Type"] == "volume"}
        assert sorted(named) == ["/data", "/extra"]
        assert all(re.fullmatch(r"[0-9a-f]{64}", n) for n in named.values())
        assert set(named.values()) <= set(docker("volume", "ls", "-q").stdout.split())
        seen = docker("exec", "anon", "sh", "-c",
                      "cat /data/f; stat -c '%u:%g %a' /data/f /data; readlink /data/link; "
                      "grep -c ' /data ' /proc/mounts")
        assert seen.stdout == "seeded\n7:8 644\n0:0 750\n/etc/passwd\n1\n", seen.stderr
        docker("rm", "-f", "anon")  # a plain rm keeps them
        kept = set(docker("volume", "ls", "-q").stdout.split())
        assert set(named.values()) <= kept
        docker("run", "-d", "--name", "anon", "vol:1", "sleep", "30")
        docker("rm", "-f", "-v", "anon")
        docker("run", "--rm", "vol:1", "true")
        assert set(docker("volume", "ls", "-q").stdout.split()) == kept
    finally:
        docker("rm", "-f", "anon")
        docker("volume", "rm", *named.values())
        docker("rmi", "vol:1")
    assert docker("volume", "ls", "-q").stdout == ""


def test_legacy_links_hosts_env_inspect_and_rm_link(docker):
    docker("run", "-d", "--name", "db1", "-e", "SECRET=s3", "--expose", "5432", "--expose", "80", "busybox",
           "sleep", "30")
    docker("create", "--name", "stopped", "busybox", "true")
    try:
        ip, cid = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.Id}}", "db1").stdout.split()
        short = cid[:12]
        result = docker("run", "--rm", "--name", "web", "--link", "db1:db", "busybox", "sh", "-c",
                        "cat /etc/hosts; env | grep ^DB_")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert {f"{ip}\tdb", f"{ip}\t{short}", f"{ip}\tdb1"} <= set(lines)
        assert {line for line in lines if line.startswith("DB_")} == {
            f"DB_PORT=tcp://{ip}:80", "DB_NAME=/web/db", "DB_ENV_SECRET=s3",
            *(f"DB_PORT_{p}_TCP{k}" for p in (80, 5432) for k in (f"=tcp://{ip}:{p}", f"_ADDR={ip}",
                                                                  f"_PORT={p}", "_PROTO=tcp"))}
        docker("create", "--name", "web2", "--link", "db1:db", "--link", "db1", "busybox", "true")
        links = docker("inspect", "-f", "{{json .HostConfig.Links}}", "web2").stdout
        assert links == '["/db1:/web2/db","/db1:/web2/db1"]\n'
        assert docker("rm", "--link", "/web2/db").returncode == 0
        assert docker("inspect", "-f", "{{json .HostConfig.Links}}", "web2").stdout == '["/db1:/web2/db1"]\n'
        default = docker("rm", "--link", "db1")
        assert "cannot remove the default link name of the container" in default.stderr
        missing = docker("run", "--rm", "--link", "nope:n", "busybox", "true")
        assert missing.returncode == 125 and "could not get container for nope" in missing.stderr
        stopped = docker("run", "--name", "web3", "--link", "stopped:s", "busybox", "true")
        assert "Cannot link to a non running container: /stopped AS /web3/s" in stopped.stderr
    finally:
        docker("rm", "-f", "db1", "stopped", "web2", "web3")
    assert docker("ps", "-aq").stdout == ""


def test_build_add_host_and_run_steps_stderr(docker, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN grep -w db /etc/hosts; echo to-stderr >&2\n")
    env = {**docker.env, "DOCKER_BUILDKIT": "0"}
    built = subprocess.run([DOCKER, "build", "--add-host", "db:10.9.8.7", "-t", "hosts:1", str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=60)
    try:
        assert built.returncode == 0, built.stderr
        assert "to-stderr\n" in built.stdout, built.stdout  # a RUN's stderr, in the stream as dockerd's
        assert "10.9.8.7\tdb\n" in built.stdout
    finally:
        docker("rmi", "hosts:1")
    cached = subprocess.run([DOCKER, "build", "--cache-from", "busybox", str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert cached.returncode == 1 and "--cache-from is not supported" in cached.stderr
    bad = subprocess.run(["curl", "-s", "--unix-socket", docker.env["DOCKER_HOST"].removeprefix("unix://"),
                          "-X", "POST", "http://d/v1.50/build?extrahosts=db", "--data-binary", "x"],
                         capture_output=True, text=True, timeout=30)  # the docker CLI checks it first
    assert json.loads(bad.stdout) == {"message": 'bad format for add-host: "db"'}
