"""Chapter 10: ``docker update``: a container's limits and restart policy, changed while it runs.

A container's limits are files of its cgroup (chapter 03), so changing them live is writing those
files again: the kernel applies a lower CPU quota or pids limit at once and reclaims memory down to
a lower limit. One case is refused instead: a memory limit below what the container uses now,
which the kernel would meet by OOM-killing (v2) or refuse with EBUSY (v1); the user gets one line
and nothing changes. What was asked is also written into ``HostConfig``, so inspect shows it and
the next start uses it; the restart policy is read by the supervisor at each exit, so it is live too.

Example::

    $ docker update --memory 256m --cpus 0.5 --pids-limit 100 --restart on-failure:3 web
    web
"""

from __future__ import annotations

from typing import Any

from minidocker.cgroups.resources import MAX_PIDS, parse_limits
from minidocker.core import errors
from minidocker.core.atomic import write_json
from minidocker.core.process import EngineError
from minidocker.core.units import human_size
from minidocker.daemon import freezer
from minidocker.daemon.restart import validate as restart_policy

__all__ = ["update"]

# UpdateConfig's fields we do not apply: refused when set, never accepted and dropped.
UNSUPPORTED = ("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
               "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime",
               "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory",
               "KernelMemoryTCP", "MemoryReservation", "MemorySwappiness", "OomKillDisable", "Ulimits")


def _cpus(body: dict) -> float | None:
    """CPUs from ``NanoCpus``, or from ``CpuQuota``/``CpuPeriod`` (``--cpu-quota``), or None."""
    if body.get("NanoCpus"):
        return body["NanoCpus"] / 1e9
    if body.get("CpuQuota"):
        return body["CpuQuota"] / (body.get("CpuPeriod") or 100_000)
    return None


def update(c: Any, body: dict) -> list[str]:
    """Apply ``body`` (Docker's UpdateConfig) to container ``c``; return the answer's warnings."""
    for key in UNSUPPORTED:
        if body.get(key) not in (None, 0, "", [], {}):
            raise errors.InvalidArgument(f"{key} cannot be updated by minidockerd")
    policy = body.get("RestartPolicy")
    if isinstance(policy, dict) and not policy.get("Name"):
        policy = None  # the docker CLI sends an empty policy when --restart is not given
    restart_policy(policy, bool(c.config["HostConfig"].get("AutoRemove")))
    pids = body.get("PidsLimit")
    try:
        limits = parse_limits(memory=body.get("Memory") or None, memory_swap=body.get("MemorySwap") or None,
                              cpus=_cpus(body), cpu_shares=body.get("CpuShares") or None,
                              pids_limit=(MAX_PIDS if pids is not None and pids <= 0 else pids) or None,
                              cpuset_cpus=body.get("CpusetCpus") or None)
    except EngineError as e:
        raise errors.InvalidArgument(str(e)) from None
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    if pid and limits.controllers():
        try:
            cgroup = freezer.cgroup_of(pid)
        except EngineError:
            cgroup = None  # it exited meanwhile: the new limits apply at its next start
        if cgroup is not None:
            used = cgroup.stats().memory
            if limits.memory is not None and limits.memory < used:
                raise errors.InvalidArgument(
                    f"Cannot update container {c.id}: memory limit {human_size(limits.memory)} is below the "
                    f"{human_size(used)} it uses now")
            try:
                cgroup.update(limits)
            except EngineError as e:
                raise errors.InvalidArgument(f"Cannot update container {c.id}: {e}") from None
    host = c.config["HostConfig"]  # what the next start uses (daemon/engine.py reads these keys)
    for key in ("Memory", "MemorySwap", "CpuShares", "CpuQuota", "CpuPeriod", "CpusetCpus"):
        if body.get(key):
            host[key] = body[key]
    if limits.cpus is not None:
        host["NanoCpus"] = round(limits.cpus * 1e9)
    if pids is not None:
        host["PidsLimit"] = pids if pids > 0 else None
    if policy is not None:
        host["RestartPolicy"] = {"Name": policy["Name"],
                                 "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    write_json(c.dir / "config.json", c.config, mode=0o600)
    return []
