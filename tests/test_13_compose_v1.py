"""Chapter 13, proof with clients we did not write: Debian's ``docker-compose`` (Compose v1, 1.29,
Python) drives minidockerd through the example application (``tests/data/compose/compose.yaml``):
``up -d``, ``ps``, ``logs``, ``exec``, ``up`` again, ``down -v``; in the same test the same file runs
against Debian's dockerd 20.10 where it can run here, and the two must agree. Then our own
``minidocker compose`` drives both daemons with the same file."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from tests.helpers_09_registry import Dockerd
from tests.helpers_13_compose import PROJECT, V1, Compose, dockerd_with_busybox, scenario, short_base

pytestmark = pytest.mark.skipif(V1 is None, reason="no docker-compose here: apt-get install docker-compose "
                                                   "(./setup.sh test does)")

SAME = ("up", "job exit", "ps", "health", "job logs", "client reached web", "exec web", "exec client",
        "exec exit", "labels", "containers", "networks", "volumes", "up again", "down", "left")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.helpers_10_daemon import daemon_fixture

    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def short_dir():
    path = short_base()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def expected(p: str) -> dict[str, object]:
    """What must hold on any daemon (the rest must only agree between daemons)."""
    return {
        "job exit": True, "health": "healthy", "job logs": ["hello from web", "job done"],
        "client reached web": True, "exec web": "hello from web\n", "exec client": "hello from web\n",
        "exec exit": 3, "containers": [f"{p}_client_1", f"{p}_job_1", f"{p}_web_1"],
        "networks": [f"{p}_default"], "volumes": [f"{p}_site"], "left": [],
        "ps": {f"{p}_client_1": "Up", f"{p}_job_1": "Exit 0", f"{p}_web_1": "Up (healthy)"},
    }


def check(seen: dict[str, object], p: str) -> None:
    want = expected(p)
    assert {k: seen[k] for k in want} == want
    labels = seen["labels"]
    assert {k: labels[k] for k in ("com.docker.compose.project", "com.docker.compose.service",
                                   "com.docker.compose.container-number", "com.docker.compose.oneoff")} == {
        "com.docker.compose.project": p, "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert all(line.endswith("is up-to-date") for line in seen["up again"] if "_web_1" in line)


def test_compose_v1_drives_minidockerd_as_it_drives_dockerd(daemon, short_dir):
    ours = scenario(Compose.v1(daemon.host, daemon.env))
    print(f"minidockerd: {ours}")
    check(ours, PROJECT)
    reason = Dockerd(short_dir).unavailable()
    if reason:  # our half passed; say why the other did not run
        pytest.skip(f"dockerd side not run: {reason}")
    with dockerd_with_busybox(short_dir, daemon.registry.host) as dockerd:
        theirs = scenario(Compose.v1(f"unix://{dockerd.socket}", dockerd.env))
    print(f"dockerd:     {theirs}")
    check(theirs, PROJECT)
    assert {k: ours[k] for k in SAME} == {k: theirs[k] for k in SAME}


def test_minidocker_compose_drives_both_daemons_alike(daemon, short_dir):
    if importlib.util.find_spec("minidocker.compose") is None:
        pytest.skip("minidocker compose (chapter 13, part C) is not in the tree yet")
    ours = scenario(Compose.ours(daemon.host, daemon.env, "ours13"))
    print(f"minidockerd: {ours}")
    reason = Dockerd(short_dir).unavailable()
    if reason:
        pytest.skip(f"dockerd side not run: {reason}")
    with dockerd_with_busybox(short_dir, daemon.registry.host) as dockerd:
        theirs = scenario(Compose.ours(f"unix://{dockerd.socket}", dockerd.env, "ours13"))
    print(f"dockerd:     {theirs}")
    same = ("health", "client reached web", "exec web", "exec client", "exec exit", "labels", "containers",
            "networks", "volumes", "left")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    assert theirs["job exit"] is True and theirs["job logs"] == ["hello from web", "job done"]
    assert {k: ours[k] for k in ("job exit", "job logs")} == {k: theirs[k] for k in ("job exit", "job logs")}
