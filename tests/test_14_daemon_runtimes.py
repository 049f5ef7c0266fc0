"""Chapter 14: minidockerd on any OCI runtime: the same containers on runc, crun and our own runtime.

One daemon for the module, started with ``--add-runtime`` for each runtime; every test of a
container's life runs once per runtime (``--runtime NAME``): output and exit code, detached with
logs, exec and stop, a published port, a memory limit in the cgroup, inspect. Then nothing of them
is left in the exec root: no bundle, no runtime state.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from minidocker.cgroups.cgroup import Cgroup
from minidocker.client.client import APIError
from tests.helpers_10_daemon import running_daemon, seeded_registry

OUR_RUNTIME = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "minidocker-runtime"
PEERS = {"runc": shutil.which("runc"), "crun": shutil.which("crun")}


def _hybrid_with_v2_controllers() -> bool:
    """A hybrid host whose unified tree has controllers too (hugetlb, on this VM): crun 1.8 refuses
    those ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"), whatever it is
    asked (even ``--cgroup-manager=disabled``); runc and our runtime run there."""
    try:
        return bool(Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().split())
    except OSError:
        return False


CRUN_REFUSES = _hybrid_with_v2_controllers()


def _params() -> list:
    params = []
    for name, path in PEERS.items():
        params.append(pytest.param(name, marks=[pytest.mark.skipif(
            path is None, reason=f"{name} is not installed ('./setup.sh test' installs it)"),
            pytest.mark.skipif(name == "crun" and CRUN_REFUSES, reason="crun refuses this host's cgroups "
                               "(hybrid, hugetlb on the unified tree), with any --cgroup-manager and with no "
                               "cgroupsPath or resources: 'cgroups in hybrid mode not supported, drop all "
                               "controllers from cgroupv2'")]))
    params.append(pytest.param("minidocker-runtime", marks=pytest.mark.skipif(
        not OUR_RUNTIME.exists(), reason="minidocker-runtime is not installed in .venv (pip install -e .)")))
    return params


RUNTIMES = _params()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("d14")
    extra = [f"--add-runtime={name}={path}" for name, path in PEERS.items() if path and name != "crun"]
    if OUR_RUNTIME.exists():
        extra.append(f"--add-runtime=minidocker-runtime={OUR_RUNTIME}")
    if PEERS["crun"]:  # as daemon.json says it, with the runtime's own arguments (none needed)
        (base / "daemon.json").write_text(json.dumps({"runtimes": {"crun": {"path": PEERS["crun"],
                                                                             "runtimeArgs": []}}}))
        extra += ["--config-file", str(base / "daemon.json")]
    with seeded_registry(base / "registry") as registry, running_daemon(base, registry.url, *extra) as d:
        for _ in d.client.stream_json("POST", "/images/create", {"fromImage": "busybox", "tag": "latest"}):
            pass
        yield d
    run = Path(os.environ["MINIDOCKER_RUN"])  # nothing of the runtimes left in the exec root
    assert not list((run / "bundles").glob("*")) if (run / "bundles").exists() else True
    for root in (run / "runtime").glob("*") if (run / "runtime").exists() else []:
        assert not [p for p in root.iterdir() if len(p.name) == 64], f"runtime state left in {root}"


def cli(daemon, *args: str, timeout: float = 60):
    return daemon.cli(*args, timeout=timeout)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_rm_gives_output_and_exit_code(daemon, runtime):
    done = cli(daemon, "run", "--rm", "--runtime", runtime, "busybox", "sh", "-c",
               "echo hello; echo oops >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello\n", "oops\n"), done.stderr
    assert cli(daemon, "ps", "-aq").stdout == ""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_logs_exec_memory_inspect_stop(daemon, runtime):
    name = f"d-{runtime}"
    started = cli(daemon, "run", "-d", "--name", name, "--runtime", runtime, "--memory", "64m", "busybox",
                  "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    try:
        info = daemon.client.json("GET", f"/containers/{name}/json")
        assert info["HostConfig"]["Runtime"] == runtime and info["State"]["Running"]
        limit = Cgroup.of_process(info["State"]["Pid"]).path("memory") / "memory.limit_in_bytes"
        assert int(limit.read_text()) == 64 << 20
        done = cli(daemon, "exec", name, "sh", "-c", "echo $((1+2)) $(hostname); exit 4")
        assert (done.returncode, done.stdout) == (4, f"3 {info['Id'][:12]}\n"), done.stderr
        assert cli(daemon, "exec", "-u", "nobody", name, "id", "-u").stdout == "65534\n"
        assert "started\n" in cli(daemon, "logs", name).stdout
        began = time.monotonic()
        assert cli(daemon, "stop", name).returncode == 0
        assert time.monotonic() - began < 8  # SIGTERM reached its PID 1 through the runtime
        info = daemon.client.json("GET", f"/containers/{name}/json")
        assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", 0)
        assert cli(daemon, "logs", name).stdout == "started\nbye\n"
    finally:
        cli(daemon, "rm", "-f", name)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_published_port_is_reachable(daemon, runtime):
    name = f"web-{runtime}"
    started = cli(daemon, "run", "-d", "--name", name, "--runtime", runtime, "-p", "127.0.0.1::8080",
                  "busybox", "sh", "-c", "echo hi-from-$(hostname) > /tmp/index.html; "
                  "httpd -f -p 8080 -h /tmp")
    assert started.returncode == 0, started.stderr
    try:
        info = daemon.client.json("GET", f"/containers/{name}/json")
        port = info["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        deadline, body = time.monotonic() + 10, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.1)
        assert body == f"hi-from-{info['Id'][:12]}\n"
    finally:
        cli(daemon, "rm", "-f", name)


def test_info_lists_the_runtimes(daemon):
    info = daemon.client.json("GET", "/info")
    assert info["DefaultRuntime"] == "minidocker"
    assert {name for name, path in PEERS.items() if path} <= set(info["Runtimes"])
    assert info["Runtimes"]["crun"]["path"] == PEERS["crun"]


def test_an_unknown_runtime_is_refused_at_create(daemon):
    done = cli(daemon, "run", "--rm", "--runtime", "nope", "busybox", "true")
    assert done.returncode == 125
    assert done.stderr.strip().endswith("unknown or invalid runtime name: nope"), done.stderr
    with pytest.raises(APIError) as refused:
        daemon.client.request("POST", "/containers/create", body={
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Runtime": "nope"}})
    assert refused.value.status == 400
    assert str(refused.value).endswith("unknown or invalid runtime name: nope")
