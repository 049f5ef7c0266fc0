"""Chapter 07: ``docker stats``: what the kernel counts for a container, read from its cgroups.

Nothing is measured by the engine itself: the kernel already counts, per cgroup, the memory in use
(``memory.usage_in_bytes`` or ``memory.current``), the CPU time (``cpuacct.usage`` or ``cpu.stat``)
and the processes (``pids.current``). We find the container's cgroups from its PID 1
(:func:`minidocker.nsenter.cgroup_dirs`) and answer in the shape of Docker's stats API. CPU % needs
two readings: ``docker stats --no-stream`` gets this one and the one before (``precpu_stats``).

Example::

    $ curl --unix-socket /run/minidocker.sock 'http://d/containers/web/stats?stream=false'
    {"read": "...", "memory_stats": {"usage": 1032192, "limit": 33554432}, ...}
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aiohttp import web

from minidocker._atomic import rfc3339
from minidocker.api_containers import container
from minidocker.nsenter import cgroup_dirs

__all__ = ["routes", "sample"]

routes = web.RouteTableDef()


def _read_int(path: str, key: str | None = None) -> int:
    try:
        with open(path) as f:
            if key is None:
                text = f.read().strip()
                return int(text) if text.isdigit() else 0
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


# --8<-- [start:sample]
def sample(pid: int) -> dict[str, Any]:
    """Memory, CPU time (ns) and process count of the cgroups of ``pid``, v1 or v2."""
    dirs = cgroup_dirs(pid)
    v2 = dirs.get("", "")
    memory = dirs.get("memory")
    usage = _read_int(f"{memory}/memory.usage_in_bytes") if memory else _read_int(f"{v2}/memory.current")
    limit = _read_int(f"{memory}/memory.limit_in_bytes") if memory else _read_int(f"{v2}/memory.max")
    cpu = _read_int(f"{dirs['cpuacct']}/cpuacct.usage") if "cpuacct" in dirs else \
        _read_int(f"{v2}/cpu.stat", "usage_usec") * 1000
    pids = _read_int(f"{dirs['pids']}/pids.current") if "pids" in dirs else _read_int(f"{v2}/pids.current")
    with open("/proc/stat") as f:
        system = sum(int(v) for v in f.readline().split()[1:8]) * (10**9 // os.sysconf("SC_CLK_TCK"))
    return {"memory": usage, "limit": limit or _mem_total(), "cpu": cpu, "system": system, "pids": pids}
# --8<-- [end:sample]


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) * 1024


def _shape(now: dict, before: dict, c: Any) -> dict[str, Any]:
    cpus = os.cpu_count() or 1

    def cpu_stats(s: dict) -> dict:
        return {"cpu_usage": {"total_usage": s["cpu"], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "system_cpu_usage": s["system"], "online_cpus": cpus, "throttling_data": {}}

    return {"read": rfc3339(), "preread": rfc3339(time.time() - 0.5), "id": c.id, "name": c.name,
            "pids_stats": {"current": now["pids"]}, "num_procs": 0, "blkio_stats": {}, "storage_stats": {},
            "cpu_stats": cpu_stats(now), "precpu_stats": cpu_stats(before),
            "memory_stats": {"usage": now["memory"], "limit": now["limit"], "stats": {}},
            "networks": {}}


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    """One sample (``stream=false``), or one a second until the container stops."""
    c = container(request)
    stream = request.query.get("stream", "1").lower() not in ("0", "false")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    empty = {"memory": 0, "limit": 0, "cpu": 0, "system": 0, "pids": 0}
    before = sample(int(c.state["Pid"])) if c.running else empty
    while True:
        await asyncio.sleep(0.5 if not stream else 1)
        now = sample(int(c.state["Pid"])) if c.running else empty
        await response.write(json.dumps(_shape(now, before, c)).encode() + b"\n")
        before = now
        if not stream or not c.running:
            break
    await response.write_eof()
    return response
