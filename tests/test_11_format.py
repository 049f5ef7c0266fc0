"""Chapter 11: our CLI's ``ps --filter/--format`` and ``events``, as docker's users type them."""

from __future__ import annotations

import json
import time

import pytest

from minidocker.client import formats
from tests.helpers_10_daemon import daemon_fixture

SUMMARY = {"Id": "4bf2315b4ab9" + "0" * 52, "Names": ["/web"], "Image": "busybox", "Command": "sleep 60",
           "Created": int(time.time()) - 5, "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp",
                                                       "IP": "0.0.0.0"}],
           "Labels": {"com.docker.compose.service": "web", "tier": "front"}, "State": "running",
           "Status": "Up 5 seconds", "HostConfig": {"NetworkMode": "default"},
           "NetworkSettings": {"Networks": {}}, "Mounts": [{"Type": "volume", "Name": "data"}]}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


def test_the_fields_users_type():
    row = formats.ps_row({**SUMMARY, "Created": int(time.time()) - 5})  # 5 s ago now, not at collection
    assert formats.render_one("{{.Names}} {{.Status}}", row) == "web Up 5 seconds"
    assert formats.render_one('{{.Label "com.docker.compose.service"}}/{{.Label "nope"}}', row) == "web/"
    assert formats.render_one("{{.ID}} {{.Ports}} {{.Networks}} {{.Mounts}}", row) == \
        "4bf2315b4ab9 0.0.0.0:8080->80/tcp bridge data"
    assert formats.render_one("{{.Labels}}", row) == "com.docker.compose.service=web,tier=front"
    assert formats.render_one("{{.Command}} {{.RunningFor}} {{.State}}", row) == \
        '"sleep 60" 5 seconds ago running'
    whole = json.loads(formats.render_one("{{json .}}", row))
    assert whole["Names"] == "web" and whole["Image"] == "busybox" and whole["LocalVolumes"] == "1"
    assert formats.render_one("{{.Nope}}", row) == "<no value>"


def test_table_has_headers_and_columns():
    rows = [formats.ps_row(SUMMARY), formats.ps_row({**SUMMARY, "Id": "a" * 64, "Names": ["/database"]})]
    text = formats.render("table {{.ID}}\\t{{.Names}}\\t{{.Label \"tier\"}}", rows, formats.PS_HEADERS)
    assert text.splitlines() == ["CONTAINER ID   NAMES      TIER", "4bf2315b4ab9   web        front",
                                 "aaaaaaaaaaaa   database   front"]


def test_event_line_as_docker_prints_it():
    line = formats.event_line({"Type": "container", "Action": "start", "timeNano": 1_700_000_000_000_000_001,
                               "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}}})
    assert line.endswith(" container start abc (image=busybox, name=web)")
    assert ".000000001" in line.split()[0]


def test_ps_filter_and_format_with_our_cli(daemon):
    for name, project in (("fmt-web", "shop"), ("fmt-db", "shop"), ("fmt-blog", "blog")):
        ran = daemon.cli("run", "-d", "--name", name, "--label", f"com.docker.compose.project={project}",
                         "busybox", "sleep", "60")
        assert ran.returncode == 0, ran.stderr
    try:
        shown = daemon.cli("ps", "--filter", "label=com.docker.compose.project=shop",
                           "--format", "{{.Names}} {{.State}}")
        assert shown.returncode == 0, shown.stderr
        assert sorted(shown.stdout.splitlines()) == ["fmt-db running", "fmt-web running"]
        table = daemon.cli("ps", "--filter", "name=fmt-blog", "--format", "table {{.ID}}\\t{{.Image}}")
        assert table.stdout.splitlines()[0] == "CONTAINER ID   IMAGE"
        assert table.stdout.splitlines()[1].endswith("   busybox") and len(table.stdout.splitlines()) == 2
        as_json = daemon.cli("ps", "--filter", "name=fmt-web", "--format", "{{json .}}")
        assert json.loads(as_json.stdout)["Names"] == "fmt-web"
        bad = daemon.cli("ps", "--filter", "status=sleeping")
        assert bad.returncode == 1 and "invalid filter" in bad.stderr
    finally:
        daemon.cli("rm", "-f", "fmt-web", "fmt-db", "fmt-blog")


def test_events_with_our_cli(daemon):
    t0 = time.time()
    ran = daemon.cli("run", "--rm", "--label", "fmt=events", "busybox", "true")
    assert ran.returncode == 0, ran.stderr
    t1 = time.time()
    shown = daemon.cli("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "-f", "label=fmt=events",
                       "--format", "{{.Type}} {{.Action}}")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["container create", "container start", "container die",
                                         "container destroy"]
    plain = daemon.cli("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "-f", "event=die")
    assert " container die " in plain.stdout and "exitCode=0" in plain.stdout and "fmt=events" in plain.stdout
