"""Chapter 10: a monitor keeps little of its own, and its death leaves nothing behind.

The monitor's start worker runs the stages and hands over what must happen at the exit
(``minidocker.daemon.handover``): the monitor of an idle container then holds no stage's pages and
no watchdog. If the monitor is killed, the daemon does the clean-up the worker left in the
container's directory: at once, or, if the daemon was down too, as it starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests import leaks
from tests.helpers_10_daemon import daemon_fixture, own_daemon
from tests.test_10_ports import fetch


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def own(daemon, tmp_path: Path):
    """A daemon of the test's own, that it may kill."""
    with own_daemon(daemon, tmp_path) as d:
        assert d.cli("run", "--rm", "busybox", "true").returncode == 0  # the bridge exists from now on
        yield d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(d) -> tuple[str, int]:
    port = _free_port()
    run = d.cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "--memory", "64m", "busybox", "sh", "-c",
                "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 80 -h /www")
    assert run.returncode == 0, run.stderr + d.log_tail()
    cid = run.stdout.strip()
    assert fetch(f"http://127.0.0.1:{port}/") == "up\n"
    return cid, port


def _state(d, cid: str) -> dict:
    return json.loads((Path(d.env["MINIDOCKER_STATE"]) / "containers" / cid / "state.json").read_text())


def _until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _held(d, cid: str, port: int) -> dict[str, object]:
    """What the host holds for container ``cid``: cgroups, mounts, its address, its port's rule, its veth."""
    bridge, table = os.environ["MINIDOCKER_BRIDGE"], os.environ["MINIDOCKER_NFT_TABLE"]
    ipam = Path(d.env["MINIDOCKER_STATE"]) / "networks" / bridge / "ipam.json"
    rules = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
    veths = [name for name in os.listdir("/sys/class/net")
             if cid in Path(f"/sys/class/net/{name}/ifalias").read_text(errors="replace")]
    parent = os.environ["MINIDOCKER_CGROUP_PARENT"]
    root = Path("/sys/fs/cgroup")
    cgroups = [*root.glob(f"*/{parent}/{cid}"), *root.glob(f"{parent}/{cid}")]
    return {"cgroups": cgroups, "mounts": {x for x in leaks.mounts() if cid in x},
            "lease": cid in json.loads(ipam.read_text())["leases"], "rule": f"dport {port} " in rules,
            "veths": veths}


def _private_dirty_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Private_Dirty:"))


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return kids


def test_an_idle_monitor_holds_no_stage_and_no_watchdog(daemon):
    run = daemon.cli("run", "-d", "-p", f"127.0.0.1:{_free_port()}:80", "busybox", "sleep", "600")
    cid = run.stdout.strip()
    try:
        monitor, pid1 = _state(daemon, cid)["MonitorPid"], _state(daemon, cid)["Pid"]
        assert _children(monitor) == [pid1]  # PID 1 is its child; the stages' watchdogs are gone
        log = (Path(daemon.env["MINIDOCKER_STATE"]) / "containers" / cid / "monitor.log").read_text()
        assert "start worker stays" not in log, log
        # The stages' pages went with the worker: a monitor that ran them itself held 10 MiB of its own
        # on a bridge (6 without a network); a fork that runs only the monitor's loop, about 3.
        assert _private_dirty_kib(monitor) < 5 * 1024
    finally:
        daemon.cli("rm", "-f", cid)


@pytest.mark.parametrize("daemon_down", [False, True], ids=["daemon-up", "daemon-down"])
def test_a_killed_monitor_leaves_nothing_behind(own, daemon_down):
    cid, port = _serve(own)
    held = _held(own, cid, port)
    assert all(held.values()), held
    state = Path(own.env["MINIDOCKER_STATE"]) / "containers" / cid
    left = state / "teardown.pickle"  # what the start worker handed over, root's alone
    assert left.exists() and left.stat().st_mode & 0o077 == 0
    monitor = _state(own, cid)["MonitorPid"]
    if daemon_down:
        own.stop(signal.SIGKILL)
    os.kill(monitor, signal.SIGKILL)
    if daemon_down:
        time.sleep(1)  # PID 1 dies with its monitor; what it held stays until the daemon is back
        assert _held(own, cid, port)["cgroups"], "nobody should have cleaned up yet"
        own.start()
    _until(lambda: not left.exists())
    info = own.client.json("GET", f"/containers/{cid}/json")["State"]
    assert (info["Running"], info["ExitCode"], info["Error"]) == (False, 255, "the container's monitor died")
    assert not any(_held(own, cid, port).values()), _held(own, cid, port)
    started = own.cli("start", cid)  # and it starts again, on the same port
    assert started.returncode == 0, started.stderr
    assert fetch(f"http://127.0.0.1:{port}/") == "up\n"
    assert own.cli("rm", "-f", cid).returncode == 0


def test_a_start_right_after_a_monitor_died_waits_for_its_clean_up(own):
    """The clean-up a dead monitor left names the container's cgroup, lease and mounts: a start (or a
    removal) meanwhile waits for it, or the late clean-up would take the new run's."""
    cid, port = _serve(own)
    os.kill(_state(own, cid)["MonitorPid"], signal.SIGKILL)
    _until(lambda: _state(own, cid)["Status"] == "exited")  # the daemon saw it die; the clean-up runs
    started = own.cli("start", cid)
    assert started.returncode == 0, started.stderr
    assert _state(own, cid)["Status"] == "running"
    assert fetch(f"http://127.0.0.1:{port}/") == "up\n"
    assert all(_held(own, cid, port).values()), _held(own, cid, port)
    assert own.cli("rm", "-f", cid).returncode == 0
    assert not any(_held(own, cid, port).values()), _held(own, cid, port)
