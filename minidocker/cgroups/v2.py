"""Chapter 03: the cgroup v2 backend: one unified tree, the container is one directory in it.

cgroup v2 (Linux 4.5+, the default of every current distribution) mounts *one* tree, usually at
``/sys/fs/cgroup``. A container is one directory, ``/sys/fs/cgroup/minidocker/ID``, and a process
joins every controller at once by writing its pid to that directory's ``cgroup.procs``. Controllers
are switched on per subtree: a parent lists in ``cgroup.subtree_control`` which controllers its
children get (``+memory +cpu +pids``), and only the controllers its own parent passed down
(``cgroup.controllers``) can be. Limits have cleaner names and units than in v1:

=========================  =============================================================
limit                      file (in the container's directory)
=========================  =============================================================
``--memory 64m``           ``memory.max`` = 67108864
``--memory-swap``          ``memory.swap.max`` = swap alone (memory-swap minus memory)
``--cpus 0.5``             ``cpu.max`` = ``50000 100000`` (quota, period in µs)
``--cpu-shares 512``       ``cpu.weight`` = 1..10000 (default 100), converted from shares
``--pids-limit 100``       ``pids.max`` = 100
``--cpuset-cpus 0``        ``cpuset.cpus`` = 0 (inherited from the parent when empty)
=========================  =============================================================

Example (as root, on a v2 host)::

    enable_controllers(Path("/sys/fs/cgroup/minidocker"), {"memory", "cpu", "pids"})
    write_limits(Path("/sys/fs/cgroup/minidocker/abc"), Limits(memory=64 << 20))
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from minidocker.cgroups.files import read_int, read_keyed, read_text, write
from minidocker.cgroups.resources import Limits, Stats

__all__ = ["CONTROLLERS", "CPU_PERIOD_US", "enable_controllers", "read_stats", "shares_to_weight",
           "write_limits"]

CPU_PERIOD_US = 100_000
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")  # what a container's directory gets


# exercise 03.6: Hand controllers down to a v2 cgroup's children
# hint: of the wanted controllers, those in directory/cgroup.controllers and not yet in
#   directory/cgroup.subtree_control: write "+name +name ..." to cgroup.subtree_control.
# --8<-- [start:enable_controllers]
def enable_controllers(directory: Path, wanted: Iterable[str]) -> None:
    """Let the children of ``directory`` use the ``wanted`` controllers that it has itself.

    Writing ``+memory +cpu`` to ``cgroup.subtree_control`` is what makes ``memory.max`` and
    ``cpu.max`` appear in the children. (v2's "no internal processes" rule: a cgroup that hands
    controllers down may hold no process itself, except the root; our parent holds none.)
    """
    available = set(read_text(directory / "cgroup.controllers").split())
    enabled = set(read_text(directory / "cgroup.subtree_control").split())
    missing = sorted(set(wanted) & available - enabled)
    if missing:
        write(directory / "cgroup.subtree_control", " ".join(f"+{name}" for name in missing))
# --8<-- [end:enable_controllers]


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144, default 1024) to v2 ``cpu.weight`` (1..10000, default 100), like runc."""
    return 1 + (shares - 2) * 9999 // 262142


# exercise 03.7: Write the limits into the v2 directory
# hint: memory.max; memory.swap.max (if it exists) is swap alone: memory_swap - memory, or "max"
#   for -1; cpu.max is "QUOTA PERIOD" in µs; cpu.weight = shares_to_weight(shares); pids.max;
#   cpuset.cpus.
# --8<-- [start:write_limits]
def write_limits(directory: Path, limits: Limits) -> None:
    """Write ``limits`` into the container's one directory of the unified hierarchy."""
    if limits.memory is not None:
        write(directory / "memory.max", limits.memory)
        # v2 limits swap on its own, not memory+swap; the file exists when swap is accounted
        swap_file = directory / "memory.swap.max"
        if limits.memory_swap is not None and swap_file.exists():
            swap = "max" if limits.memory_swap == -1 else limits.memory_swap - limits.memory
            write(swap_file, swap)
        elif limits.memory_swap is not None:  # Docker warns too, and goes on
            print("minidocker: warning: this kernel does not account swap (no memory.swap.max): "
                  "memory is limited, swap is not", file=sys.stderr)
    if limits.cpus is not None:
        write(directory / "cpu.max", f"{round(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
    if limits.cpu_shares is not None:
        write(directory / "cpu.weight", shares_to_weight(limits.cpu_shares))
    if limits.pids is not None:
        write(directory / "pids.max", limits.pids)
    if limits.cpuset_cpus is not None:
        write(directory / "cpuset.cpus", limits.cpuset_cpus)
# --8<-- [end:write_limits]


# exercise 03.12: Read a v2 container's accounting into Stats
# hint: memory.current, memory.peak, memory.max ("max" = None); cpu.stat's usage_usec,
#   nr_periods, nr_throttled, throttled_usec (µs: times 1000 for ns); pids.current, pids.max;
#   oom_kill in memory.events.
# --8<-- [start:read_stats]
def read_stats(directory: Path) -> Stats:
    """Read what the container used; v2 keeps it all in the one directory, CPU times in µs."""
    cpu_stat = read_keyed(directory / "cpu.stat")
    return Stats(
        memory=read_int(directory / "memory.current") or 0,
        memory_peak=read_int(directory / "memory.peak", None),  # Linux 5.19+
        memory_limit=read_int(directory / "memory.max", None),
        cpu_ns=cpu_stat.get("usage_usec", 0) * 1000,
        periods=cpu_stat.get("nr_periods", 0),
        throttled_periods=cpu_stat.get("nr_throttled", 0),
        throttled_ns=cpu_stat.get("throttled_usec", 0) * 1000,
        pids=read_int(directory / "pids.current") or 0,
        pids_limit=read_int(directory / "pids.max", None),
        oom_kills=read_keyed(directory / "memory.events").get("oom_kill", 0),
    )
# --8<-- [end:read_stats]
