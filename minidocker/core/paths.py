"""Where minidocker keeps things on the host, in one place so that tests can move all of it.

* the **state** directory (``$MINIDOCKER_STATE``, default ``/var/lib/minidocker``): layers, images,
  containers, networks: what must survive a reboot, like ``/var/lib/docker``;
* the **run** directory (``$MINIDOCKER_RUN``, default ``/run/minidocker``): sockets, pid files,
  locks: what is meaningless after a reboot, like ``/run/docker``;
* the **cache** directory (``$MINIDOCKER_CACHE``, default ``/var/cache/minidocker``): things we can
  rebuild, such as the busybox root filesystem;
* the **cgroup parent** (``$MINIDOCKER_CGROUP_PARENT``, default ``minidocker``): the cgroup under
  which every container's cgroup is created, like Docker's ``/docker``.

The test suite points all four at per-run places, so that test runs never see each other.
The directories are created on first use, searchable by everyone: with ``--userns`` the
container's root is an unprivileged host user that must walk down to its files.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "cgroup_parent", "run_dir", "state_dir"]


def _dir(variable: str, default: str) -> Path:
    path = Path(os.environ.get(variable) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """The engine's persistent state: ``$MINIDOCKER_STATE`` or ``/var/lib/minidocker``."""
    return _dir("MINIDOCKER_STATE", "/var/lib/minidocker")


def run_dir() -> Path:
    """Runtime files (sockets, locks): ``$MINIDOCKER_RUN`` or ``/run/minidocker``."""
    return _dir("MINIDOCKER_RUN", "/run/minidocker")


def cache_dir() -> Path:
    """Rebuildable artefacts: ``$MINIDOCKER_CACHE`` or ``/var/cache/minidocker`` (mode 0755)."""
    path = _dir("MINIDOCKER_CACHE", "/var/cache/minidocker")
    path.chmod(0o755)
    return path


def cgroup_parent() -> str:
    """The cgroup every container's cgroup lives under: ``$MINIDOCKER_CGROUP_PARENT`` or ``minidocker``."""
    return os.environ.get("MINIDOCKER_CGROUP_PARENT") or "minidocker"
