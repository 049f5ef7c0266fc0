"""Chapter 10: healthchecks through the API: healthy, unhealthy, timeouts, ps, the CLI options, an image's
HEALTHCHECK, and probes that go on while the daemon is down (they run in the container's monitor)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from minidocker.client.client import APIError
from minidocker.daemon.containers import seconds
from tests.helpers_10_daemon import daemon_fixture, own_daemon

MS = 1_000_000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def create(daemon, name: str, check: dict | None, cmd: list[str] | None = None) -> str:
    body = {"Image": "busybox", "Cmd": cmd or ["sleep", "60"], **({"Healthcheck": check} if check else {})}
    cid = daemon.client.json("POST", "/containers/create", {"name": name}, body)["Id"]
    daemon.client.request("POST", f"/containers/{cid}/start").read()
    return cid


def until(daemon, name: str, predicate, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = daemon.client.json("GET", f"/containers/{name}/json")
        if predicate(info):
            return info
        assert time.monotonic() < deadline, info["State"]
        time.sleep(0.1)


def status(info: dict) -> str | None:
    return (info["State"].get("Health") or {}).get("Status")


def test_a_passing_check_makes_the_container_healthy_in_inspect_and_ps(daemon):
    create(daemon, "hc-ok", {"Test": ["CMD-SHELL", "echo fine"], "Interval": 200 * MS})
    try:
        first = daemon.client.json("GET", "/containers/hc-ok/json")
        assert status(first) in ("starting", "healthy")
        info = until(daemon, "hc-ok", lambda i: status(i) == "healthy")
        h = info["State"]["Health"]
        assert h["FailingStreak"] == 0 and h["Log"] and h["Log"][-1]["ExitCode"] == 0
        assert h["Log"][-1]["Output"] == "fine\n"
        assert seconds(h["Log"][-1]["End"]) >= seconds(h["Log"][-1]["Start"]) > 0
        until(daemon, "hc-ok", lambda i: len(i["State"]["Health"]["Log"]) == 5)
        time.sleep(0.5)
        assert len(daemon.client.json("GET", "/containers/hc-ok/json")["State"]["Health"]["Log"]) == 5
        ps = daemon.client.json("GET", "/containers/json", {"filters": '{"name": ["hc-ok"]}'})
        assert ps[0]["Status"].startswith("Up ") and ps[0]["Status"].endswith("(healthy)")
        cli = daemon.cli("ps", "--filter", "name=hc-ok", "--format", "{{.Status}}")
        assert "(healthy)" in cli.stdout
        healthy = daemon.client.json("GET", "/containers/json", {"filters": '{"health": ["healthy"]}'})
        assert [c["Names"] for c in healthy] == [["/hc-ok"]]
        # The monitor told the daemon: one health_status event, when the status changed.
        raw = daemon.client.request("GET", "/events", {"since": "0", "until": str(int(time.time()) + 1),
                                                        "filters": '{"event": ["health_status"]}'}).read()
        seen = [json.loads(line) for line in raw.splitlines() if line.strip()]
        mine = [e["Action"] for e in seen if e["Actor"]["Attributes"].get("name") == "hc-ok"]
        assert mine == ["health_status: healthy"], seen
    finally:
        daemon.cli("rm", "-f", "hc-ok")


def test_a_failing_check_makes_it_unhealthy_after_the_retries(daemon):
    create(daemon, "hc-bad", {"Test": ["CMD-SHELL", "echo oops; exit 1"], "Interval": 200 * MS, "Retries": 3})
    try:
        info = until(daemon, "hc-bad", lambda i: status(i) == "unhealthy")
        h = info["State"]["Health"]
        assert h["FailingStreak"] == 3 and [e["ExitCode"] for e in h["Log"]] == [1, 1, 1]
        assert h["Log"][0]["Output"] == "oops\n"
        # Until then it was starting: the first two failures did not make it unhealthy.
        assert "(unhealthy)" in daemon.cli("ps", "--filter", "name=hc-bad", "--format", "{{.Status}}").stdout
    finally:
        daemon.cli("rm", "-f", "hc-bad")


def test_a_probe_past_its_timeout_is_killed_and_fails(daemon):
    create(daemon, "hc-slow", {"Test": ["CMD", "sleep", "30"], "Interval": 100 * MS, "Timeout": 300 * MS,
                               "Retries": 1})
    try:
        info = until(daemon, "hc-slow", lambda i: status(i) == "unhealthy")
        entry = info["State"]["Health"]["Log"][0]
        assert entry["ExitCode"] == -1 and "exceeded timeout" in entry["Output"]
        assert seconds(entry["End"]) - seconds(entry["Start"]) < 5
        ps = daemon.cli("exec", "hc-slow", "ps").stdout
        assert ps.count("sleep 30") <= 1, ps  # killed at their timeout: no probes piling up
    finally:
        daemon.cli("rm", "-f", "hc-slow")


def test_failures_in_the_start_period_do_not_count(daemon):
    create(daemon, "hc-start", {"Test": ["CMD-SHELL", "test -e /tmp/up"], "Interval": 100 * MS, "Retries": 1,
                                "StartPeriod": 60_000 * MS})
    try:
        time.sleep(1)
        info = daemon.client.json("GET", "/containers/hc-start/json")
        assert status(info) == "starting" and info["State"]["Health"]["FailingStreak"] == 0
        assert len(info["State"]["Health"]["Log"]) >= 2
        assert daemon.cli("exec", "hc-start", "touch", "/tmp/up").returncode == 0
        until(daemon, "hc-start", lambda i: status(i) == "healthy")
    finally:
        daemon.cli("rm", "-f", "hc-start")


def test_bad_healthchecks_are_refused(daemon):
    for check, words in (({"Test": ["CMD", "true"], "Interval": 10}, "less than 1ms"),
                         ({"Test": ["CMD", "true"], "Retries": -1}, "cannot be negative"),
                         ({"Test": ["SHELL", "true"]}, "NONE, CMD or CMD-SHELL"),
                         ({"Test": "true"}, "list of strings")):
        with pytest.raises(APIError) as e:
            daemon.client.json("POST", "/containers/create", None,
                               {"Image": "busybox", "Cmd": ["true"], "Healthcheck": check})
        assert e.value.status == 400 and words in str(e.value), (check, e.value)


def test_the_run_options_and_no_healthcheck(daemon):
    run = daemon.cli("run", "-d", "--name", "hc-cli", "--health-cmd", "exit 0", "--health-interval", "300ms",
                     "--health-timeout", "2s", "--health-retries", "2", "--health-start-period", "1m",
                     "busybox", "sleep", "60")
    none = daemon.cli("create", "--name", "hc-none", "--no-healthcheck", "busybox", "true")
    try:
        assert run.returncode == 0 and none.returncode == 0, run.stderr + none.stderr
        assert "not supported" not in run.stderr  # no warning any more
        check = daemon.client.json("GET", "/containers/hc-cli/json")["Config"]["Healthcheck"]
        assert check == {"Test": ["CMD-SHELL", "exit 0"], "Interval": 300 * MS, "Timeout": 2000 * MS,
                         "StartPeriod": 60_000 * MS, "Retries": 2}
        until(daemon, "hc-cli", lambda i: status(i) == "healthy")
        info = daemon.client.json("GET", "/containers/hc-none/json")
        assert info["Config"]["Healthcheck"] == {"Test": ["NONE"]} and "Health" not in info["State"]
        bad = daemon.cli("create", "--no-healthcheck", "--health-cmd", "true", "busybox", "true")
        assert bad.returncode != 0 and "conflicts" in bad.stderr
    finally:
        daemon.cli("rm", "-f", "hc-cli", "hc-none")


def test_an_images_healthcheck_is_used_and_can_be_overridden(daemon, tmp_path: Path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n"
                                    "HEALTHCHECK --interval=200ms --retries=2 CMD test -e /tmp/ok || exit 1\n"
                                    'CMD ["sleep", "60"]\n')
    built = daemon.cli("build", "-t", "hc-image:v1", str(ctx))
    assert built.returncode == 0, built.stdout + built.stderr
    try:
        image = daemon.client.json("GET", "/images/hc-image:v1/json")
        assert image["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /tmp/ok || exit 1"],
                                                  "Interval": 200 * MS, "Retries": 2}
        body = {"Image": "hc-image:v1"}
        cid = daemon.client.json("POST", "/containers/create", {"name": "hc-img"}, body)["Id"]
        daemon.client.request("POST", f"/containers/{cid}/start").read()
        until(daemon, "hc-img", lambda i: status(i) == "unhealthy")
        daemon.cli("exec", "hc-img", "touch", "/tmp/ok")
        until(daemon, "hc-img", lambda i: status(i) == "healthy")
        # The request's fields win, the image's fill in the rest.
        body = {"Image": "hc-image:v1", "Healthcheck": {"Test": ["CMD", "true"], "Retries": 5}}
        cid2 = daemon.client.json("POST", "/containers/create", {"name": "hc-img2"}, body)["Id"]
        check = daemon.client.json("GET", f"/containers/{cid2}/json")["Config"]["Healthcheck"]
        assert check == {"Test": ["CMD", "true"], "Interval": 200 * MS, "Retries": 5}
    finally:
        daemon.cli("rm", "-f", "hc-img", "hc-img2")
        daemon.cli("rmi", "hc-image:v1")


@pytest.fixture
def own(daemon, tmp_path: Path):
    """A daemon of the test's own, that it may kill (the module's would count as a leak when restarted)."""
    with own_daemon(daemon, tmp_path) as d:
        yield d


def test_checks_go_on_while_the_daemon_is_down(own):
    create(own, "hc-alone", {"Test": ["CMD-SHELL", "echo up"], "Interval": 1000 * MS})
    until(own, "hc-alone", lambda i: status(i) == "healthy")
    own.stop(signal.SIGKILL)
    down = time.time()
    time.sleep(3)
    up = time.time()
    own.start()
    info = own.client.json("GET", "/containers/hc-alone/json")
    starts = [seconds(e["Start"]) for e in info["State"]["Health"]["Log"]]
    assert sum(down < s < up for s in starts) >= 2, (down, up, starts)
    assert status(info) == "healthy" and info["State"]["Running"]
    time.sleep(1.5)
    later = own.client.json("GET", "/containers/hc-alone/json")["State"]["Health"]["Log"]
    assert seconds(later[-1]["Start"]) > up
