"""How the benchmark measures: whole commands, warmed up, in alternating order, summarised by medians.

The machine is shared and noisy (other developers run test suites on its 2 cores), so one engine
must never get the quiet minute and another the busy one. Each scenario therefore runs all its
contenders round by round, in order A B C, then C B A, then A B C... after a few warm-up runs
that are thrown away (page cache, ``.pyc`` files, a daemon's first request). Medians resist the
outliers that remain; min and max show how noisy it was.

A contender that cannot run is never dropped: it carries the reason, and the table says
"not measured: REASON".

Example::

    floor = Contender("floor", "unshare + chroot", command(["unshare", "-f", "-p", "chroot", R, "true"]))
    results = alternate([floor, ours], runs=20, warmup=2)
    results[0].median   # seconds
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["BenchError", "Contender", "Series", "alternate", "command", "memory_kib", "timed"]


class BenchError(Exception):
    """A contender failed: the message says which command and why (its stderr's last lines)."""


@dataclass
class Contender:
    """One row of a table: what to run (``measure`` returns one value, e.g. seconds) and how to show it.

    ``ours`` marks minidocker's rows (the others get a "minidocker ÷ this" ratio); ``unavailable``
    holds the reason when it cannot run here; ``shown`` is the command a reader would type.
    """

    key: str
    label: str
    measure: Callable[[], float] | None = None
    ours: bool = False
    unavailable: str | None = None
    shown: str = ""
    group: str = ""  # rows of one group compare with minidocker's row of that group (e.g. an image)


@dataclass
class Series:
    """The values measured for one contender (or why there are none)."""

    contender: Contender
    values: list[float] = field(default_factory=list)
    failure: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ok(self) -> bool:
        return bool(self.values) and self.failure is None


def timed(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> float:
    """Run a command to its end; return the wall-clock seconds. A non-zero exit is a :class:`BenchError`."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=timeout)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        tail = " ".join(result.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise BenchError(f"{' '.join(argv)} exited {result.returncode}: {tail[-400:]}")
    return elapsed


def command(argv: Sequence[str] | Callable[[], Sequence[str]], env: dict[str, str] | None = None, *,
            before: Callable[[], None] | None = None,
            after: Callable[[], None] | None = None) -> Callable[[], float]:
    """A ``measure`` that times one command; ``before``/``after`` run outside the timed part."""

    def measure() -> float:
        if before:
            before()
        try:
            return timed(argv() if callable(argv) else argv, env)
        finally:
            if after:
                after()

    return measure


def alternate(contenders: Sequence[Contender], runs: int, warmup: int,
              progress: Callable[[str], None] = lambda _: None,
              between: Callable[[], None] = lambda: None) -> list[Series]:
    """Warm every contender up, then measure them ``runs`` times each in alternating order.

    A contender that fails is taken out of the remaining rounds with its reason; the others go on.
    ``between`` runs after every round (outside the timing), e.g. to reap orphans.
    """
    series = [Series(c, failure=c.unavailable) for c in contenders]
    live = [s for s in series if s.failure is None and s.contender.measure is not None]
    for s in live:
        for _ in range(warmup):
            _run_once(s, keep=False)
    for round_ in range(runs):
        order = live if round_ % 2 == 0 else live[::-1]
        for s in order:
            if s.failure is None:
                _run_once(s, keep=True)
        between()
        progress(f"round {round_ + 1}/{runs}")
    return series


def _run_once(s: Series, keep: bool) -> None:
    if s.failure is not None:
        return
    try:
        assert s.contender.measure is not None
        value = s.contender.measure()
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        s.failure = f"failed: {e}"
        return
    if keep:
        s.values.append(value)


def memory_kib(pids: Sequence[int], field_name: str = "Pss") -> int:
    """The sum of one ``/proc/PID/smaps_rollup`` field (``Pss`` or ``Rss``, KiB) over processes.

    PSS (proportional set size) splits each shared page among the processes that map it, so the
    sum over a set of processes is what that set really costs; RSS would count a shared library
    once per process.
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == field_name:
                    total += int(rest.split()[0])
    return total


def pid_namespace(pid: int) -> str:
    """The pid namespace of a process (to tell an engine's processes from its containers')."""
    return os.readlink(f"/proc/{pid}/ns/pid")
