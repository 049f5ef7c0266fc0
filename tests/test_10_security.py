"""Chapter 06 through the daemon: ``--userns-remap`` and ``--userns=host``; the API's masked and
read-only paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minidocker.client.client import APIError
from tests.helpers_10_daemon import daemon_fixture, running_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def run_api(daemon, host_config: dict, script: str) -> tuple[int, str]:
    """Create, start and wait for a container with this ``HostConfig``, by raw API calls; its output."""
    body = {"Image": "busybox", "Cmd": ["sh", "-c", script], "HostConfig": host_config}
    cid = daemon.client.json("POST", "/containers/create", None, body)["Id"]
    try:
        daemon.client.request("POST", f"/containers/{cid}/start").read()
        code = daemon.client.json("POST", f"/containers/{cid}/wait")["StatusCode"]
        return code, daemon.cli("logs", cid).stdout
    finally:
        daemon.client.request("DELETE", f"/containers/{cid}").read()


def test_masked_and_readonly_paths_from_the_api(daemon):
    script = ("wc -c < /etc/hostname; touch /usr/x 2>/dev/null && echo rw || echo ro; "
              "grep -c ' /proc/sys ' /proc/self/mountinfo; grep -c ' /proc/timer_list ' /proc/self/mountinfo")
    code, out = run_api(daemon, {"MaskedPaths": ["/etc/hostname"], "ReadonlyPaths": ["/usr"]}, script)
    assert code == 1 and out.split() == ["0", "ro", "0", "0"]  # the API's lists replace Docker's
    code, out = run_api(daemon, {}, script)
    timer_list = "1" if os.path.exists("/proc/timer_list") else "0"
    assert code == 0 and out.split() == ["13", "rw", "1", timer_list]  # Docker's: /proc/sys, /proc/timer_list
    code, out = run_api(daemon, {"MaskedPaths": [], "ReadonlyPaths": []}, script)
    assert out.split() == ["13", "rw", "0", "0"]
    with pytest.raises(APIError) as refused:
        run_api(daemon, {"MaskedPaths": ["relative"]}, "true")
    assert refused.value.status == 400


def test_userns_remap_daemon_and_userns_host(daemon, tmp_path):
    tmp_path.chmod(0o711)  # the remapped root walks down to its volumes and DNS files
    env = {"MINIDOCKER_STATE": str(tmp_path / "state"), "MINIDOCKER_RUN": str(tmp_path / "run")}
    with running_daemon(tmp_path, daemon.registry.url, "--userns-remap", "default", env=env) as remapped:
        assert remapped.cli("pull", "busybox").returncode == 0
        assert "name=userns" in remapped.client.json("GET", "/info")["SecurityOptions"]
        assert "name=userns" not in daemon.client.json("GET", "/info")["SecurityOptions"]
        script = ("cat /proc/self/uid_map; id -u; stat -c %u /etc/passwd; "
                  "touch /data/mine /etc/mine && echo ok")
        result = remapped.cli("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", script)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["0", "100000", "65536"] and lines[1:] == ["0", "0", "ok"]
        volume = json.loads(remapped.cli("volume", "inspect", "data").stdout)[0]
        assert os.stat(Path(volume["Mountpoint"]) / "mine").st_uid == 100000  # nobody on the host
        host = remapped.cli("run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map")
        assert host.stdout.split() == ["0", "0", "4294967295"], host.stderr
        for option, words in (("--privileged", "privileged mode is incompatible"),
                              ("--network=host", "host's network namespace")):
            refused = remapped.cli("run", "--rm", option, "busybox", "true")
            assert refused.returncode == 125 and words in refused.stderr
        assert remapped.cli("run", "--rm", "--privileged", "--userns=host", "busybox", "true").returncode == 0
        # stopped and started again: the same mapping, and its root still owns its own files
        remapped.cli("run", "-d", "--name", "again", "busybox", "sleep", "60")
        try:
            assert remapped.cli("restart", "-t", "0", "again").returncode == 0
            script = "cat /proc/self/uid_map; stat -c %u /; touch /x"
            again = remapped.cli("exec", "again", "sh", "-c", script)
            assert again.stdout.split() == ["0", "100000", "65536", "0"], again.stderr
        finally:
            remapped.cli("rm", "-f", "again")


def test_a_bind_to_the_root_is_refused_with_a_400():
    """As Docker: 'invalid mount config for type "bind": invalid specification: destination can't be '/''."""
    from minidocker.core import errors
    from minidocker.daemon import volumes

    for bind in ("/tmp:/", "/tmp://", "/tmp:/:ro"):
        with pytest.raises(errors.InvalidArgument, match="destination can't be '/'") as refused:
            volumes.parse_binds([bind])
        assert errors.http_status(refused.value) == 400
    with pytest.raises(errors.InvalidArgument):
        volumes.volume_mounts([{"Source": "/tmp", "Destination": "/", "RW": True}])("/nonexistent")


def test_a_volume_under_a_symlinked_directory_of_the_image_stays_inside_the_rootfs(tmp_path):
    """CVE-2014-9356's class for -v: the image's /link is a symlink to a host directory, -v names
    /link/x. Made and mounted inside the rootfs, never in the host's directory."""
    from minidocker.core import syscalls
    from minidocker.daemon import volumes

    host, root, source = tmp_path / "host", tmp_path / "root", tmp_path / "source"
    for directory in (host, root / "tmp", source):
        directory.mkdir(parents=True)
    os.symlink(str(host), root / "link")  # absolute: from the host, the host's directory
    os.symlink("../../../../../../../.." + str(host), root / "rel")  # ../ past the root
    (source / "data").write_text("volume\n")
    hook = volumes.volume_mounts([{"Source": str(source), "Destination": "/link/x", "RW": False},
                                  {"Source": str(source), "Destination": "/rel/y", "RW": True}])
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            syscalls.unshare(syscalls.CLONE_NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            try:
                hook(str(root))
                code = 0
            except OSError:
                code = 2  # refused (a link to nowhere inside the root): safe too
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) in (0, 2)
    assert os.listdir(host) == []  # nothing made in the host's directory


def test_a_user_with_every_capability_dropped_still_becomes_that_user(daemon):
    """``--cap-drop ALL --user 1000`` runs, as with Docker: the switch to the user happens before the
    last capabilities go (runc's finalizeNamespace), not after CAP_SETUID is gone. So does an exec
    as that user; root with every capability dropped keeps none of them, the switch's two included."""
    script = "id -u; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"
    code, out = run_api(daemon, {"CapDrop": ["ALL"]}, script)
    assert code == 0, out
    assert out.split()[0] == "0" and out.count("0000000000000000") == 3, out  # root: nothing left at all
    body = {"Image": "busybox", "User": "1000", "Cmd": ["sh", "-c", script + "; sleep 30"],
            "HostConfig": {"CapDrop": ["ALL"]}}
    cid = daemon.client.json("POST", "/containers/create", None, body)["Id"]
    try:
        daemon.client.request("POST", f"/containers/{cid}/start").read()
        result = daemon.cli("exec", "-u", "1000", cid, "sh", "-c", script)
        out = result.stdout
        assert result.returncode == 0, result.stderr
        assert out.split()[0] == "1000" and out.count("0000000000000000") == 3, out
        logs = daemon.cli("logs", cid).stdout
        assert logs.split()[0] == "1000" and logs.count("0000000000000000") == 3, logs
    finally:
        daemon.client.request("DELETE", f"/containers/{cid}?force=1").read()
    code, out = run_api(daemon, {"CapDrop": ["NET_RAW"]}, "id -u; grep CapEff /proc/self/status")
    assert code == 0 and out.split()[0] == "0" and "00000000a80405fb" in out, out  # Docker's 14 less NET_RAW
