"""Chapter 10: a daemon's places on the host (data root, exec root, pidfile), each held by one daemon.

A daemon keeps its state in its **data root** (``--data-root``, ``/var/lib/minidocker``) and its
runtime files in its **exec root** (``--exec-root``, ``/run/minidocker``): the fork server's socket,
the monitors' sockets, and, by default, its **pidfile** (``--pidfile``), by which ``minidocker
daemon stop`` finds it. Two daemons on one host must share none of these: a second daemon that
binds the first one's ``forkserver.sock`` silently takes its monitors away, and one that writes
the first one's pidfile makes ``daemon stop`` stop the wrong daemon, or none. So, as dockerd:

* a daemon given another ``--data-root`` gets an exec root of its own, derived from that path
  (``/run/minidocker-<8 hex>``), unless ``--exec-root`` says where;
* each root is *claimed* with a lock held while the daemon runs (a crash releases it); a second
  daemon on a claimed root refuses to start, naming the pid that holds it.

Example::

    >>> exec_root("/srv/md2", inherited_state="/var/lib/minidocker", inherited_run="/run/minidocker")
    '/run/minidocker-3f9c1a2b'
    >>> lock = claim(Path("/run/minidocker"), "exec root")    # held until the process exits
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from minidocker.core import errors

__all__ = ["claim", "exec_root", "write_pidfile"]


def exec_root(data_root: str | None, *, inherited_state: str, inherited_run: str) -> str:
    """The exec root of a daemon with ``data_root`` and no ``--exec-root``.

    The data root the environment names (``$MINIDOCKER_STATE``, else ``/var/lib/minidocker``) goes
    with the run directory it names (``$MINIDOCKER_RUN``, else ``/run/minidocker``); any other data
    root gets that path with a suffix of its own, so that two daemons never share one.
    """
    if not data_root or os.path.realpath(data_root) == os.path.realpath(inherited_state):
        return inherited_run
    suffix = hashlib.sha256(os.path.realpath(data_root).encode()).hexdigest()[:8]
    return f"{inherited_run.rstrip('/')}-{suffix}"


# --8<-- [start:claim]
def claim(directory: Path, what: str) -> IO[str]:
    """Lock ``directory/minidockerd.lock`` for this process (keep the file open); it holds our pid.

    Raises :class:`~minidocker.core.errors.Conflict` naming the pid of the live daemon that holds it.
    """
    lock = open(directory / "minidockerd.lock", "a+")  # noqa: SIM115 (held while the daemon runs)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise errors.Conflict(f"the {what} {directory} is in use by the daemon with pid {holder}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
# --8<-- [end:claim]


def write_pidfile(path: Path) -> None:
    """Write our pid to ``path``, unless it names another live daemon (then Conflict, with its pid).

    A pidfile left by a daemon that was killed names a dead process (or one that is no daemon): it
    is replaced.
    """
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        daemon = b"minidocker.daemon" in argv or any(a.endswith(b"minidockerd") for a in argv)
        if pid != os.getpid() and daemon:
            raise errors.Conflict(f"the pidfile {path} names a running daemon, pid {pid}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
