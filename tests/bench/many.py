"""Scenario 4: 50 containers started at once, then removed: wall time, and what the engine costs in memory.

50 clients run ``ENGINE run -d --name bench-R-I busybox sleep 3600`` at the same moment (50 processes,
as 50 users or a script with ``&`` would); the wall time runs until the last one returns. Then
the engine's own processes are measured (not the containers': those are in their own PID
namespaces and are the same ``sleep`` everywhere):

* minidocker: minidockerd + its fork server + one monitor per container;
* Docker: dockerd + containerd + one ``containerd-shim-runc-v2`` per container;
* podman: one ``conmon`` per container (podman itself exits; there is no daemon).

Memory is PSS (proportional set size, from ``/proc/PID/smaps_rollup``): shared pages are split
among the processes sharing them, so the sum is what the set of processes really costs. The
figure per container is (PSS with 50 running − PSS idle) ÷ 50. Then 50 clients run ``rm -f`` at
once, timed the same way.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from tests.bench.context import Context, Engine
from tests.bench.report import Table
from tests.bench.timing import BenchError, Contender, Series, memory_kib

__all__ = ["many"]

COUNT = 50
ENGINES = ("minidocker", "docker", "podman")
LABELS = {"minidocker": "minidocker (daemon + monitors)", "docker": "Docker (dockerd + containerd + shims)",
          "podman": "podman (conmon per container)"}


def _concurrently(engine: Engine, commands: list[list[str]], check: bool = True) -> float:
    """Start every command at once, wait for all; the wall time. Any failure is a :class:`BenchError`."""
    start = time.perf_counter()
    processes = [subprocess.Popen(argv, env=engine.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for argv in commands]
    errors = []
    for process in processes:
        _, err = process.communicate(timeout=900)
        if process.returncode != 0:
            errors.append(err.decode(errors="replace").strip()[-300:])
    elapsed = time.perf_counter() - start
    if errors and check:
        raise BenchError(f"{len(errors)} of {len(commands)} failed, e.g.: {errors[0]}")
    return elapsed


def _round(engine: Engine, tag: str) -> tuple[float, float, float, float, int]:
    """One round: (start seconds, remove seconds, PSS KiB per container, RSS KiB per container, processes)."""
    idle_pss = memory_kib(engine.processes())
    idle_rss = memory_kib(engine.processes(), "Rss")
    names = [f"bench-{tag}-{i}" for i in range(COUNT)]
    removals = [engine.argv("rm", "-f", n) for n in names]
    try:
        started = _concurrently(engine, [engine.run_argv("-d", "--name", n, "busybox", "sleep", "3600")
                                         for n in names])
        time.sleep(2)  # let monitors and shims settle after their start
        pids = engine.processes()
        pss = (memory_kib(pids) - idle_pss) / COUNT
        rss = (memory_kib(pids, "Rss") - idle_rss) / COUNT
    except BaseException:
        _concurrently(engine, removals, check=False)
        raise
    removed = _concurrently(engine, removals)
    return started, removed, pss, rss, len(pids)


def many(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    engines = [ctx.engine(name) for name in ENGINES if not only or name in only]
    columns: dict[str, dict[str, Series]] = {}
    processes: dict[str, int] = {}
    rss: dict[str, list[float]] = {}
    for engine in engines:
        row = {}
        start = engine.run_argv("-d", "--name", "NAME", "busybox", "sleep", "3600")
        remove = engine.argv("rm", "-f", "NAME")
        for metric, argv in (("start", start), ("remove", remove), ("memory", start)):
            contender = Contender(engine.name, LABELS[engine.name], ours=engine.name == "minidocker",
                                  unavailable=engine.unavailable,
                                  shown="" if engine.unavailable else engine.shown(argv))
            row[metric] = Series(contender, failure=engine.unavailable)
        columns[engine.name] = row
        rss[engine.name] = []
    live = [e for e in engines if not e.unavailable]
    for engine in live:
        for _ in range(warmup):
            try:
                engine.call("run", *engine.run_options, "--rm", "busybox", "true")
            except BenchError as e:
                for s in columns[engine.name].values():
                    s.failure = f"failed: {e}"
    for round_ in range(runs):
        order = live if round_ % 2 == 0 else live[::-1]
        for engine in order:
            row = columns[engine.name]
            if row["start"].failure:
                continue
            ctx.say(f"{engine.name}: {COUNT} containers (round {round_ + 1}/{runs})")
            try:
                started, removed, pss, per_rss, count = _round(engine, str(round_))
            except (BenchError, subprocess.TimeoutExpired) as e:
                for s in row.values():
                    s.failure = f"failed: {e}"
                continue
            ctx.reap()
            row["start"].values.append(started)
            row["remove"].values.append(removed)
            row["memory"].values.append(pss)
            rss[engine.name].append(per_rss)
            processes[engine.name] = count
    title = f"{COUNT} containers at once"
    rss_note = ", ".join(f"{n} {sorted(v)[len(v) // 2] / 1024:.1f}" for n, v in rss.items() if v)
    count_note = ", ".join(f"{n} {c}" for n, c in processes.items())
    return [
        Table("4a", f"{title}: start (`run -d … sleep 3600` × {COUNT}, concurrently)", "s",
              [c["start"] for c in columns.values()], runs, warmup,
              ["wall time from the first client started to the last one returned; default bridge network"],
              scale=1.0),
        Table("4b", f"{title}: remove (`rm -f` × {COUNT}, concurrently)", "s",
              [c["remove"] for c in columns.values()], runs, warmup, scale=1.0),
        Table("4c", f"{title}: the engine's own memory per container (PSS)", "MiB",
              [c["memory"] for c in columns.values()], runs, warmup,
              ["(PSS of the engine's processes with 50 containers − PSS idle) ÷ 50; the containers' own "
               "processes are not counted",
               f"the same with RSS (shared pages counted once per process), MiB: {rss_note or 'none'}",
               f"engine processes with 50 containers running: {count_note or 'none'}"], scale=1 / 1024),
    ]
