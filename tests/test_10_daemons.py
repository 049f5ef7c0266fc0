"""Chapter 10: two daemons on one host, side by side, sharing no path (``minidocker.daemon.places``).

A second daemon with another ``--data-root`` gets an exec root of its own (its fork server, monitors
and pidfile there), its own bridge, subnet, nft table and cgroup parent by flags; a daemon on an
exec root or data root another live daemon holds refuses to start, naming that daemon's pid. Each
serves a published port at once; each is stopped by ``minidocker daemon stop``, in both orders.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_10_daemon import Daemon, kill_monitors, seeded_registry
from tests.test_10_ports import fetch


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with seeded_registry(tmp_path_factory.mktemp("reg") / "registry") as registry:
        yield registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _second_network() -> tuple[str, str, str]:
    """A bridge, subnet and table for the second daemon, named after this run's (the leak checks see them)."""
    third = ipaddress.ip_network(os.environ["MINIDOCKER_SUBNET"]).network_address.packed[2]
    bridge, table = os.environ["MINIDOCKER_BRIDGE"], os.environ["MINIDOCKER_NFT_TABLE"]
    return f"{bridge}b", f"10.201.{third}.1/24", f"{table}_b"


def _serve(daemon: Daemon, name: str) -> tuple[str, int]:
    """A container of ``daemon`` serving ``name`` over HTTP on a published port; (its id, the port)."""
    port = _free_port()
    run = daemon.cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                     f"mkdir /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www")
    assert run.returncode == 0, run.stderr + daemon.log_tail()
    return run.stdout.strip(), port


def _stop(daemon: Daemon) -> None:
    """``minidocker -H ... daemon stop``: the daemon this client talks to, found by its socket."""
    pid = daemon.process.pid
    stopped = daemon.cli("daemon", "stop")
    assert stopped.returncode == 0 and f"(pid {pid}) stopped" in stopped.stdout, stopped.stderr
    daemon.process.wait(timeout=20)
    daemon.process = None


@pytest.mark.parametrize("first_stopped", ["a", "b"])
def test_two_daemons_side_by_side(tmp_path, registry, first_stopped):
    run_a, state_a, state_b = tmp_path / "run", tmp_path / "state-a", tmp_path / "state-b"
    env = {"MINIDOCKER_STATE": str(state_a), "MINIDOCKER_RUN": str(run_a)}
    bridge, bip, table = _second_network()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Daemon(tmp_path / "a", registry.url, env=env)
    b = Daemon(tmp_path / "b", registry.url, ("--data-root", str(state_b), "--bridge", bridge, "--bip", bip,
                                             "--nft-table", table, "--cgroup-parent",
                                             f"{os.environ['MINIDOCKER_CGROUP_PARENT']}-b"), env=env)
    daemons = {"a": a, "b": b}
    try:
        a.start()
        b.start()
        (exec_b,) = Path(f"{run_a}-x").parent.glob(f"{run_a.name}-*")  # derived from its data root
        assert (run_a / "minidockerd.pid").read_text().split() == [str(a.process.pid)]
        assert (exec_b / "minidockerd.pid").read_text().split() == [str(b.process.pid)]
        assert (run_a / "forkserver.sock").exists() and (exec_b / "forkserver.sock").exists()

        # a third daemon on a root that one of them holds: refused, in one line naming the holder
        for extra, holder in ((["--data-root", str(state_a), "--exec-root", str(tmp_path / "x")], a),
                              (["--data-root", str(tmp_path / "c"), "--exec-root", str(exec_b)], b),
                              (["--data-root", str(state_b)], b)):
            third = subprocess.run([sys.executable, "-m", "minidocker.daemon", "-H",
                                    f"unix://{tmp_path}/third.sock", *extra], capture_output=True, text=True,
                                   env={**os.environ, **env}, timeout=30)
            assert third.returncode == 1 and third.stderr.count("\n") == 1, third.stderr
            assert f"pid {holder.process.pid}" in third.stderr, third.stderr
        taken = subprocess.run([sys.executable, "-m", "minidocker.daemon", "-H", a.host, "--data-root",
                                str(tmp_path / "d")], capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=30)
        assert taken.returncode != 0 and "another daemon listens" in taken.stderr, taken.stderr

        served = {key: _serve(d, key) for key, d in daemons.items()}
        for key, (_, port) in served.items():
            assert fetch(f"http://127.0.0.1:{port}/") == f"{key}\n"
        inspect = json.loads(b.cli("inspect", served["b"][0]).stdout)[0]
        assert ipaddress.ip_address(inspect["NetworkSettings"]["IPAddress"]) in ipaddress.ip_network(bip,
                                                                                                    strict=False)
        assert os.path.isdir(f"/sys/class/net/{bridge}")

        first, second = (a, b) if first_stopped == "a" else (b, a)
        _stop(first)
        other_key = "b" if first_stopped == "a" else "a"
        assert fetch(f"http://127.0.0.1:{served[other_key][1]}/") == f"{other_key}\n"  # it serves on
        status = second.cli("daemon", "status")
        assert status.returncode == 0 and f"(pid {second.process.pid})" in status.stdout, status.stdout
        first.start()  # it finds its container again, with its own fork server
        for d in daemons.values():
            d.remove_all()
        _stop(a)
        _stop(b)
        assert not (run_a / "minidockerd.pid").exists() and not (exec_b / "minidockerd.pid").exists()
        assert not os.path.exists(f"/sys/class/net/{bridge}")
        for state in (state_a, state_b):
            assert not kill_monitors(state, grace=5)
    finally:
        for d in daemons.values():
            with contextlib.suppress(Exception):
                if d.process is not None:
                    d.remove_all()
                    d.stop()
        for state in (state_a, state_b):
            kill_monitors(state)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
