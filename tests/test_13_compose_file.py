"""Chapter 13: reading Compose files, no daemon needed: interpolation, .env, env_file, merging,
profiles, the schema's errors in one line, dependency order and cycles, the config hash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minidocker.compose.errors import ComposeError
from minidocker.compose.loader import interpolate, load, merge, read_env_file
from minidocker.compose.model import Project, config_hash


def project(tmp_path: Path, text: str, *more: str, environ: dict | None = None, **kwargs) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    files = ["compose.yaml"]
    for i, extra in enumerate(more):
        (tmp_path / f"extra{i}.yaml").write_text(textwrap.dedent(extra))
        files.append(f"extra{i}.yaml")
    document, facts = load(files, tmp_path, environ=environ or {}, **kwargs)
    return Project.from_document(document, facts)


def error(tmp_path: Path, text: str, **kwargs) -> str:
    with pytest.raises(ComposeError) as e:
        project(tmp_path, text, **kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("text", "expected"), [
    ("$$HOME", "$HOME"), ("${A}", "a"), ("$A-x", "a-x"), ("${UNSET}", ""),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""), ("${UNSET-dflt}", "dflt"),
    ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${UNSET:-${A}}", "a"), ("x${A}y${A}", "xaya"),
])
def test_interpolation_follows_composes_rules(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "a", "EMPTY": ""}, "services.web.image") == expected


def test_a_required_variable_names_where_it_is_missing() -> None:
    with pytest.raises(ComposeError, match=r"^services.web.image: required variable TAG is missing a "
                                           r"value: set TAG$"):
        interpolate("busybox:${TAG:?set TAG}", {}, "services.web.image")
    with pytest.raises(ComposeError, match="invalid interpolation format"):
        interpolate("${A", {}, "x")


def test_dotenv_and_the_shell_and_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nTAG=1.0\nexport PORT=8080\nQUOTED=\"a b\"\nSHELL_WINS=env\n")
    (tmp_path / "web.env").write_text("FROM_FILE=yes\nOVERRIDDEN=file\n")
    p = project(tmp_path, """
        services:
          web:
            image: busybox:${TAG}
            ports: ["${PORT}:80"]
            env_file: web.env
            environment:
              OVERRIDDEN: env
              Q: ${QUOTED}
              S: ${SHELL_WINS}
              PASSED:
        """, environ={"SHELL_WINS": "shell", "PASSED": "through"})
    web = p.services["web"].config
    assert web["image"] == "busybox:1.0"
    assert web["ports"] == ["8080:80"]
    assert web["environment"] == {"FROM_FILE": "yes", "OVERRIDDEN": "env", "Q": "a b", "S": "shell",
                                  "PASSED": "through"}
    assert read_env_file(tmp_path / ".env")["PORT"] == "8080"


def test_a_missing_env_file_is_one_line_naming_service_and_field(tmp_path: Path) -> None:
    message = error(tmp_path, "services:\n  web:\n    image: busybox\n    env_file: nope.env\n")
    assert message.startswith("services.web.env_file: couldn't find env file: ")
    assert message.endswith("nope.env")


def test_several_files_merge_by_composes_rules(tmp_path: Path) -> None:
    p = project(tmp_path, """
        services:
          web:
            image: busybox
            command: ["httpd", "-f"]
            environment: [A=1, B=2]
            ports: ["80:80"]
            volumes: ["data:/data", "./html:/www:ro"]
            labels: {x: "1"}
        volumes:
          data: {}
        """, """
        services:
          web:
            image: busybox:1.36
            command: ["sleep", "1"]
            environment: {B: "3", C: "4"}
            ports: ["443:443"]
            volumes: ["./other:/www"]
          job:
            image: busybox
        """)
    web = p.services["web"].config
    assert web["image"] == "busybox:1.36"
    assert web["command"] == ["sleep", "1"]  # lists replaced
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}  # merged by variable
    assert web["ports"] == ["80:80", "443:443"]  # appended
    assert web["volumes"] == ["data:/data", "./other:/www"]  # merged by target
    assert set(p.services) == {"web", "job"}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_profiles_enable_services(tmp_path: Path) -> None:
    text = """
        services:
          web: {image: busybox}
          debug: {image: busybox, profiles: [debug]}
        """
    assert list(project(tmp_path, text).services) == ["web"]
    assert set(project(tmp_path, text, profiles=["debug"]).services) == {"web", "debug"}
    assert set(project(tmp_path, text, environ={"COMPOSE_PROFILES": "debug"}).services) == {"web", "debug"}


@pytest.mark.parametrize(("text", "expected"), [
    ("services:\n  web:\n    image: busybox\n    bogus: 1\n",
     "services.web: additional property 'bogus' is not allowed"),
    ("services:\n  web:\n    image: busybox\n    ports: [{target: 80, bogus: 1}]\n",
     "services.web.ports[0]: additional property 'bogus' is not allowed"),
    ("services:\n  web:\n    image: busybox\n    depends_on: {db: {condition: sometime}}\n  db:\n"
     "    image: busybox\n",
     "services.web.depends_on.db.condition: must be one of service_started, service_healthy, "
     "service_completed_successfully, not 'sometime'"),
    ("services:\n  web:\n    image: [busybox]\n", "services.web.image: must be a string"),
    ("servics:\n  web:\n    image: busybox\n", "(root): additional property 'servics' is not allowed"),
])
def test_schema_errors_are_one_line_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text) == expected


def test_depends_on_orders_and_a_cycle_is_an_error(tmp_path: Path) -> None:
    p = project(tmp_path, """
        services:
          client: {image: busybox, depends_on: [web]}
          job: {image: busybox, depends_on: {web: {condition: service_healthy}}}
          web: {image: busybox}
        """)
    order = list(p.services)
    assert order.index("web") < order.index("client") and order.index("web") < order.index("job")
    assert p.services["job"].depends_on["web"]["condition"] == "service_healthy"
    message = error(tmp_path, """
        services:
          a: {image: busybox, depends_on: [b]}
          b: {image: busybox, depends_on: [c]}
          c: {image: busybox, depends_on: [a]}
        """)
    assert message == "services.a.depends_on: dependency cycle detected: a -> b -> c -> a"
    assert "undefined service 'db'" in error(tmp_path, "services:\n  a: {image: x, depends_on: [db]}\n")


def test_project_name_and_the_container_config(tmp_path: Path) -> None:
    text = """
        name: Demo_App
        services:
          web:
            image: busybox
            command: httpd -f -p 80
            ports: ["127.0.0.1:8080:80", "9000"]
            volumes: ["data:/data:ro", "./html:/www"]
            networks: {front: {aliases: [www]}}
            restart: on-failure:3
            healthcheck: {test: "wget -q -O- localhost", interval: 1s, retries: 3, start_period: 1m30s}
            deploy: {replicas: 2, resources: {limits: {cpus: "0.5", memory: 64m}}}
        networks:
          front: {}
        volumes:
          data: {}
        """
    p = project(tmp_path, text)
    assert p.name == "demo_app"
    assert project(tmp_path, text, environ={"COMPOSE_PROJECT_NAME": "other"}).name == "other"
    web = p.services["web"]
    assert web.replicas == 2
    body = p.create_body(web, 2)
    assert body["Cmd"] == ["httpd", "-f", "-p", "80"]
    assert body["Labels"]["com.docker.compose.project"] == "demo_app"
    assert body["Labels"]["com.docker.compose.container-number"] == "2"
    assert body["Labels"]["com.docker.compose.config-hash"] == web.hash
    host = body["HostConfig"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                    "9000/tcp": [{"HostIp": "", "HostPort": ""}]}
    assert host["Binds"] == ["demo_app_data:/data:ro", f"{tmp_path.resolve()}/html:/www"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 500_000_000
    assert host["NetworkMode"] == "demo_app_front"
    assert body["NetworkingConfig"]["EndpointsConfig"]["demo_app_front"]["Aliases"] == ["web", "www"]
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- localhost"], "Interval": 10**9,
                                   "Retries": 3, "StartPeriod": 90 * 10**9}
    assert p.container_name(web, 2) == "demo_app-web-2"


def test_the_hash_ignores_what_makes_no_container() -> None:
    base = {"image": "busybox", "command": ["sleep", "1"]}
    assert config_hash(base) == config_hash({**base, "depends_on": ["db"], "deploy": {"replicas": 3},
                                             "profiles": ["x"]})
    assert config_hash(base) != config_hash({**base, "command": ["sleep", "2"]})


def test_undefined_volume_and_network_are_errors(tmp_path: Path) -> None:
    assert error(tmp_path, "services:\n  web: {image: x, volumes: ['data:/d']}\n") == (
        "services.web.volumes[0]: service 'web' refers to undefined volume 'data'")
    assert error(tmp_path, "services:\n  web: {image: x, networks: [back]}\n") == (
        "services.web.networks: service 'web' refers to undefined network 'back'")


def test_compose_config_prints_the_resolved_model(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox:${TAG:-1}\n")
    out = subprocess.run([sys.executable, "-m", "minidocker", "compose", "-p", "demo", "config"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "name: demo" in out.stdout and "image: busybox:1" in out.stdout
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n    bogus: 1\n")
    out = subprocess.run([sys.executable, "-m", "minidocker", "compose", "config"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr == "services.web: additional property 'bogus' is not allowed\n"
