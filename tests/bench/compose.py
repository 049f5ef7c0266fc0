"""Chapter 13's measurements: ``compose up -d`` and ``down`` of the example application, two Composes
on two daemons.

Not a test (it takes a few minutes and needs Debian's docker.io, docker-compose and docker-registry):
run it by hand, as root::

    .venv/bin/python -m tests.bench.compose [--runs 5]

The application is chapter 13's example (``tests/data/compose/compose.yaml``: busybox httpd with a
healthcheck every second and a named volume, a client, a one-shot job gated on ``service_healthy``).
Two Composes, ours (``python -m minidocker -H HOST compose``) and Compose v1 (Debian's
``docker-compose`` 1.29), each drive two daemons: minidockerd (on a private state directory, its
bridge, cgroup parent and nft table named for this run) and Debian's dockerd 20.10 (private paths and
mount namespace, no iptables, as the tests start it), both with the same busybox, pulled from one
local registry. A round, for each of the four pairs, timed with the wall clock of the whole command:

* ``up -d``: network, volume, three containers; it returns once the job is started, which is after
  ``web`` is healthy (its first probe runs one ``interval``, 1 s, after it starts, on both daemons);
* ``down -v -t 0``: the three containers, the network and the volume removed. ``-t 0``: the
  containers' PID 1 (``sh``, ``httpd``) ignore SIGTERM as PID 1s do, so with the default 10 s each
  stop would measure only that timeout.

The pairs take turns going first (rotated every round), after one warm-up round that is not counted.
Prints the medians in ms and the ratios, all from this one run: each Compose on minidockerd ÷ the
same on dockerd, and ours ÷ Compose v1 on the same daemon. The machine may be busy with other work:
read ratios, not absolute times, and run it again if they disagree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers_10_daemon import running_daemon, seeded_registry  # noqa: E402
from tests.helpers_13_compose import APP, V1, dockerd_with_busybox  # noqa: E402

PROJECT = "bench13"
STEPS = ("up -d", "down -v -t 0")


def command(program: str, host: str) -> list[str]:
    if program == "minidocker compose":
        return [sys.executable, "-m", "minidocker", "-H", host, "compose", "-f", str(APP)]
    return [V1 or "docker-compose", "--ansi", "never", "-H", host, "-f", str(APP)]


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=APP.parent, timeout=300)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    return elapsed


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def private_engine(base: Path) -> None:
    """This run's own state, run dir, cgroup parent, bridge, nft table and subnet (as the tests')."""
    pid = os.getpid()
    os.environ.update({
        "MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run"),
        "MINIDOCKER_CGROUP_PARENT": f"minidocker-bench13-{pid}", "MINIDOCKER_BRIDGE": f"mdb13{pid % 100000}",
        "MINIDOCKER_NFT_TABLE": f"minidocker_bench13_{pid}", "MINIDOCKER_SUBNET": "10.218.0.0/24",
        "MINIDOCKER_CONFIG": str(base / "config"), "MINIDOCKER_REGISTRY_MIRRORS": ""})
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # users have bytecode caches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5), after one warm-up")
    runs = parser.parse_args().runs
    for program in ("docker-compose", "dockerd", "docker", "docker-registry"):
        if not shutil.which(program):
            sys.exit(f"{program} is not installed: ./setup.sh test installs it")
    base = Path(tempfile.mkdtemp(prefix="bench13-"))
    base.chmod(0o711)
    for sub in ("ours", "d"):
        (base / sub).mkdir()
    private_engine(base)
    try:
        with seeded_registry(base / "registry") as registry, \
                running_daemon(base / "ours", registry.url) as ours, \
                dockerd_with_busybox(base / "d", registry.host) as dockerd:
            query = {"fromImage": "busybox", "tag": "latest"}
            for _ in ours.client.stream_json("POST", "/images/create", query):
                pass
            print(f"docker-compose {version([V1 or 'docker-compose', 'version', '--short'])} (Compose v1); "
                  f"{version(['dockerd', '--version'])}; Python {sys.version.split()[0]}; "
                  f"{os.cpu_count()} CPUs", flush=True)
            print(f"load average before (1, 5, 15 min): {load()}", flush=True)
            daemons = {"minidockerd": (ours.host, ours.env),
                       "dockerd": (f"unix://{dockerd.socket}", dockerd.env)}
            pairs = [(p, d) for d in daemons for p in ("minidocker compose", "docker-compose v1")]
            results = {s: {pair: [] for pair in pairs} for s in STEPS}
            for n in range(runs + 1):  # round 0: the warm-up, thrown away
                turn = pairs[n % len(pairs):] + pairs[:n % len(pairs)]
                for program, daemon in turn:
                    host, env = daemons[daemon]
                    env = {**env, "COMPOSE_PROJECT_NAME": PROJECT, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
                    env.pop("DOCKER_HOST", None)
                    env.pop("DOCKER_API_VERSION", None)
                    argv = command(program, host)
                    try:
                        up = timed([*argv, "up", "-d"], env)
                    finally:  # whatever happened, nothing of this pair is left for the next
                        down = timed([*argv, "down", "-v", "-t", "0"], env)
                    if n:
                        results["up -d"][(program, daemon)].append(up)
                        results["down -v -t 0"][(program, daemon)].append(down)
                print(f"  round {n}/{runs} done{' (warm-up)' if not n else ''}, load {load()}", flush=True)
            report(results, pairs, runs)
            print(f"load average after (1, 5, 15 min): {load()}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report(results: dict, pairs: list[tuple[str, str]], runs: int) -> None:
    print(f"\nmedian of {runs} rounds after a warm-up, ms (whole command, wall clock):")
    print(f"  {'':34} {'up -d':>8} {'down -v -t 0':>13}")
    medians = {s: {pair: statistics.median(results[s][pair]) for pair in pairs} for s in STEPS}
    for pair in pairs:
        label = f"{pair[0]} -> {pair[1]}"
        up, down = medians["up -d"][pair], medians["down -v -t 0"][pair]
        print(f"  {label:34} {up * 1000:8.0f} {down * 1000:13.0f}")
    print("ratios of the medians:")
    for program in ("minidocker compose", "docker-compose v1"):
        mine, theirs = (program, "minidockerd"), (program, "dockerd")
        print(f"  {program + ': minidockerd / dockerd':45} "
              + "   ".join(f"{s} {medians[s][mine] / medians[s][theirs]:.2f}" for s in STEPS))
    for daemon in ("minidockerd", "dockerd"):
        mine, theirs = ("minidocker compose", daemon), ("docker-compose v1", daemon)
        print(f"  {'ours / Compose v1 on ' + daemon:45} "
              + "   ".join(f"{s} {medians[s][mine] / medians[s][theirs]:.2f}" for s in STEPS))


if __name__ == "__main__":
    sys.exit(main())
