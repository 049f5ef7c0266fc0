"""Where minidocker keeps things on the host, and who may reach them, in one place so tests can move it.

* the **state** directory (``$MINIDOCKER_STATE``, default ``/var/lib/minidocker``): layers, images,
  containers, networks: what must survive a reboot, like ``/var/lib/docker``;
* the **run** directory (``$MINIDOCKER_RUN``, default ``/run/minidocker``): sockets, pid files,
  locks: what is meaningless after a reboot, like ``/run/docker`` (the daemon's ``--exec-root``);
* the **cache** directory (``$MINIDOCKER_CACHE``, default ``/var/cache/minidocker``): things we can
  rebuild, such as the busybox root filesystem;
* the **cgroup parent** (``$MINIDOCKER_CGROUP_PARENT``, default ``minidocker``): the cgroup under
  which every container's cgroup is created, like Docker's ``/docker``.

The test suite points all four at per-run places, so that test runs never see each other.

The state directory is root's alone (mode 0710, as Docker's since CVE-2021-41091): it holds every
container's environment (secrets, often) and, mounted below it, every container's root filesystem,
where a container's root may have left a setuid-root shell. A user namespace's root (``--userns``,
an unprivileged host user) must still walk down to its own files: :func:`let_in` gives its group
search permission on exactly the directories on that path, as Docker does for its remapped root.

Example::

    >>> state_dir()                       # made on first use, root-only
    PosixPath('/var/lib/minidocker')
    >>> private_dir(state_dir() / "containers")
    >>> let_in(state_dir() / "containers" / "c1", 100000)   # a --userns container's root may pass
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cache_dir", "cgroup_parent", "let_in", "private_dir", "run_dir", "state_dir", "umask"]

STATE_MODE = 0o710  # root: everything; the group (root's, or a user namespace's root): search only


def _dir(variable: str, default: str) -> Path:
    path = Path(os.environ.get(variable) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """The engine's persistent state, root-only: ``$MINIDOCKER_STATE`` or ``/var/lib/minidocker``.

    A state directory made by an older, more open minidocker is closed on first use.
    """
    path = Path(os.environ.get("MINIDOCKER_STATE") or "/var/lib/minidocker")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)  # 0700 from the start, 0710 below
    st = path.stat()
    if st.st_mode & 0o7777 & ~STATE_MODE and st.st_uid == os.geteuid():
        path.chmod(STATE_MODE)
    return path


def private_dir(path: Path, *, parents: bool = False) -> Path:
    """Make ``path`` a directory only root may enter (0700), whatever the umask; return it.

    An existing directory keeps its mode if it is already closed to others (see :func:`let_in`).
    """
    path.mkdir(mode=0o700, parents=parents, exist_ok=True)
    if path.stat().st_mode & 0o007:
        path.chmod(0o700)
    return path


def let_in(path: Path, gid: int) -> None:
    """Let group ``gid`` (a user namespace's root) search every directory from the state directory
    down to ``path``, and nothing more: each becomes ``root:gid`` mode 0710.

    A ``--userns`` container's PID 1 is that unprivileged user on the host when it mounts its root
    filesystem and its ``/etc/hosts`` by path; it can open none of root's files on the way.
    """
    root, path = state_dir(), Path(path)
    if path != root and root not in path.parents:
        raise ValueError(f"{path} is not in the state directory {root}")
    for directory in [*reversed(path.relative_to(root).parents), path.relative_to(root)]:
        where = root / directory
        os.chown(where, -1, gid)
        where.chmod(STATE_MODE)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Create files with ``mask`` (e.g. a socket with 0o177: mode 0600 from its first instant).

    A socket chmod'ed after bind(2) is open to anyone in between; the umask applies at bind.
    The umask is the whole process's: use it around one call, not around threads at work.
    """
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


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
