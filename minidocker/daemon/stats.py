"""Chapter 10: ``docker stats``: what the kernel counts for a container, read from its cgroups.

Nothing is measured by the engine itself: the kernel already counts, per cgroup, the memory in use
(``memory.usage_in_bytes`` or ``memory.current``), the CPU time (``cpuacct.usage`` or ``cpu.stat``)
and the processes (``pids.current``). Chapter 03 reads them: we find the container's cgroup from
its PID 1 (:meth:`minidocker.cgroups.cgroup.Cgroup.of_process`), take its
:meth:`~minidocker.cgroups.cgroup.Cgroup.stats` and answer in the shape of Docker's stats API. CPU %
needs two readings: ``docker stats --no-stream`` gets this one and the one before (``precpu_stats``).

``GET /containers/{id}/top`` is here too: the processes in the container's cgroup, in ``ps``'s words.

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

from minidocker.cgroups.resources import Stats
from minidocker.core import errors
from minidocker.core.atomic import rfc3339
from minidocker.core.process import EngineError
from minidocker.daemon.freezer import cgroup_of
from minidocker.daemon.routes.containers import container

__all__ = ["routes", "sample"]

routes = web.RouteTableDef()


# --8<-- [start:sample]
def sample(pid: int) -> dict[str, Any]:
    """Memory, CPU time (ns) and process count of the cgroup of ``pid``, v1 or v2 (zeros if it is gone)."""
    try:
        used = cgroup_of(pid).stats()
    except (EngineError, OSError, ValueError):
        used = Stats()
    with open("/proc/stat") as f:
        system = sum(int(v) for v in f.readline().split()[1:8]) * (10**9 // os.sysconf("SC_CLK_TCK"))
    return {"memory": used.memory, "limit": used.memory_limit or _mem_total(), "cpu": used.cpu_ns,
            "system": system, "pids": used.pids}
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


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    """``docker top``: the host's ``ps`` (``ps_args``, ``-ef`` by default) kept to the rows of the
    processes in the container's cgroup, as dockerd answers it: ``Titles`` and ``Processes``."""
    c = container(request)
    if not c.running:
        raise errors.Conflict(f"Container {c.id} is not running")
    try:
        pids = cgroup_of(int(c.state["Pid"])).pids()
    except (EngineError, OSError) as e:
        raise errors.Conflict(f"Container {c.id} is not running: {e}") from None
    args = (request.query.get("ps_args") or "-ef").split()
    process = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode:
        raise errors.InvalidArgument(f"ps: {err.decode(errors='replace').strip()}")
    lines = out.decode(errors="replace").splitlines()
    titles = lines[0].split()
    if "PID" not in titles:
        raise errors.InvalidArgument(f"Couldn't find PID field in ps output: {lines[0]}")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)  # the last column (CMD) keeps its spaces
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            processes.append(fields)
    return web.json_response({"Titles": titles, "Processes": processes})
