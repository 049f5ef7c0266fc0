"""Chapter 13: our ``minidocker compose`` against minidockerd: a three-service application up, used,
converged again, changed, and down; and bad input refused in one line with nothing left behind."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

PROJECT = "com.docker.compose.project"

APP = """
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -h /www"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
  job:
    image: busybox
    command: ["wget", "-q", "-O-", "http://web/"]  # its first instruction looks 'web' up (chapter 12)
    depends_on:
      web: {condition: service_healthy}
  client:
    image: busybox
    command: ["sh", "-c", "while true; do wget -q -O- http://web/; sleep ${CLIENT_SLEEP:-1}; done"]
    depends_on: [web]
volumes:
  data: {}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.helpers_10_daemon import daemon_fixture

    yield from daemon_fixture(tmp_path_factory)


def compose(daemon, directory: Path, *args: str, timeout: float = 120):
    return daemon.cli("compose", *args, cwd=directory, timeout=timeout)


def objects(daemon, project: str) -> dict[str, list[str]]:
    """The project's containers, networks and volumes, by their labels."""
    client = daemon.client
    mine = lambda items: sorted(i.get("Name") or i["Names"][0] for i in items  # noqa: E731
                                if (i.get("Labels") or {}).get(PROJECT) == project)
    return {"containers": mine(client.json("GET", "/containers/json", {"all": True})),
            "networks": mine(client.json("GET", "/networks")),
            "volumes": mine(client.json("GET", "/volumes")["Volumes"] or [])}


def ids(daemon, project: str) -> dict[str, str]:
    return {c["Names"][0].lstrip("/"): c["Id"] for c in daemon.client.json("GET", "/containers/json",
                                                                             {"all": True})
            if (c.get("Labels") or {}).get(PROJECT) == project}


def test_a_three_service_application_up_used_changed_and_down(daemon, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(APP)
    try:
        up = compose(daemon, tmp_path, "-p", "demo", "up", "-d")
        assert up.returncode == 0, up.stderr + daemon.log_tail()
        found = objects(daemon, "demo")
        assert found == {"containers": ["/demo-client-1", "/demo-job-1", "/demo-web-1"],
                         "networks": ["demo_default"], "volumes": ["demo_data"]}
        web = daemon.client.json("GET", "/containers/demo-web-1/json")
        assert web["Config"]["Labels"]["com.docker.compose.service"] == "web"
        assert web["Config"]["Labels"]["com.docker.compose.container-number"] == "1"
        assert web["Config"]["Labels"]["com.docker.compose.oneoff"] == "False"
        assert web["State"]["Running"]

        ps = compose(daemon, tmp_path, "-p", "demo", "ps", "-a")
        assert ps.returncode == 0, ps.stderr
        lines = ps.stdout.splitlines()
        assert lines[0].split()[:4] == ["NAME", "IMAGE", "COMMAND", "SERVICE"]
        assert sorted(line.split()[0] for line in lines[1:]) == ["demo-client-1", "demo-job-1", "demo-web-1"]

        wait = daemon.client.json("POST", "/containers/demo-job-1/wait")
        logs = compose(daemon, tmp_path, "-p", "demo", "logs", "job")
        assert logs.returncode == 0, logs.stderr
        # it reached web by its service name, once web was healthy
        assert wait["StatusCode"] == 0, logs.stdout + up.stderr
        assert "job-1  | hello-compose" in logs.stdout

        exec_ = compose(daemon, tmp_path, "-p", "demo", "exec", "-T", "web", "cat", "/www/index.html")
        assert (exec_.returncode, exec_.stdout) == (0, "hello-compose\n"), exec_.stderr

        before = ids(daemon, "demo")
        again = compose(daemon, tmp_path, "-p", "demo", "up", "-d")
        assert again.returncode == 0, again.stderr
        assert ids(daemon, "demo") == before  # nothing changed: nothing recreated
        assert "Recreate" not in again.stderr

        (tmp_path / ".env").write_text("CLIENT_SLEEP=2\n")  # the client's config, and so its hash, changes
        changed = compose(daemon, tmp_path, "-p", "demo", "up", "-d")
        assert changed.returncode == 0, changed.stderr
        after = ids(daemon, "demo")
        assert after["demo-web-1"] == before["demo-web-1"] and after["demo-job-1"] == before["demo-job-1"]
        assert after["demo-client-1"] != before["demo-client-1"]

        down = compose(daemon, tmp_path, "-p", "demo", "down", "-v")
        assert down.returncode == 0, down.stderr
        assert objects(daemon, "demo") == {"containers": [], "networks": [], "volumes": []}
    finally:
        compose(daemon, tmp_path, "-p", "demo", "down", "-v")


@pytest.mark.parametrize(("text", "expected"), [
    ("services:\n  web:\n    image: busybox\n    colour: blue\n",
     "services.web: additional property 'colour' is not allowed"),
    ("services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [a]}\n",
     "services.a.depends_on: dependency cycle detected: a -> b -> a"),
    ("services:\n  web: {image: busybox, command: [sleep, '60']}\n  db: {image: nosuchimage:1}\n",
     "services.db.image: nosuchimage:1: "),
    ("services:\n  web: {image: busybox, env_file: missing.env}\n",
     "services.web.env_file: couldn't find env file: "),
])
def test_bad_input_is_one_line_and_nothing_is_created(daemon, tmp_path: Path, text: str,
                                                      expected: str) -> None:
    (tmp_path / "compose.yaml").write_text(text)
    out = compose(daemon, tmp_path, "-p", "bad", "up", "-d")
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if not line.startswith(" ")]  # not the progress
    assert len(lines) == 1 and lines[0].startswith(expected), out.stderr
    assert objects(daemon, "bad") == {"containers": [], "networks": [], "volumes": []}


def test_a_port_already_taken_names_the_field_and_leaves_nothing(daemon, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "compose.yaml").write_text(textwrap.dedent(f"""
            services:
              first: {{image: busybox, command: [sleep, "60"]}}
              web:
                image: busybox
                command: [sleep, "60"]
                ports: ["{port}:80"]
                depends_on: [first]
            """))
        out = compose(daemon, tmp_path, "-p", "taken", "up", "-d")
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if not line.startswith(" ")]
    assert len(lines) == 1 and lines[0].startswith("services.web.ports: "), out.stderr
    assert objects(daemon, "taken") == {"containers": [], "networks": [], "volumes": []}
