"""Chapter 13: every ``minidocker compose`` command against minidockerd, beyond the example's up/ps/logs/
exec/down: ``run --rm``, ``build`` (context, dockerfile, args, target) and ``down --rmi local``, ``push``
to the test's registry, ``top``, ``events``, ``start``/``stop``/``restart``/``kill``/``rm``, ``logs -f``,
``up`` in the foreground, ``deploy.replicas`` (two containers behind one name), ``deploy.resources``,
``profiles``, volumes (named, bind, read-only, external) and networks with aliases.

Each test has its own project (``-p``) and takes it down at the end; busybox only, ``-t 0`` stops.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from minidocker.client.client import APIError
from tests.helpers_13_compose import wait_for

PROJECT = "com.docker.compose.project"
SLEEPER = '{image: busybox, command: [sleep, "300"], init: true, stop_grace_period: 0s}'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.helpers_10_daemon import daemon_fixture

    yield from daemon_fixture(tmp_path_factory)


def compose(daemon, directory: Path, project: str, *args: str, timeout: float = 120):
    return daemon.cli("compose", "-p", project, *args, cwd=directory, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"
    return result


def write(directory: Path, text: str) -> Path:
    (directory / "compose.yaml").write_text(textwrap.dedent(text))
    return directory


def mine(daemon, project: str) -> list[dict]:
    """The project's containers, every one, as ``/containers/json`` summaries, by name."""
    found = daemon.client.json("GET", "/containers/json", {"all": True})
    return sorted((c for c in found if (c.get("Labels") or {}).get(PROJECT) == project),
                  key=lambda c: c["Names"][0])


def names(daemon, project: str) -> list[str]:
    return [c["Names"][0].lstrip("/") for c in mine(daemon, project)]


def inspect(daemon, name: str) -> dict:
    return daemon.client.json("GET", f"/containers/{name}/json")


def left(daemon, project: str) -> dict[str, list[str]]:
    client = daemon.client
    labelled = lambda items: sorted(i.get("Name") or i["Names"][0] for i in items  # noqa: E731
                                    if (i.get("Labels") or {}).get(PROJECT) == project)
    return {"containers": labelled(client.json("GET", "/containers/json", {"all": True})),
            "networks": labelled(client.json("GET", "/networks")),
            "volumes": labelled(client.json("GET", "/volumes")["Volumes"] or [])}


NOTHING = {"containers": [], "networks": [], "volumes": []}


@pytest.fixture
def project(daemon, tmp_path: Path, request):
    """A project name of this test's own, taken down (containers, networks, volumes) at the end."""
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-24:]
    yield name
    if (tmp_path / "compose.yaml").is_file():
        compose(daemon, tmp_path, name, "down", "-v", "-t", "0")


def test_run_rm_prints_the_output_gives_the_exit_status_and_leaves_nothing(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          tool:
            image: busybox
            command: [echo, from-the-file]
            environment: {{GREETING: hello}}
          dep: {SLEEPER}
          needy:
            image: busybox
            depends_on: [dep]
        """)
    out = ok(compose(daemon, tmp_path, project, "run", "--rm", "tool"))
    assert out.stdout == "from-the-file\n"
    out = ok(compose(daemon, tmp_path, project, "run", "--rm", "-e", "EXTRA=1", "tool",
                     "sh", "-c", 'echo "$GREETING $EXTRA"; echo to-stderr >&2'))
    assert (out.stdout, out.stderr.strip().splitlines()[-1]) == ("hello 1\n", "to-stderr")
    failed = compose(daemon, tmp_path, project, "run", "--rm", "tool", "sh", "-c", "exit 3")
    assert failed.returncode == 3, failed.stderr
    assert names(daemon, project) == []  # --rm: none of the one-off containers is left
    # its dependencies are brought up first (and stay), the one-off is labelled as one
    ok(compose(daemon, tmp_path, project, "run", "-d", "needy", "sleep", "300"))
    found = {c["Labels"]["com.docker.compose.service"]: c for c in mine(daemon, project)}
    assert sorted(found) == ["dep", "needy"] and found["dep"]["State"] == "running"
    assert found["needy"]["Labels"]["com.docker.compose.oneoff"] == "True"
    assert found["needy"]["Names"][0].startswith(f"/{project}-needy-run-")


DOCKERFILE = """\
FROM busybox AS base
ARG GREETING=unset
RUN echo "$GREETING" > /greeting
FROM base AS final
COPY file.txt /file.txt
CMD ["sh", "-c", "cat /greeting /file.txt"]
FROM base AS never
RUN exit 1
"""


def test_build_with_context_dockerfile_args_target_then_down_rmi_local(daemon, tmp_path, project):
    context = tmp_path / "app"
    context.mkdir()
    (context / "Custom.Dockerfile").write_text(DOCKERFILE)
    (context / "file.txt").write_text("from-the-context\n")
    write(tmp_path, """
        services:
          app:
            build:
              context: ./app
              dockerfile: Custom.Dockerfile
              args: {GREETING: built-with-args}
              target: final
          named:
            image: busybox
            command: ["true"]
        """)
    built = ok(compose(daemon, tmp_path, project, "build"))
    assert " app Built" in built.stderr
    image = daemon.client.json("GET", f"/images/{project}-app/json")
    assert image["Config"]["Labels"][PROJECT] == project
    assert image["Config"]["Labels"]["com.docker.compose.service"] == "app"
    run = ok(compose(daemon, tmp_path, project, "run", "--rm", "app"))
    assert run.stdout == "built-with-args\nfrom-the-context\n"
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    assert inspect(daemon, f"{project}-app-1")["Image"] == image["Id"]
    assert daemon.client.json("POST", f"/containers/{project}-app-1/wait")["StatusCode"] == 0

    down = ok(compose(daemon, tmp_path, project, "down", "--rmi", "local", "-t", "0"))
    assert f" Image {project}-app  Removed" in down.stderr
    gone = daemon.cli("image", "inspect", f"{project}-app")
    assert gone.returncode != 0
    assert daemon.client.json("GET", "/images/busybox/json")["Id"]  # an image: of the file's is kept
    assert left(daemon, project) == NOTHING


def test_push_a_built_service_to_a_registry(daemon, tmp_path, project):
    registry = daemon.registry.host
    ref = f"{registry}/compose13/{project}:v1"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo pushed > /marker\n")
    write(tmp_path, f"""
        services:
          app:
            build: .
            image: {ref}
          plain:
            image: busybox
        """)
    ok(compose(daemon, tmp_path, project, "build"))
    pushed = ok(compose(daemon, tmp_path, project, "push", "app"))
    assert " app Pushed" in pushed.stderr
    with urllib.request.urlopen(f"{daemon.registry.url}/v2/compose13/{project}/tags/list", timeout=10) as r:
        assert json.load(r)["tags"] == ["v1"]
    ok(compose(daemon, tmp_path, project, "down", "--rmi", "all", "-t", "0"))


def test_top_lists_each_running_containers_processes(daemon, tmp_path, project):
    write(tmp_path, """
        services:
          a: {image: busybox, command: [sleep, "301"], init: true}
          b: {image: busybox, command: [sleep, "302"], init: true}
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    top = ok(compose(daemon, tmp_path, project, "top")).stdout
    blocks = [b.splitlines() for b in top.strip().split("\n\n")]
    assert [b[0] for b in blocks] == [f"{project}-a-1", f"{project}-b-1"]
    assert blocks[0][1].split()[:2] == ["UID", "PID"]
    assert "sleep 301" in "\n".join(blocks[0]) and "sleep 302" in "\n".join(blocks[1])
    only = ok(compose(daemon, tmp_path, project, "top", "b")).stdout
    assert only.splitlines()[0] == f"{project}-b-1" and "sleep 301" not in only


def test_events_streams_the_projects_container_events(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          app: {SLEEPER}
        """)
    other = tmp_path / "other"
    other.mkdir()
    write(other, f"""
        services:
          app: {SLEEPER}
        """)
    command = [sys.executable, "-m", "minidocker", "-H", daemon.host, "compose", "-p", project, "events",
               "--json"]
    events = subprocess.Popen(command, cwd=tmp_path, env=daemon.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # subscribed
        ok(compose(daemon, other, f"{project}x", "up", "-d"))  # another project's: not shown
        ok(compose(daemon, tmp_path, project, "up", "-d"))
        ok(compose(daemon, tmp_path, project, "stop", "-t", "0"))
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "stop" not in [e["action"] for e in seen]:
            line = events.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
    finally:
        events.kill()
        events.communicate(timeout=10)
        compose(daemon, other, f"{project}x", "down", "-t", "0")
    actions = list(dict.fromkeys(e["action"] for e in seen))  # a stop -t 0 may kill twice
    assert actions == ["create", "start", "kill", "die", "stop"], seen
    assert {e["service"] for e in seen} == {"app"}
    assert {e["attributes"]["name"] for e in seen} == {f"{project}-app-1"}
    assert {e["type"] for e in seen} == {"container"}


def test_start_stop_restart_kill_rm(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          a: {SLEEPER}
          b:
            image: busybox
            command: [sleep, "300"]
            init: true
            depends_on: [a]
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    state = lambda name: inspect(daemon, f"{project}-{name}-1")["State"]  # noqa: E731

    ok(compose(daemon, tmp_path, project, "stop", "-t", "0", "b"))
    assert (state("a")["Status"], state("b")["Status"]) == ("running", "exited")
    ok(compose(daemon, tmp_path, project, "stop", "-t", "0"))
    assert (state("a")["Status"], state("b")["Status"]) == ("exited", "exited")

    ok(compose(daemon, tmp_path, project, "start"))
    assert (state("a")["Status"], state("b")["Status"]) == ("running", "running")
    before = state("a")["StartedAt"]
    restarted = ok(compose(daemon, tmp_path, project, "restart", "-t", "0", "a"))
    assert f"{project}-a-1" in restarted.stderr
    assert state("a")["Running"] and state("a")["StartedAt"] != before

    ok(compose(daemon, tmp_path, project, "kill", "b"))
    assert (state("b")["Status"], state("b")["ExitCode"]) == ("exited", 137)
    assert state("a")["Running"]
    ok(compose(daemon, tmp_path, project, "kill", "-s", "SIGTERM", "a"))
    assert wait_for(lambda: not state("a")["Running"], timeout=10)

    ok(compose(daemon, tmp_path, project, "rm", "-f", "b"))
    assert names(daemon, project) == [f"{project}-a-1"]
    ok(compose(daemon, tmp_path, project, "start"))
    kept = ok(compose(daemon, tmp_path, project, "rm", "-f"))  # a running one is not removed without -s
    assert names(daemon, project) == [f"{project}-a-1"], kept.stderr
    ok(compose(daemon, tmp_path, project, "rm", "-f", "-s"))
    assert names(daemon, project) == []


def test_stop_and_down_wait_the_services_stop_grace_period(daemon, tmp_path, project):
    write(tmp_path, """
        services:
          stubborn:  # sleep as PID 1 ignores SIGTERM: only the SIGKILL after the grace period ends it
            image: busybox
            command: [sleep, "300"]
            stop_grace_period: 1s
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    assert inspect(daemon, f"{project}-stubborn-1")["Config"]["StopTimeout"] == 1
    started = time.monotonic()
    ok(compose(daemon, tmp_path, project, "stop"))
    took = time.monotonic() - started
    state = inspect(daemon, f"{project}-stubborn-1")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    assert 1 <= took < 8, took  # its 1 s, not Docker's default 10
    ok(compose(daemon, tmp_path, project, "start"))
    started = time.monotonic()
    ok(compose(daemon, tmp_path, project, "down"))
    assert time.monotonic() - started < 8
    assert left(daemon, project) == NOTHING


def test_logs_follow_ends_when_the_containers_stop(daemon, tmp_path, project):
    write(tmp_path, """
        services:
          counter:
            image: busybox
            command: [sh, -c, "for i in 1 2 3; do echo line$$i; sleep 0.3; done"]
          forever:
            image: busybox
            command: [sh, -c, "while true; do echo tick; sleep 0.2; done"]
            init: true
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    followed = ok(compose(daemon, tmp_path, project, "logs", "-f", "--no-color", "counter", timeout=30))
    assert [line for line in followed.stdout.splitlines()] == [
        "counter-1  | line1", "counter-1  | line2", "counter-1  | line3"]

    command = [sys.executable, "-m", "minidocker", "-H", daemon.host, "compose", "-p", project, "logs",
               "-f", "--no-color", "forever"]
    follow = subprocess.Popen(command, cwd=tmp_path, env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        lines = [follow.stdout.readline() for _ in range(8)]  # more than were there: it follows
    finally:
        follow.kill()
        follow.communicate(timeout=10)
    assert lines == ["forever-1  | tick\n"] * 8


def test_up_in_the_foreground_prints_the_logs_and_ends_when_the_services_exit(daemon, tmp_path, project):
    write(tmp_path, """
        services:
          one:
            image: busybox
            command: [sh, -c, "sleep 0.5; echo one-says-hi"]
          two:
            image: busybox
            command: [sh, -c, "sleep 1; echo two-says-hi"]
            depends_on: [one]
        """)
    started = time.monotonic()
    up = ok(compose(daemon, tmp_path, project, "up", timeout=60))
    assert time.monotonic() - started < 30
    assert "one-1  | one-says-hi" in up.stdout and "two-1  | two-says-hi" in up.stdout, up.stdout
    assert {c["State"] for c in mine(daemon, project)} == {"exited"}


def test_two_replicas_answer_to_the_service_name_with_two_addresses(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          web:
            image: busybox
            command: [sleep, "300"]
            init: true
            deploy: {{replicas: 2}}
          probe: {SLEEPER}
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    assert names(daemon, project) == [f"{project}-probe-1", f"{project}-web-1", f"{project}-web-2"]
    addresses = {inspect(daemon, f"{project}-web-{n}")["NetworkSettings"]["Networks"][f"{project}_default"]
                 ["IPAddress"] for n in (1, 2)}
    assert len(addresses) == 2
    lookup = ok(compose(daemon, tmp_path, project, "exec", "-T", "probe", "nslookup", "web"))
    answered = set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)$", lookup.stdout, re.M))
    assert answered == addresses, lookup.stdout
    second = ok(compose(daemon, tmp_path, project, "exec", "-T", "--index", "2", "web", "hostname", "-i"))
    web2 = inspect(daemon, f"{project}-web-2")["NetworkSettings"]["Networks"][f"{project}_default"]
    assert second.stdout.split() == [web2["IPAddress"]]
    # down to one replica: the second goes, the first is kept as it is (replicas are not in the hash)
    first = inspect(daemon, f"{project}-web-1")["Id"]
    (tmp_path / "compose.yaml").write_text((tmp_path / "compose.yaml").read_text().replace("replicas: 2",
                                                                                            "replicas: 1"))
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    assert names(daemon, project) == [f"{project}-probe-1", f"{project}-web-1"]
    assert inspect(daemon, f"{project}-web-1")["Id"] == first


def test_resource_limits_are_in_the_host_config(daemon, tmp_path, project):
    write(tmp_path, """
        services:
          limited:
            image: busybox
            command: [sleep, "300"]
            init: true
            deploy:
              resources:
                limits: {cpus: "0.5", memory: 64M}
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    host = inspect(daemon, f"{project}-limited-1")["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 1024 * 1024)
    stats = daemon.client.json("GET", f"/containers/{project}-limited-1/stats", {"stream": "false"})
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024  # applied: its cgroup's limit


def test_profiles_enable_services_by_flag_or_by_name(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          app: {SLEEPER}
          debug:
            image: busybox
            command: [sleep, "300"]
            init: true
            profiles: [debug]
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    assert names(daemon, project) == [f"{project}-app-1"]
    ok(daemon.cli("compose", "-p", project, "--profile", "debug", "up", "-d", cwd=tmp_path))
    assert names(daemon, project) == [f"{project}-app-1", f"{project}-debug-1"]
    ok(daemon.cli("compose", "-p", project, "--profile", "debug", "down", "-t", "0", cwd=tmp_path))
    ok(compose(daemon, tmp_path, project, "up", "-d", "debug"))  # named: enabled
    assert names(daemon, project) == [f"{project}-debug-1"]
    ok(compose(daemon, tmp_path, project, "down", "-t", "0"))  # profile not active: removed all the same
    assert left(daemon, project) == NOTHING


def test_volumes_named_bind_read_only_and_external(daemon, tmp_path, project):
    external, plain = f"{project}-outside", f"{project}-plain"
    for name in (external, plain):
        daemon.client.json("POST", "/volumes/create", None, {"Name": name})
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "setting").write_text("from-the-host\n")
    (tmp_path / "out").mkdir()
    try:
        write(tmp_path, f"""
            services:
              app:
                image: busybox
                command: [sleep, "300"]
                init: true
                volumes:
                  - data:/data
                  - ./conf:/conf:ro
                  - ./out:/out
                  - type: volume
                    source: shared
                    target: /shared
                    read_only: true
                  - {plain}:/plain
            volumes:
              data: {{}}
              shared:
                external: true
                name: {external}
              {plain}: {{external: true}}
            """)
        ok(compose(daemon, tmp_path, project, "up", "-d"))
        run = lambda *cmd: compose(daemon, tmp_path, project, "exec", "-T", "app", *cmd)  # noqa: E731
        assert ok(run("cat", "/conf/setting")).stdout == "from-the-host\n"
        assert run("touch", "/conf/new").returncode != 0  # :ro
        assert run("touch", "/shared/new").returncode != 0  # read_only: true
        ok(run("sh", "-c", "echo written > /out/file && echo kept > /data/file"))
        assert (tmp_path / "out" / "file").read_text() == "written\n"
        mounts = {m["Destination"]: m for m in inspect(daemon, f"{project}-app-1")["Mounts"]}
        assert (mounts["/data"]["Type"], mounts["/data"]["Name"]) == ("volume", f"{project}_data")
        assert (mounts["/conf"]["Type"], mounts["/conf"]["RW"]) == ("bind", False)
        assert (mounts["/shared"]["Name"], mounts["/shared"]["RW"]) == (external, False)
        assert (mounts["/out"]["Source"], mounts["/out"]["RW"]) == (str(tmp_path / "out"), True)
        assert (mounts["/plain"]["Name"], mounts["/plain"]["RW"]) == (plain, True)
        # the named volume outlives its container (down without -v)
        ok(compose(daemon, tmp_path, project, "down", "-t", "0"))
        ok(compose(daemon, tmp_path, project, "up", "-d"))
        assert ok(run("cat", "/data/file")).stdout == "kept\n"
        ok(compose(daemon, tmp_path, project, "down", "-v", "-t", "0"))
        assert left(daemon, project) == NOTHING
        volumes = [v["Name"] for v in daemon.client.json("GET", "/volumes")["Volumes"] or []]
        assert {external, plain} <= set(volumes) and f"{project}_data" not in volumes  # externals kept
        daemon.client.request("DELETE", f"/volumes/{plain}").read()

        daemon.client.request("DELETE", f"/volumes/{external}").read()
        missing = compose(daemon, tmp_path, project, "up", "-d")
        assert missing.returncode == 1
        assert missing.stderr.strip().splitlines()[-1] == f"volumes.shared: external volume {external!r} " \
                                                          "not found", missing.stderr
        assert left(daemon, project) == NOTHING
    finally:
        compose(daemon, tmp_path, project, "down", "-v", "-t", "0")
        for name in (external, plain):
            with contextlib.suppress(APIError):
                daemon.client.request("DELETE", f"/volumes/{name}", {"force": True}).read()


def test_networks_with_aliases(daemon, tmp_path, project):
    write(tmp_path, f"""
        services:
          web:
            image: busybox
            command: [sleep, "300"]
            init: true
            networks:
              front: {{aliases: [www, site]}}
              back: {{}}
          shop:
            image: busybox
            command: [sleep, "300"]
            init: true
            networks: [back]
          outsider: {SLEEPER}
        networks:
          front: {{}}
          back: {{internal: true}}
        """)
    ok(compose(daemon, tmp_path, project, "up", "-d"))
    networks = inspect(daemon, f"{project}-web-1")["NetworkSettings"]["Networks"]
    assert sorted(networks) == [f"{project}_back", f"{project}_front"]
    assert {"web", "www", "site"} <= set(networks[f"{project}_front"]["Aliases"] or [])
    front_ip = networks[f"{project}_front"]["IPAddress"]
    back_ip = networks[f"{project}_back"]["IPAddress"]

    def lookup(service: str, name: str) -> set[str]:
        found = compose(daemon, tmp_path, project, "exec", "-T", service, "nslookup", name)
        return set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)$", found.stdout, re.M))

    # shop is on back only: it finds web by its service name there, not by front's aliases
    assert lookup("shop", "web") == {back_ip}
    assert lookup("shop", "www") == set()
    assert daemon.client.json("GET", f"/networks/{project}_back")["Internal"] is True
    # web is on both: its own aliases resolve to its front address
    assert lookup("web", "www") == {front_ip}
    assert lookup("web", "site") == {front_ip}
    # outsider is on the default network: none of it
    assert lookup("outsider", "web") == set()
