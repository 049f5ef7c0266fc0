"""Chapter 03: resource limits as Docker spells them (``--memory 64m --cpus 0.5``), parsed and checked.

A user types sizes and fractions; the kernel wants bytes, microseconds and CPU lists. This module
turns the first into the second *before* anything is created, so that a typo is one line and exit
125, never a half-made cgroup. The rules are Docker's: sizes in binary units (``64m`` is 64 MiB,
``1g``, ``512k``, or plain bytes), ``--cpus`` from 0.01 to the number of CPUs, ``--memory`` at least
6 MiB, ``--memory-swap`` the total of memory *and* swap (``-1``: unlimited swap; unset: as much swap
as memory), ``--pids-limit`` 0 or negative for no limit.

It also defines :class:`Stats`, what a cgroup reports back, so that both cgroup backends
(``cgroups_v1``, ``cgroups_v2``) speak the same language.

Example::

    >>> parse_size("64m")
    67108864
    >>> parse_limits(memory="64m", cpus="0.5", pids_limit="100")
    Limits(memory=67108864, memory_swap=134217728, cpus=0.5, cpu_shares=None, pids=100, cpuset_cpus=None)
"""

from __future__ import annotations

import os
from collections import namedtuple

from minidocker.core.process import EngineError
from minidocker.core.units import parse_size  # the one size parser; re-exported for this chapter's stage

__all__ = ["MIN_MEMORY", "Limits", "Stats", "parse_cpuset", "parse_limits", "parse_size"]

MIN_MEMORY = 6 * 1024 * 1024  # Docker's floor: below this a container cannot even start its runtime
MIN_SHARES, MAX_SHARES = 2, 262144  # what the kernel accepts for cpu.shares
MAX_PIDS = 4 * 1024 * 1024  # PID_MAX_LIMIT on 64-bit machines: pids.max takes no more
MAX_SIZE = (1 << 63) - 1  # memory limits are signed 64-bit numbers of bytes in the kernel


class Limits(namedtuple("Limits", "memory memory_swap cpus cpu_shares pids cpuset_cpus",
                        defaults=(None,) * 6)):
    """What a container may use. ``None`` means "no limit" (the kernel's default, ``max``)."""

    __slots__ = ()
    memory: int | None  # bytes of RAM
    memory_swap: int | None  # bytes of RAM + swap; -1: unlimited swap
    cpus: float | None  # CPUs' worth of time per period (0.5: half of one CPU)
    cpu_shares: int | None  # relative weight when CPUs are contended (1024 is the default)
    pids: int | None  # most tasks (processes and threads) at once
    cpuset_cpus: str | None  # which CPUs it may run on, "0-1,3"

    def controllers(self) -> set[str]:
        """The cgroup controllers these limits need."""
        needed = set()
        if self.memory is not None or self.memory_swap is not None:
            needed.add("memory")
        if self.cpus is not None or self.cpu_shares is not None:
            needed.add("cpu")
        if self.pids is not None:
            needed.add("pids")
        if self.cpuset_cpus is not None:
            needed.add("cpuset")
        return needed


class Stats(namedtuple("Stats", "memory memory_peak memory_limit cpu_ns periods throttled_periods "
                       "throttled_ns pids pids_limit oom_kills",
                       defaults=(0, None, None, 0, 0, 0, 0, 0, None, 0))):
    """What a cgroup has used, read from its own accounting files (same fields on v1 and v2)."""

    __slots__ = ()
    memory: int  # bytes charged now (pages, page cache, kernel memory); default 0
    memory_peak: int | None  # the most ever charged; None (the default) where the kernel does not say
    memory_limit: int | None  # None: no limit
    cpu_ns: int  # CPU time used, all CPUs together, in nanoseconds
    periods: int  # CFS periods that had a quota in force
    throttled_periods: int  # ... of which the group used up its quota and was stopped
    throttled_ns: int  # total time stopped
    pids: int  # tasks now
    pids_limit: int | None
    oom_kills: int  # processes the OOM killer killed in this cgroup


def parse_cpuset(text: str, available: int | None = None) -> str:
    """Check a CPU list such as ``0``, ``0-1`` or ``0,2-3`` against the CPUs this host has."""
    available = available or os.cpu_count() or 1
    wanted = set()
    for part in text.strip().split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or int(high or low) < int(low):
            raise EngineError(f"invalid --cpuset-cpus {text!r}: use CPU numbers and ranges like 0-1,3")
        wanted |= set(range(int(low), int(high or low) + 1))
    if max(wanted) >= available:
        raise EngineError(f"invalid --cpuset-cpus {text!r}: this host has CPUs 0-{available - 1} only")
    return text.strip()


def _size(option: str, value: str | int) -> int:
    try:
        size = parse_size(value)
    except ValueError as e:
        raise EngineError(f'invalid argument "{value}" for "{option}" flag: {e}') from None
    if size > MAX_SIZE:
        raise EngineError(f"invalid {option} {value!r}: the largest size the kernel takes is 8 EiB")
    return size


def _number(option: str, value: str | float, kind: type = float) -> float:
    try:
        return kind(value)
    except ValueError:
        raise EngineError(f"invalid {option} {value!r}: must be a{' whole' if kind is int else ''} "
                          "number") from None


# exercise 03.3: Check every limit before anything is created
# hint: _size() and _number() turn text into numbers or one-line EngineErrors; 0 means no limit;
#   memory >= MIN_MEMORY; --memory-swap needs --memory, is -1 or >= memory, and defaults to twice
#   memory; cpus in 0.01..os.cpu_count(); shares in MIN_SHARES..MAX_SHARES; pids <= 0 is no limit,
#   pids over MAX_PIDS is an error;
#   parse_cpuset() checks the CPU list. Return Limits(memory, swap, cpus, shares, pids, cpuset).
# --8<-- [start:parse_limits]
# --8<-- [start:parse_limits_part1]
def parse_limits(memory: str | int | None = None, memory_swap: str | int | None = None,
                 cpus: str | float | None = None, cpu_shares: str | int | None = None,
                 pids_limit: str | int | None = None, cpuset_cpus: str | None = None) -> Limits:
    # --8<-- [end:parse_limits_part1]
    """Check Docker-style options and turn them into :class:`Limits`; :class:`EngineError` if invalid.

    Every check happens here, before a cgroup exists: bad input creates nothing.
    """
    # --8<-- [start:parse_limits_part2]
    mem = _size("--memory", memory) if memory not in (None, "") else None
    if mem == 0:
        mem = None  # like Docker: 0 means no limit
    if mem is not None and mem < MIN_MEMORY:
        raise EngineError(f"invalid --memory {memory!r}: the minimum is 6m")
    swap = None
    if memory_swap not in (None, "", 0, "0"):
        if mem is None:
            raise EngineError("--memory-swap needs --memory too: it is the total of memory and swap")
        swap = -1 if str(memory_swap).strip() == "-1" else _size("--memory-swap", memory_swap)
        if swap != -1 and swap < mem:
            raise EngineError(f"invalid --memory-swap {memory_swap!r}: it is memory + swap, so it "
                              f"must be at least --memory ({memory}); -1 means unlimited swap")
    elif mem is not None:
        swap = 2 * mem  # Docker's default: as much swap as memory
    ncpu = os.cpu_count() or 1
    cpu = _number("--cpus", cpus) if cpus not in (None, "") else None
    if cpu == 0:
        cpu = None
    if cpu is not None and not 0.01 <= cpu <= ncpu:
        raise EngineError(f"invalid --cpus {cpus!r}: the range is 0.01 to {ncpu:.2f}, "
                          f"as this host has {ncpu} CPUs")
    shares = int(_number("--cpu-shares", cpu_shares, int)) if cpu_shares not in (None, "") else None
    if shares == 0:
        shares = None
    if shares is not None and not MIN_SHARES <= shares <= MAX_SHARES:
        raise EngineError(f"invalid --cpu-shares {cpu_shares!r}: the range is {MIN_SHARES} to "
                          f"{MAX_SHARES} (1024 is the default weight)")
    pids = int(_number("--pids-limit", pids_limit, int)) if pids_limit not in (None, "") else None
    if pids is not None and pids <= 0:
        pids = None  # like Docker: 0 or -1 means unlimited
    if pids is not None and pids > MAX_PIDS:
        raise EngineError(f"invalid --pids-limit {pids_limit!r}: the kernel allows at most {MAX_PIDS} "
                          "(0 or -1 means no limit)")
    cpuset = parse_cpuset(cpuset_cpus, ncpu) if cpuset_cpus not in (None, "") else None
    return Limits(mem, swap, cpu, shares, pids, cpuset)
# --8<-- [end:parse_limits_part2]
# --8<-- [end:parse_limits]
