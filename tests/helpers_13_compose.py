"""Chapter 13's test tooling: the example application, a Compose to drive it, what one can observe.

``APP`` is the example (``tests/data/compose/compose.yaml``). A :class:`Compose` runs one Compose
program (Debian's ``docker-compose``, Compose v1, or ``minidocker compose``) against one daemon
(minidockerd or Debian's dockerd, by ``DOCKER_HOST``); :func:`scenario` brings the application up,
looks at it the way a user does (``ps``, ``logs``, ``exec``, the labels, networks and volumes), runs
``up`` again, takes it down with its volumes, and returns what it saw, so that two daemons, or two
Composes, can be compared.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers_09_registry import Dockerd

APP = Path(__file__).resolve().parent / "data" / "compose" / "compose.yaml"
PROJECT = "shop13"
V1 = shutil.which("docker-compose", path="/usr/bin:/usr/local/bin")
DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
LABEL = "com.docker.compose"


class Compose:
    """One Compose program against one daemon: ``compose(*args)`` runs it in ``APP``'s directory."""

    def __init__(self, program: list[str], host: str, env: dict[str, str], project: str = PROJECT) -> None:
        self.program, self.host, self.project = program, host, project
        self.env = {**env, "DOCKER_HOST": host, "COMPOSE_PROJECT_NAME": project}
        self.env.pop("DOCKER_API_VERSION", None)

    @classmethod
    def v1(cls, host: str, env: dict[str, str], project: str = PROJECT) -> Compose:
        assert V1, "docker-compose is not installed"
        return cls([V1, "--ansi", "never"], host, {**env, "COMPOSE_INTERACTIVE_NO_CLI": "1"}, project)

    @classmethod
    def ours(cls, host: str, env: dict[str, str], project: str = PROJECT) -> Compose:
        return cls([sys.executable, "-m", "minidocker", "-H", host, "compose"], host, env, project)

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([*self.program, "-f", str(APP), *args], capture_output=True, text=True,
                              env=self.env, cwd=APP.parent, timeout=timeout)

    def container(self, service: str) -> str:
        """The name of ``service``'s first container, found by Compose's labels (v1 names it
        ``PROJECT_SERVICE_1``, v2 ``PROJECT-SERVICE-1``)."""
        found = ok(self.docker("ps", "-a", "--filter", f"label={LABEL}.project={self.project}",
                               "--filter", f"label={LABEL}.service={service}", "--format", "{{.Names}}"))
        return found.stdout.split()[0]

    def docker(self, *args: str) -> subprocess.CompletedProcess:
        """The docker CLI against the same daemon: how a user looks at what Compose made."""
        return subprocess.run([DOCKER or "docker", "-H", self.host, *args], capture_output=True, text=True,
                              env={k: v for k, v in self.env.items() if k != "DOCKER_HOST"}, timeout=60)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"
    return result


def progress(text: str) -> list[str]:
    """Compose's progress lines, finished ones only, sorted (services go in parallel)."""
    lines = {re.sub(r"\s+", " ", line).strip() for line in text.splitlines()}
    return sorted(line for line in lines if line and not line.endswith("..."))


def states(text: str) -> dict[str, str]:
    """``docker-compose ps``'s table as {container: state}: ``Up``, ``Up (healthy)``, ``Exit 0``."""
    found = {}
    for line in text.splitlines()[2:]:
        state = re.search(r"\s{2,}(Up(?: \([a-z: ]+\))?|Exit -?\d+)(?:\s{2,}|\s*$)", line)
        if state:
            found[line.split()[0]] = state.group(1)
    return found


def wait_for(check, timeout: float = 60, step: float = 0.25) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def scenario(compose: Compose) -> dict[str, object]:
    """Up, look, up again, down -v; what was seen (asserting what must hold on any daemon)."""
    p = compose.project
    seen: dict[str, object] = {}
    try:
        seen["up"] = progress(ok(compose("up", "-d")).stderr)
        web, job = compose.container("web"), compose.container("job")
        status = "{{.State.Status}} {{.State.ExitCode}}"
        seen["job exit"] = wait_for(
            lambda: compose.docker("inspect", "-f", status, job).stdout == "exited 0\n", timeout=90)
        seen["ps"] = states(ok(compose("ps")).stdout)
        seen["health"] = compose.docker("inspect", "-f", "{{.State.Health.Status}}", web).stdout.strip()
        logs = ok(compose("logs", "--no-color", "job")).stdout
        seen["job logs"] = [line.partition("| ")[2] for line in logs.splitlines() if "| " in line]
        client = wait_for(lambda: "hello from web" in compose("logs", "--no-color", "client").stdout)
        seen["client reached web"] = bool(client)
        seen["exec web"] = ok(compose("exec", "-T", "web", "cat", "/www/index.html")).stdout
        seen["exec client"] = ok(compose("exec", "-T", "client", "wget", "-q", "-O", "-", "http://web/")).stdout
        failed = compose("exec", "-T", "web", "sh", "-c", "exit 3")
        seen["exec exit"] = failed.returncode
        labels = json.loads(ok(compose.docker("inspect", "-f", "{{json .Config.Labels}}", web)).stdout)
        seen["labels"] = {k: v for k, v in labels.items() if k.startswith(LABEL)}
        filt = f"label={LABEL}.project={p}"
        seen["containers"] = sorted(ok(compose.docker("ps", "-a", "--filter", filt, "--format",
                                                      "{{.Names}}")).stdout.split())
        seen["networks"] = sorted(ok(compose.docker("network", "ls", "--filter", filt, "--format",
                                                    "{{.Name}}")).stdout.split())
        seen["volumes"] = sorted(ok(compose.docker("volume", "ls", "--filter", filt, "--format",
                                                   "{{.Name}}")).stdout.split())
        seen["up again"] = progress(ok(compose("up", "-d")).stderr)
        seen["down"] = progress(ok(compose("down", "-v")).stderr)
    finally:
        compose("down", "-v", "--timeout", "1")
    mine = f"label={LABEL}.project={p}"
    seen["left"] = [*ok(compose.docker("ps", "-aq", "--filter", mine)).stdout.split(),
                    *ok(compose.docker("network", "ls", "-q", "--filter", mine)).stdout.split(),
                    *ok(compose.docker("volume", "ls", "-q", "--filter", mine)).stdout.split()]
    return seen


@contextlib.contextmanager
def dockerd_with_busybox(base: Path, registry_host: str) -> Iterator[Dockerd]:
    """Debian's dockerd on private paths, with the very busybox image our daemon has (pulled from the
    same local registry: same image id, so Compose v1's config hashes can be compared too)."""
    dockerd = Dockerd(base)
    with dockerd:
        dockerd.docker("pull", f"{registry_host}/library/busybox:latest")
        dockerd.docker("tag", f"{registry_host}/library/busybox:latest", "busybox:latest")
        yield dockerd


def short_base() -> Path:
    """dockerd's base: its containerd socket path must fit in a UNIX socket's 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="md13-"))
