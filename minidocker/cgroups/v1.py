"""Chapter 03: the cgroup v1 backend: one hierarchy per controller, the container has a directory in each.

In cgroup v1 every controller (``memory``, ``cpu``, ``pids``, ...) is mounted as its own tree,
usually at ``/sys/fs/cgroup/<controller>``, and a container is a directory *in each tree*,
``/sys/fs/cgroup/memory/minidocker/ID``, ``/sys/fs/cgroup/pids/minidocker/ID``, ... A process
is placed into each tree separately, and each tree has its own file names and units:

=========================  =============================================================
limit                      file (in the controller's own directory)
=========================  =============================================================
``--memory 64m``           ``memory.limit_in_bytes`` = 67108864
``--memory-swap``          ``memory.memsw.limit_in_bytes`` (memory + swap; -1 unlimited)
``--cpus 0.5``             ``cpu.cfs_period_us`` = 100000, ``cpu.cfs_quota_us`` = 50000
``--cpu-shares 512``       ``cpu.shares`` = 512
``--pids-limit 100``       ``pids.max`` = 100
``--cpuset-cpus 0``        ``cpuset.cpus`` = 0 (and ``cpuset.mems``, copied from the parent)
=========================  =============================================================

Example (as root, on a v1 or hybrid host)::

    dirs = {"memory": Path("/sys/fs/cgroup/memory/minidocker/abc"), ...}
    write_limits(dirs, Limits(memory=64 << 20))
    read_stats(dirs).memory_limit      # 67108864
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from minidocker.cgroups.files import read_int, read_keyed, read_text, write
from minidocker.cgroups.resources import Limits, Stats

__all__ = ["CPU_PERIOD_US", "init_cpuset", "read_stats", "write_limits"]

CPU_PERIOD_US = 100_000  # the CFS period Docker uses: 100 ms
_UNLIMITED = 1 << 62  # v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages, in bytes)


# exercise 03.4: Give a new v1 cpuset cgroup its parent's CPUs and memory nodes
# hint: for cpuset.cpus and cpuset.mems: if the file in directory is empty, write() the parent's.
# --8<-- [start:init_cpuset]
def init_cpuset(directory: Path) -> None:
    """Give a new v1 cpuset cgroup its parent's CPUs and memory nodes.

    A v1 cpuset cgroup starts *empty*: no CPU, no memory node, and a task cannot join it
    (``ENOSPC``). v2 fixed this by inheriting from the parent; in v1 the engine copies them.
    """
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_text(directory / name):
            write(directory / name, read_text(directory.parent / name))
# --8<-- [end:init_cpuset]


# exercise 03.5: Write the limits into the v1 trees
# hint: memory.limit_in_bytes, then memory.memsw.limit_in_bytes if it exists (memory_swap);
#   cpu.cfs_period_us = CPU_PERIOD_US and cpu.cfs_quota_us = cpus * CPU_PERIOD_US; cpu.shares;
#   pids.max; cpuset.cpus: each in dirs[controller], only for the limits that are not None.
# --8<-- [start:write_limits]
def write_limits(dirs: Mapping[str, Path], limits: Limits) -> None:
    """Write ``limits`` into the container's directory of each controller's hierarchy (``dirs``)."""
    if limits.memory is not None:
        write(dirs["memory"] / "memory.limit_in_bytes", limits.memory)
        # memory+swap; the file exists only when the kernel accounts swap (swapaccount=1)
        memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
        if limits.memory_swap is not None and memsw.exists():
            write(memsw, limits.memory_swap)
        elif limits.memory_swap is not None:  # Docker warns too, and goes on
            print("minidocker: warning: this kernel does not account swap (boot with swapaccount=1): "
                  "memory is limited, swap is not", file=sys.stderr)
    if limits.cpus is not None:
        write(dirs["cpu"] / "cpu.cfs_period_us", CPU_PERIOD_US)
        write(dirs["cpu"] / "cpu.cfs_quota_us", round(limits.cpus * CPU_PERIOD_US))
    if limits.cpu_shares is not None:
        write(dirs["cpu"] / "cpu.shares", limits.cpu_shares)
    if limits.pids is not None:
        write(dirs["pids"] / "pids.max", limits.pids)
    if limits.cpuset_cpus is not None:
        write(dirs["cpuset"] / "cpuset.cpus", limits.cpuset_cpus)
# --8<-- [end:write_limits]


# exercise 03.11: Read a v1 container's accounting into Stats
# hint: memory.usage_in_bytes, memory.max_usage_in_bytes, memory.limit_in_bytes (huge = no limit),
#   cpuacct.usage (ns), cpu.stat (nr_periods, nr_throttled, throttled_time), pids.current,
#   pids.max, and oom_kill in memory.oom_control; a missing controller counts 0.
# --8<-- [start:read_stats]
def read_stats(dirs: Mapping[str, Path]) -> Stats:
    """Read what the container used from each controller's accounting files (missing ones count 0)."""
    memory, cpu = dirs.get("memory", Path("/nonexistent")), dirs.get("cpu", Path("/nonexistent"))
    cpuacct, pids = dirs.get("cpuacct", cpu), dirs.get("pids", Path("/nonexistent"))
    limit = read_int(memory / "memory.limit_in_bytes", None)
    cpu_stat = read_keyed(cpu / "cpu.stat")
    return Stats(
        memory=read_int(memory / "memory.usage_in_bytes") or 0,
        memory_peak=read_int(memory / "memory.max_usage_in_bytes", None),
        memory_limit=limit if limit is not None and limit < _UNLIMITED else None,
        cpu_ns=read_int(cpuacct / "cpuacct.usage") or 0,
        periods=cpu_stat.get("nr_periods", 0),
        throttled_periods=cpu_stat.get("nr_throttled", 0),
        throttled_ns=cpu_stat.get("throttled_time", 0),
        pids=read_int(pids / "pids.current") or 0,
        pids_limit=read_int(pids / "pids.max", None),
        # the kernel counts OOM kills since 4.13, in a file that is mostly about *disabling* them
        oom_kills=read_keyed(memory / "memory.oom_control").get("oom_kill", 0),
    )
# --8<-- [end:read_stats]
