"""Chapter 10: restart policies through the API: on-failure:N, always, unless-stopped, stop and kill by
hand, the back-off, RestartCount, and what comes back (and stays down) when the daemon starts again."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from minidocker.client.client import APIError
from tests.helpers_10_daemon import daemon_fixture, own_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def own(daemon, tmp_path: Path):
    """A daemon of the test's own, that it may kill (the module's would count as a leak when restarted)."""
    with own_daemon(daemon, tmp_path) as d:
        yield d


def run(daemon, name: str, policy: dict, cmd: list[str]) -> str:
    body = {"Image": "busybox", "Cmd": cmd, "HostConfig": {"RestartPolicy": policy}}
    created = daemon.client.json("POST", "/containers/create", {"name": name}, body)
    assert created["Warnings"] == []
    daemon.client.request("POST", f"/containers/{created['Id']}/start").read()
    return created["Id"]


def state(daemon, name: str) -> dict:
    info = daemon.client.json("GET", f"/containers/{name}/json")
    return {**info["State"], "RestartCount": info["RestartCount"]}


def until(daemon, name: str, predicate, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while not predicate(found := state(daemon, name)):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_on_failure_restarts_up_to_its_count_then_stays_exited(daemon):
    run(daemon, "rp-fail", {"Name": "on-failure", "MaximumRetryCount": 2}, ["sh", "-c", "exit 3"])
    try:
        seen = set()
        final = until(daemon, "rp-fail", lambda s: seen.add(s["Status"]) or (
            s["RestartCount"] == 2 and s["Status"] == "exited"))
        assert final["ExitCode"] == 3 and not final["Restarting"]
        time.sleep(1.5)  # the back-off would be 400 ms: nothing more comes
        assert state(daemon, "rp-fail")["RestartCount"] == 2
        assert state(daemon, "rp-fail")["Status"] == "exited"
        # A start by hand gives the policy its retries again.
        daemon.client.request("POST", "/containers/rp-fail/start").read()
        until(daemon, "rp-fail", lambda s: s["RestartCount"] == 4 and s["Status"] == "exited")
    finally:
        daemon.cli("rm", "-f", "rp-fail")


def test_on_failure_does_not_restart_a_success(daemon):
    run(daemon, "rp-ok", {"Name": "on-failure"}, ["true"])
    try:
        assert daemon.client.json("POST", "/containers/rp-ok/wait")["StatusCode"] == 0
        time.sleep(0.5)
        assert state(daemon, "rp-ok")["RestartCount"] == 0
    finally:
        daemon.cli("rm", "-f", "rp-ok")


def test_always_restarts_with_a_growing_back_off(daemon):
    run(daemon, "rp-always", {"Name": "always"}, ["true"])
    try:
        began = time.monotonic()
        until(daemon, "rp-always", lambda s: s["RestartCount"] >= 4)
        # 100 + 200 + 400 + 800 ms at least between the first exit and the fourth restart
        assert time.monotonic() - began >= 1.4
        ps = daemon.cli("ps", "-a", "--filter", "name=rp-always", "--format", "{{.Status}}").stdout
        assert ps.startswith(("Up", "Restarting")), ps
    finally:
        daemon.cli("rm", "-f", "rp-always")


def test_stop_and_kill_are_not_restarted(daemon):
    run(daemon, "rp-stop", {"Name": "always"}, ["sleep", "60"])
    run(daemon, "rp-kill", {"Name": "unless-stopped"}, ["sleep", "60"])
    try:
        daemon.client.request("POST", "/containers/rp-stop/stop", {"t": 1}).read()
        daemon.client.request("POST", "/containers/rp-kill/kill").read()
        daemon.client.json("POST", "/containers/rp-kill/wait")
        time.sleep(1)
        for name in ("rp-stop", "rp-kill"):
            s = state(daemon, name)
            assert (s["Status"], s["RestartCount"], s["Restarting"]) == ("exited", 0, False), (name, s)
        # A restart by the API starts it again; an exit after that is the policy's again.
        daemon.client.request("POST", "/containers/rp-stop/restart", {"t": 0}).read()
        assert state(daemon, "rp-stop")["Running"]
        pid = state(daemon, "rp-stop")["Pid"]
        os.kill(pid, signal.SIGKILL)  # from outside: a crash
        until(daemon, "rp-stop", lambda s: s["RestartCount"] == 1 and s["Running"])
    finally:
        daemon.cli("rm", "-f", "rp-stop", "rp-kill")


def test_a_start_by_hand_writes_the_restart_record_only_when_it_changes(daemon):
    """A new container's record is the default: its first start writes none (two fsyncs less on every
    ``run``); a stop by hand is recorded, and the next start by hand clears it, on disk too."""
    cid = run(daemon, "rp-record", {"Name": "always"}, ["sleep", "60"])
    record = Path(daemon.env["MINIDOCKER_STATE"]) / "containers" / cid / "restart.json"
    try:
        assert not record.exists()
        daemon.client.request("POST", "/containers/rp-record/stop", {"t": 0}).read()
        assert json.loads(record.read_text())["ManuallyStopped"] is True
        daemon.client.request("POST", "/containers/rp-record/start").read()
        assert json.loads(record.read_text())["ManuallyStopped"] is False
        assert state(daemon, "rp-record")["Running"]
    finally:
        daemon.cli("rm", "-f", "rp-record")


def test_bad_policies_are_refused(daemon):
    for host, words in (({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy"),
                        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "cannot be used"),
                        ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, "negative"),
                        ({"RestartPolicy": {"Name": "always"}, "AutoRemove": True}, "AutoRemove")):
        with pytest.raises(APIError) as e:
            daemon.client.json("POST", "/containers/create", None,
                               {"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
        assert e.value.status == 400 and words in str(e.value), (host, e.value)
    bad = daemon.cli("run", "-d", "--restart", "always:3", "busybox", "true")
    assert bad.returncode != 0 and "invalid restart policy" in bad.stderr


def test_the_cli_option(daemon):
    made = daemon.cli("create", "--name", "rp-cli", "--restart", "on-failure:5", "busybox", "true")
    try:
        assert made.returncode == 0 and "not supported" not in made.stderr, made.stderr
        info = daemon.client.json("GET", "/containers/rp-cli/json")
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    finally:
        daemon.cli("rm", "-f", "rp-cli")


def test_what_comes_back_when_the_daemon_starts(own):
    run(own, "rp-boot-always", {"Name": "always"}, ["sleep", "60"])
    run(own, "rp-boot-stopped-always", {"Name": "always"}, ["sleep", "60"])
    run(own, "rp-boot-unless", {"Name": "unless-stopped"}, ["sleep", "60"])
    run(own, "rp-boot-none", {"Name": "no"}, ["sleep", "60"])
    run(own, "rp-boot-fail", {"Name": "on-failure", "MaximumRetryCount": 1}, ["sh", "-c", "exit 7"])
    until(own, "rp-boot-fail", lambda s: s["RestartCount"] == 1 and s["Status"] == "exited")
    for name in ("rp-boot-stopped-always", "rp-boot-unless"):
        own.client.request("POST", f"/containers/{name}/stop", {"t": 0}).read()
    # The host "reboots": the daemon is killed, and so are the containers' monitors and processes.
    pids = {name: state(own, name)["Pid"] for name in ("rp-boot-always", "rp-boot-none")}
    own.stop(signal.SIGKILL)
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)  # the monitors record the exits (137) and go
    own.start()
    until(own, "rp-boot-always", lambda s: s["Running"])
    assert state(own, "rp-boot-stopped-always")["Running"]  # always: even after a stop
    assert not state(own, "rp-boot-unless")["Running"]  # unless it was stopped
    none = state(own, "rp-boot-none")
    assert (none["Running"], none["ExitCode"]) == (False, 137)
    fail = state(own, "rp-boot-fail")
    assert (fail["Running"], fail["RestartCount"]) == (False, 1)  # kept across the restart, no retries left
