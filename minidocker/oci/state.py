"""Chapter 14: a container's state between runtime calls: ``--root/ID/state.json`` and ``exec.fifo``.

An OCI runtime is not a daemon: ``create``, ``start``, ``state``, ``kill`` and ``delete`` are separate
processes, so everything one of them learns is written to a directory of its own, as runc does:
``/run/minidocker-runtime/ID/state.json`` (written atomically, root-only) and, between ``create``
and ``start``, the FIFO the container's init is blocked on. The status is never stored: it is
worked out each time from the init process and the FIFO (runc's ``refreshState``).

Example::

    >>> box = ContainerDir(Path("/run/minidocker-runtime"), "web")
    >>> box.load()["pid"], box.status(box.load())
    (4242, 'created')
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from minidocker.core.atomic import read_json, write_json
from minidocker.core.process import EngineError

__all__ = ["DEFAULT_ROOT", "ContainerDir", "check_id", "start_time"]

DEFAULT_ROOT = "/run/minidocker-runtime"
ID_PATTERN = re.compile(r"^[\w+\-.]{1,1024}$")  # runc's: letters, digits, _ + - .
MAX_STATE = 4 << 20  # bytes: a state file bigger than this was not written by us


def check_id(container_id: str) -> str:
    """Refuse an id that would escape --root or name nothing (runc's rule)."""
    if not ID_PATTERN.match(container_id) or container_id in (".", ".."):
        raise EngineError(f"invalid id format: {container_id[:80]!r}")
    return container_id


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None if gone: a pid reused later has another."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


class ContainerDir:
    """``ROOT/ID``: the directory that holds one container's state (mode 0700)."""

    def __init__(self, root: Path, container_id: str) -> None:
        self.root = root
        self.id = check_id(container_id)
        self.path = root / container_id
        self.state_file = self.path / "state.json"
        self.fifo = self.path / "exec.fifo"

    # --8<-- [start:make]
    def make(self) -> None:
        """Create the directory and the FIFO the init waits on; an id in use is an error."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            raise EngineError(f"container with id exists: {self.id}") from None
        old = os.umask(0)
        try:
            os.mkfifo(self.fifo, 0o622)  # the init may have become another user: it must open it
        finally:
            os.umask(old)
    # --8<-- [end:make]

    def exists(self) -> bool:
        return self.path.is_dir()

    def load(self) -> dict:
        """The saved state; :class:`EngineError` (runc's words) if there is no such container."""
        if not self.state_file.is_file() or self.state_file.stat().st_size > MAX_STATE:
            raise EngineError(f"container does not exist: {self.id}")
        state = read_json(self.state_file)
        if not isinstance(state, dict):
            raise EngineError(f"container {self.id}: state.json is unreadable")
        return state

    def save(self, state: dict) -> None:
        write_json(self.state_file, state, mode=0o600)

    # --8<-- [start:status]
    def status(self, state: dict) -> str:
        """created, running, paused or stopped, from the init process, the FIFO and the freezer."""
        pid = state.get("pid") or 0
        if not pid or start_time(pid) != state.get("pid_start"):
            return "stopped"  # gone, a zombie, or the pid is someone else's now
        if self.fifo.exists():
            return "created"  # the init still waits on the FIFO
        return "paused" if state.get("paused") else "running"
    # --8<-- [end:status]

    def remove(self) -> None:
        """Delete the directory and the runtime's own files in it (state.json, exec.fifo), if it is there.

        Those are all it ever holds, side by side: ``shutil`` (2 ms to import, with bz2 and lzma) only
        for whatever else someone put there.
        """
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(self.path / name)
        try:
            os.rmdir(self.path)
        except OSError:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)

    @staticmethod
    def all(root: Path) -> list[ContainerDir]:
        """Every container under ``root`` (with a state file), by id."""
        if not root.is_dir():
            return []
        return [ContainerDir(root, p.name) for p in sorted(root.iterdir())
                if ID_PATTERN.match(p.name) and (p / "state.json").is_file()]
