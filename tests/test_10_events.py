"""Chapter 10: ``GET /events`` and the list filters Compose relies on (labels on everything).

Raw HTTP through our own client class (what any client sends), then the real ``docker`` CLI:
``docker events --since --until --filter`` and ``docker ps --filter label=... --format``.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time

import pytest

from minidocker.client.client import APIError
from minidocker.daemon import events
from tests.helpers_10_daemon import daemon_fixture

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def _events(client, since: float, until: float | None = None, **filters: list[str]) -> list[dict]:
    query = {"since": f"{since:.9f}", "until": f"{until or time.time():.9f}",
             "filters": json.dumps(filters) if filters else None}
    return [json.loads(line) for line in client.request("GET", "/events", query, timeout=30) if line.strip()]


def _run(client, *cmd: str, labels: dict | None = None, name: str | None = None, binds=None) -> str:
    body = {"Image": "busybox", "Cmd": list(cmd), "Labels": labels or {},
            "HostConfig": {"Binds": binds or []}}
    cid = client.json("POST", "/containers/create", {"name": name}, body)["Id"]
    client.request("POST", f"/containers/{cid}/start").read()
    client.json("POST", f"/containers/{cid}/wait")
    return cid


# ---- the pure parts ------------------------------------------------------------------------------
def test_times_as_docker_takes_them():
    assert events.parse_time("1700000000") == 1_700_000_000_000_000_000
    assert events.parse_time("1700000000.000000001") == 1_700_000_000_000_000_001
    assert events.parse_time("1700000000.5") == 1_700_000_000_500_000_000
    assert events.parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000_000_000
    assert events.parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000
    assert events.parse_time("10m", now=1000.0) == 400 * 1_000_000_000
    assert events.parse_time("1h30m", now=10_000.0) == 4600 * 1_000_000_000
    with pytest.raises(events.errors.InvalidArgument):
        events.parse_time("yesterday")


def test_the_filter_rules_of_dockers_events():
    start = events.message("container", "start", "abc123", {"name": "web", "image": "busybox",
                                                            "com.docker.compose.project": "demo"})
    health = events.message("container", "health_status: healthy", "abc123", {"name": "web"})
    volume = events.message("volume", "create", "data", {"driver": "local"})
    assert start["status"] == "start" and start["from"] == "busybox" and start["scope"] == "local"
    assert "status" not in volume and volume["Actor"] == {"ID": "data", "Attributes": {"driver": "local"}}
    assert events.matches(start, {"type": ["container"], "event": ["start", "die"]})
    assert not events.matches(volume, {"type": ["container"]})
    assert events.matches(start, {"container": ["web"]}) and events.matches(start, {"container": ["abc"]})
    assert not events.matches(volume, {"container": ["web"]})  # a key for another type excludes
    assert events.matches(health, {"event": ["health_status"]})  # the prefix, as Docker's
    assert not events.matches(start, {"event": ["health_status"]})
    assert events.matches(start, {"label": ["com.docker.compose.project=demo"]})
    assert events.matches(start, {"label": ["com.docker.compose.project"]})
    assert not events.matches(start, {"label": ["com.docker.compose.project", "other"]})  # all of them
    assert events.matches(start, {"image": ["busybox"]}) and not events.matches(start, {"image": ["alpine"]})
    tagged = events.message("container", "start", "abc123", {"image": "busybox:1.36"})
    assert events.matches(tagged, {"image": ["busybox"]})  # the tag stripped, as Docker's


def test_the_ring_forgets_the_oldest():
    broker = events.Broker(size=3)
    for i in range(5):
        broker.publish(events.message("volume", "create", f"v{i}", now_ns=i))
    assert [e["Actor"]["ID"] for e in broker.since(0)] == ["v2", "v3", "v4"]
    assert [e["Actor"]["ID"] for e in broker.since(3, 3)] == ["v3"]


# ---- against the daemon --------------------------------------------------------------------------
def test_a_run_gives_create_start_die_destroy_in_order(daemon):
    client, t0 = daemon.client, time.time()
    cid = _run(client, "sh", "-c", "exit 3", labels={"app": "events"})
    client.request("DELETE", f"/containers/{cid}").read()
    found = _events(client, t0, type=["container"])
    mine = [e for e in found if e["Actor"]["ID"] == cid]
    assert [e["Action"] for e in mine] == ["create", "start", "die", "destroy"]
    die = mine[2]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["app"] == "events" and die["Actor"]["Attributes"]["image"] == "busybox"
    assert die["status"] == "die" and die["id"] == cid and die["from"] == "busybox"
    assert all(isinstance(e["time"], int) and e["timeNano"] // 10**9 == e["time"] for e in mine)
    assert [e["timeNano"] for e in mine] == sorted(e["timeNano"] for e in mine)


def test_since_until_replay_a_window_and_end(daemon):
    client = daemon.client
    t0 = time.time()
    first = _run(client, "true")
    t1 = time.time()
    second = _run(client, "true")
    t2 = time.time()
    try:
        ids = {e["Actor"]["ID"] for e in _events(client, t0, t1, type=["container"])}
        assert first in ids and second not in ids
        ids = {e["Actor"]["ID"] for e in _events(client, t1, t2, type=["container"])}
        assert second in ids and first not in ids
        with pytest.raises(APIError) as e:
            _events(client, t2, t0)
        assert e.value.status == 400
    finally:
        for cid in (first, second):
            client.request("DELETE", f"/containers/{cid}").read()


def test_a_live_stream_sees_what_happens_and_ends_at_until(daemon):
    client = daemon.client
    lines: queue.Queue = queue.Queue()
    until = time.time() + 8

    def follow() -> None:
        filters = json.dumps({"type": ["container"], "label": ["stream=yes"]})
        for line in client.request("GET", "/events", {"until": f"{until:.3f}", "filters": filters},
                                   timeout=30):
            if line.strip():
                lines.put(json.loads(line))
        lines.put(None)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.5)  # subscribed
    other = _run(client, "true")
    cid = _run(client, "true", labels={"stream": "yes"})
    client.request("DELETE", f"/containers/{cid}").read()
    client.request("DELETE", f"/containers/{other}").read()
    seen = []
    while (event := lines.get(timeout=20)) is not None:
        seen.append(event)
    assert time.time() >= until - 0.5  # it ended at until, not before
    assert [e["Action"] for e in seen] == ["create", "start", "die", "destroy"]
    assert {e["Actor"]["ID"] for e in seen} == {cid}
    reader.join(5)


def test_stop_kill_exec_rename_and_restart_events(daemon):
    client, t0 = daemon.client, time.time()
    cid = client.json("POST", "/containers/create", {"name": "ev-life"},
                      {"Image": "busybox", "Cmd": ["sleep", "60"]})["Id"]
    try:
        client.request("POST", f"/containers/{cid}/start").read()
        exec_id = client.json("POST", f"/containers/{cid}/exec", body={"Cmd": ["true"]})["Id"]
        client.request("POST", f"/exec/{exec_id}/start", body={"Detach": True}).read()
        client.request("POST", f"/containers/{cid}/rename", {"name": "ev-life2"}).read()
        client.request("POST", f"/containers/{cid}/stop", {"t": 1}).read()
        found = [e for e in _events(client, t0, container=[cid]) if e["Type"] == "container"]
        actions = [e["Action"] for e in found]
        assert actions[:2] == ["create", "start"]
        assert "exec_create: true" in actions and "exec_start: true" in actions
        rename = found[actions.index("rename")]
        assert rename["Actor"]["Attributes"]["oldName"] == "/ev-life"
        assert rename["Actor"]["Attributes"]["name"] == "ev-life2"
        kill = found[actions.index("kill")]
        assert kill["Actor"]["Attributes"]["signal"] == "15"
        assert actions[-3:] == ["kill", "die", "stop"]
        assert [e["Action"] for e in _events(client, t0, event=["exec_create"])] == ["exec_create: true"]
        assert client.json("GET", "/containers/json", {"all": 1, "filters": json.dumps(
            {"name": ["ev-life2"]})})[0]["Id"] == cid
        with pytest.raises(APIError) as e:
            client.request("POST", f"/containers/{cid}/rename", {"name": "ev-life2"})
        assert e.value.status == 400
    finally:
        client.request("DELETE", f"/containers/{cid}", {"force": 1}).read()


def test_volume_and_image_events(daemon):
    client, t0 = daemon.client, time.time()
    client.json("POST", "/volumes/create", body={"Name": "ev-vol", "Labels": {"k": "v"}})
    cid = _run(client, "true", binds=["ev-vol:/data", "ev-auto:/auto"])
    client.request("DELETE", f"/containers/{cid}").read()
    for name in ("ev-vol", "ev-auto"):
        client.request("DELETE", f"/volumes/{name}").read()
    client.request("POST", "/images/busybox/tag", {"repo": "evtest", "tag": "one"}).read()
    client.request("DELETE", "/images/evtest:one").read()
    found = _events(client, t0, type=["volume", "image"])
    volume = [(e["Action"], e["Actor"]["ID"]) for e in found if e["Type"] == "volume"]
    assert volume == [("create", "ev-vol"), ("create", "ev-auto"), ("mount", "ev-vol"), ("mount", "ev-auto"),
                      ("unmount", "ev-vol"), ("unmount", "ev-auto"), ("destroy", "ev-vol"),
                      ("destroy", "ev-auto")]
    mount = next(e for e in found if e["Action"] == "mount")
    assert mount["Actor"]["Attributes"]["container"] == cid
    assert mount["Actor"]["Attributes"]["destination"] == "/data"
    image = [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in found if e["Type"] == "image"]
    assert image[0] == ("tag", "evtest:one") and image[1][0] == "untag"
    assert [e["Type"] for e in _events(client, t0, type=["volume"], volume=["ev-vol"])] == ["volume"] * 4


def test_container_list_filters(daemon):
    client = daemon.client
    a = _run(client, "true", labels={"com.docker.compose.project": "p1", "tier": "web"}, name="flt-a")
    b = _run(client, "sh", "-c", "exit 2", labels={"com.docker.compose.project": "p2"}, name="flt-b",
             binds=["flt-vol:/v"])
    try:
        def ids(**filters: list[str]) -> set[str]:
            found = client.json("GET", "/containers/json", {"all": 1, "filters": json.dumps(filters)})
            return {c["Id"] for c in found} & {a, b}

        assert ids(label=["com.docker.compose.project"]) == {a, b}
        assert ids(label=["com.docker.compose.project=p1"]) == {a}
        assert ids(label=["com.docker.compose.project=p1", "tier=web"]) == {a}
        assert ids(label=["com.docker.compose.project=p2", "tier=web"]) == set()  # all of them
        assert ids(name=["flt-"]) == {a, b} and ids(name=["^flt-b$"]) == {b}
        assert ids(id=[a[:12]]) == {a}
        assert ids(exited=["2"]) == {b} and ids(status=["exited"]) == {a, b}
        assert ids(ancestor=["busybox"]) == {a, b}
        assert ids(volume=["flt-vol"]) == {b} and ids(volume=["/v"]) == {b}
        assert ids(health=["none"]) == {a, b} and ids(health=["healthy"]) == set()
        assert ids(network=["bridge"]) == {a, b}
        # status implies all: no ?all needed, as docker ps --filter status=exited
        found = client.json("GET", "/containers/json", {"filters": json.dumps({"status": ["exited"]})})
        assert {a, b} <= {c["Id"] for c in found}
        for bad in ({"status": ["sleeping"]}, {"colour": ["red"]}, {"health": ["fine"]}):
            with pytest.raises(APIError) as e:
                client.json("GET", "/containers/json", {"filters": json.dumps(bad)})
            assert e.value.status == 400
    finally:
        for cid in (a, b):
            client.request("DELETE", f"/containers/{cid}").read()
        client.request("DELETE", "/volumes/flt-vol").read()


def test_volume_and_image_list_filters(daemon):
    client = daemon.client
    client.json("POST", "/volumes/create", body={"Name": "lbl-a", "Labels": {
        "com.docker.compose.project": "p1", "com.docker.compose.volume": "data"}})
    client.json("POST", "/volumes/create", body={"Name": "lbl-b"})
    try:
        def names(**filters: list[str]) -> set[str]:
            found = client.json("GET", "/volumes", {"filters": json.dumps(filters)})["Volumes"]
            return {v["Name"] for v in found} & {"lbl-a", "lbl-b"}

        assert names() == {"lbl-a", "lbl-b"}
        assert names(label=["com.docker.compose.project=p1"]) == {"lbl-a"}
        assert names(label=["com.docker.compose.project=p2"]) == set()
        assert names(name=["lbl-b"]) == {"lbl-b"} and names(dangling=["true"]) == {"lbl-a", "lbl-b"}
        inspected = client.json("GET", "/volumes/lbl-a")
        assert inspected["Labels"]["com.docker.compose.volume"] == "data"
    finally:
        for name in ("lbl-a", "lbl-b"):
            client.request("DELETE", f"/volumes/{name}").read()

    def tags(**filters: list[str]) -> set[str]:
        found = client.json("GET", "/images/json", {"filters": json.dumps(filters)})
        return {t for i in found for t in i["RepoTags"]}

    assert "busybox:latest" in tags(reference=["busybox"])
    assert "busybox:latest" in tags(reference=["busy*:latest"])
    assert tags(reference=["nothing-here"]) == set()
    assert tags(dangling=["true"]) & {"busybox:latest"} == set()
    assert tags(label=["no.such.label"]) == set()


# ---- the real docker CLI -------------------------------------------------------------------------
@pytest.fixture
def docker(daemon, tmp_path):
    if DOCKER is None:
        pytest.skip("no docker CLI here: apt-get install docker.io")
    env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=timeout)

    return run


def test_docker_events_since_until_and_filters(docker, daemon):
    t0 = time.time()
    ran = docker("run", "--rm", "--label", "cli=events", "busybox", "true")
    assert ran.returncode == 0, ran.stderr
    t1 = time.time()
    shown = docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter", "label=cli=events",
                   "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.image}}", timeout=30)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line for line in lines if not line.startswith("container attach")] == [
        "container create busybox", "container start busybox", "container die busybox",
        "container destroy busybox"]
    plain = docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter", "event=die",
                   timeout=30)
    assert plain.returncode == 0 and " container die " in plain.stdout and "exitCode=0" in plain.stdout
    as_json = docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter", "event=start",
                     "--format", "{{json .}}", timeout=30)
    assert json.loads(as_json.stdout.splitlines()[0])["Actor"]["Attributes"]["cli"] == "events"


def test_docker_ps_filter_label_and_format(docker):
    started = [docker("run", "-d", "--name", name, "--label", f"com.docker.compose.project={project}",
                      "--label", f"com.docker.compose.service={name}", "busybox", "sleep", "60")
               for name, project in (("cli-web", "shop"), ("cli-db", "shop"), ("cli-other", "blog"))]
    try:
        assert all(r.returncode == 0 for r in started), [r.stderr for r in started]
        shown = docker("ps", "--filter", "label=com.docker.compose.project=shop",
                       "--format", "{{.Names}} {{.Label \"com.docker.compose.service\"}} {{.State}}")
        assert shown.returncode == 0, shown.stderr
        assert sorted(shown.stdout.splitlines()) == ["cli-db cli-db running", "cli-web cli-web running"]
        quiet = docker("ps", "-q", "--filter", "label=com.docker.compose.project=blog")
        assert len(quiet.stdout.split()) == 1
        both = docker("ps", "--filter", "label=com.docker.compose.project=shop", "--filter", "name=cli-web",
                      "--format", "{{.Names}}")
        assert both.stdout == "cli-web\n"
    finally:
        docker("rm", "-f", "cli-web", "cli-db", "cli-other")
