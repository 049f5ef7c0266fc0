"""The soak: N ``run --rm busybox true`` against one daemon, and what the daemon keeps of them.

A daemon that serves thousands of containers a day must not grow with them: each container it ran
and removed should leave nothing behind, not a dict entry, a descriptor, a mount, a link or a
cgroup. This runs N containers one after the other through the CLI (as a script in a loop would)
and, every N/10 of them, records the engine's own state:

* RSS of minidockerd and of its fork server (``/proc/PID/status``, kB);
* the daemon's open descriptors (``/proc/PID/fd``) and threads (``/proc/PID/task``);
* mounts in the daemon's mount namespace (``/proc/PID/mountinfo``), network links in ours (the
  benchmark's private namespace: ``/sys/class/net``), and cgroups under the engine's parent in
  every v1 hierarchy.

The table lists the samples, then the growth of RSS per container between the first sample (after
N/10 runs: caches warm) and the last. Docker's dockerd holds flat over the same loop; ``--only
minidocker,docker`` measures both (dockerd's RSS, descriptors and its containerd's too).

Example::

    .venv/bin/python -m tests.bench soak --runs 2000   # ~10 minutes; the default is 10,000
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from tests.bench.context import Context, Engine
from tests.bench.report import Table
from tests.bench.sandbox import CGROUP_ROOT, descendants
from tests.bench.timing import BenchError

__all__ = ["soak"]

ENGINES = ("minidocker", "docker")


def _status_kib(pid: int, key: str = "VmRSS") -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def _count(path: str) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(path))
    return -1


def _cgroups(prefix: str) -> int:
    """Directories under every cgroup named after this run's prefix, in every hierarchy."""
    total = 0
    for hierarchy in CGROUP_ROOT.iterdir():
        with contextlib.suppress(OSError):
            for top in hierarchy.iterdir():
                if top.name.startswith(prefix) and top.is_dir():
                    total += sum(1 for _, dirs, _ in os.walk(top) for _ in dirs)
    return total


def _helpers(pid: int, word: str) -> list[int]:
    """Descendants of ``pid`` whose command line holds ``word`` (the fork server, containerd)."""
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if word in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                found.append(child)
    return found


def _links(pid: int) -> int:
    """Network interfaces in the daemon's network namespace (``/sys/class/net`` shows the host's)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/dev") as f:
        return sum(1 for _ in f) - 2
    return -1


def _sample(ctx: Context, name: str, pid: int, done: int, started: float) -> dict[str, float]:
    helper = _helpers(pid, "forkserver" if name == "minidocker" else "containerd")
    with contextlib.suppress(OSError), open(f"/proc/{pid}/mountinfo") as f:
        mounts = sum(1 for _ in f)
    return {"runs": done, "seconds": time.monotonic() - started,
            "rss": _status_kib(pid) / 1024, "helper": sum(_status_kib(p) for p in helper) / 1024,
            "fds": _count(f"/proc/{pid}/fd"), "threads": _count(f"/proc/{pid}/task"),
            "mounts": mounts, "links": _links(pid), "cgroups": _cgroups(ctx.prefix)}


def _loop(ctx: Context, engine: Engine, pid: int, runs: int) -> list[dict[str, float]]:
    every = max(1, runs // 10)
    started = time.monotonic()
    samples = [_sample(ctx, engine.name, pid, 0, started)]
    for done in range(1, runs + 1):
        engine.call("run", *engine.run_options, "--rm", "busybox", "true", timeout=120)
        if done % every == 0 or done == runs:
            samples.append(_sample(ctx, engine.name, pid, done, started))
            ctx.say(f"soak {engine.name}: {done}/{runs}, RSS {samples[-1]['rss']:.1f} MiB, "
                    f"fds {samples[-1]['fds']:.0f}")
    return samples


def _table(name: str, samples: list[dict[str, float]], runs: int) -> str:
    helper = "fork server" if name == "minidocker" else "containerd"
    lines = [f"| runs | minutes | daemon RSS (MiB) | {helper} RSS (MiB) | descriptors | threads | mounts | "
             "links | cgroups |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in samples:
        lines.append(f"| {s['runs']:.0f} | {s['seconds'] / 60:.1f} | {s['rss']:.1f} | {s['helper']:.1f} | "
                     f"{s['fds']:.0f} | {s['threads']:.0f} | {s['mounts']:.0f} | {s['links']:.0f} | "
                     f"{s['cgroups']:.0f} |")
    lines.append("")
    # From the first sample (caches warm), and over the second half (bounded rings, e.g. the events
    # history of 1,024, are full by then): a leak grows in both, a filling ring only in the first.
    for first in (samples[1] if len(samples) > 2 else samples[0], samples[len(samples) // 2]):
        last = samples[-1]
        span = last["runs"] - first["runs"]
        if span:
            per_run = (last["rss"] - first["rss"]) * 1024 / span
            lines.append(f"- {name}: daemon RSS from run {first['runs']:.0f} to {last['runs']:.0f}: "
                         f"{first['rss']:.1f} → {last['rss']:.1f} MiB, {per_run:+.2f} KiB per container")
    return "\n".join(lines)


def soak(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """N ``run --rm busybox true`` one after the other per engine; the engine's state every N/10."""
    texts, notes = [], []
    for name in ENGINES:
        if only and name not in only:
            continue
        engine = ctx.engine(name)
        if engine.unavailable:
            texts.append(f"{name}: {engine.unavailable}")
            continue
        pid = ctx.engine_pid(name)
        try:
            for _ in range(warmup):
                engine.call("run", *engine.run_options, "--rm", "busybox", "true")
            samples = _loop(ctx, engine, pid, runs)
        except BenchError as e:
            texts.append(f"{name}: failed: {e}")
            continue
        texts.append(f"**{engine.name}** (`{engine.shown(engine.run_argv('--rm', 'busybox', 'true'))}`, "
                     f"one after the other):\n\n" + _table(name, samples, runs))
    notes.append("links: interfaces in the daemon's network namespace, the benchmark's own (lo, the "
                 "bridge, veth ends not yet gone); cgroups: below this run's parents, in every hierarchy")
    return [Table("7", f"Soak: {runs} × `run --rm busybox true` against one daemon", "samples", [], runs,
                  warmup, notes, text="\n\n".join(texts))]
