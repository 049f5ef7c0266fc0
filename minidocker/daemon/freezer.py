"""Chapter 10: a container's cgroup seen from the daemon: found from its PID 1, frozen by ``docker pause``.

``docker pause`` stops every process of a container without a signal it could see or catch:
chapter 03's freezer (v2's ``cgroup.freeze``, v1's ``freezer.state``). Whether a container is
paused is asked of the kernel each time, never kept in a file of ours: a daemon restarted while a
container is paused still says "Paused", and nothing can disagree with the kernel.

The cgroup trees are read from the mount table at most every ``PROBE_EVERY`` seconds: they are
mounted at boot, while ``docker stats`` asks every second and ``docker ps`` for every container.

Example::

    pause(c)                  # State.Paused true, ps says "Up 5 seconds (Paused)"
    unpause(c)
"""

from __future__ import annotations

import time
from typing import Any

from minidocker.cgroups.cgroup import Cgroup, Hierarchy, hierarchies
from minidocker.core import errors
from minidocker.core.process import EngineError

__all__ = ["cgroup_of", "is_paused", "pause", "unpause"]

PROBE_EVERY = 10.0  # seconds
_probed: dict[str, Any] = {"at": float("-inf"), "trees": []}


def _trees() -> list[Hierarchy]:
    """Chapter 03's probe of the mount table for cgroup trees, redone at most every ``PROBE_EVERY``."""
    if time.monotonic() - _probed["at"] > PROBE_EVERY:
        _probed.update(at=time.monotonic(), trees=hierarchies())
    return _probed["trees"]


def cgroup_of(pid: int) -> Cgroup:
    """The cgroup process ``pid`` is in (EngineError if it is gone)."""
    return Cgroup.of_process(pid, found=_trees())


def is_paused(pid: int) -> bool:
    """Whether the cgroup of the running container whose PID 1 is ``pid`` is frozen (False if none)."""
    if not pid:
        return False
    try:
        return cgroup_of(pid).is_frozen()
    except (EngineError, OSError):
        return False


def pause(c: Any) -> None:
    """``docker pause``: freeze a running container (Conflict if it is not running or already paused)."""
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    if not pid:
        raise errors.NotRunning(c.name.lstrip("/"))
    if is_paused(pid):
        raise errors.Conflict(f"Container {c.id} is already paused")
    cgroup_of(pid).freeze()


def unpause(c: Any) -> None:
    """``docker unpause``: thaw it (Conflict if it is not paused)."""
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    if not is_paused(pid):
        raise errors.Conflict(f"Container {c.id} is not paused")
    cgroup_of(pid).thaw()


def thawed(c: Any) -> None:
    """Thaw a paused container before it is stopped or killed, as dockerd does (a no-op otherwise)."""
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    if is_paused(pid):
        cgroup_of(pid).thaw()
