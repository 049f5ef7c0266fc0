"""An exclusive lock on a file that one object may take again while it holds it (re-entrant).

Why a file lock: several processes (the daemon, monitors, a stage run by hand) change the same
records on disk, and ``flock(2)`` is released by the kernel when its holder dies, even by SIGKILL,
so a crash never leaves a lock behind.

Example::

    lock = FileLock(directory / "lock")
    with lock:
        with lock:  # the same object again: no deadlock
            ...
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["FileLock"]


class FileLock:
    """``with lock:`` holds ``path``'s exclusive lock; nested ``with`` on the same object is free."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._depth > 0

    def __enter__(self) -> FileLock:
        if self._depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the file releases the lock
