"""Small files written so that a crash never leaves half of one: write aside, fsync, rename, fsync.

The daemon and the monitors keep their state as JSON files under the state directory, the registry
its tags and links, the image store its records. A reader (the daemon after a restart, another
process) must see either the old or the new version, never a truncated one: rename(2) over the old
file is atomic, fsync before it makes sure the data is on disk before the name points at it, and
fsync of the directory after it makes the rename itself survive a power cut. Every atomic write of
the engine goes through :func:`atomic_write`, so none can forget a step.

Example::

    >>> write_json(Path("/tmp/x.json"), {"Running": True}); read_json(Path("/tmp/x.json"))
    {'Running': True}
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from minidocker.core.jsonscan import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import Any

__all__ = ["ZERO_TIME", "atomic_write", "read_json", "rfc3339", "write_json"]

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker shows for "never"


# exercise 09.2: Replace a file so that readers never see half of it
# hint: write to a unique temporary name in the same directory (os.O_EXCL), flush and os.fsync, then
#   os.rename over the target and fsync the directory (no fsyncs if not durable); remove the temporary
#   file if anything fails.
# --8<-- [start:atomic_write]
def atomic_write(path: Path, data: bytes | str, mode: int = 0o666, durable: bool = True) -> None:
    """Replace ``path`` by a file holding ``data``: readers see the old file or the new one, never half.

    Write aside (a unique temporary name in the same directory, so the rename stays within one
    filesystem; ``mode`` as for open(2), before the umask), fsync, rename over, fsync the directory
    so that the rename is on disk too. Two processes writing the same name concurrently each rename
    a complete file: the last one wins and nothing is torn. If anything fails, no temporary file is
    left behind. The directory must exist: a write never recreates a directory removed meanwhile.
    ``durable=False`` leaves out the two fsyncs (milliseconds each on a busy disk): for a record
    that a crash of the host makes untrue anyway, such as a running container's state.
    """
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with open(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
# --8<-- [end:atomic_write]


# --8<-- [start:write_json]
def write_json(path: Path, value: Any, mode: int = 0o666, durable: bool = True) -> None:
    """Replace ``path`` with ``value`` as compact JSON, atomically (readers see the old or the new file).

    ``mode`` and ``durable`` as for :func:`atomic_write` (0o600 for what holds secrets, such as a
    container's ``Env``).
    """
    atomic_write(path, dumps(value, separators=(",", ":")), mode, durable)
# --8<-- [end:write_json]


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value in ``path``, or ``default`` if the file does not exist (or is unreadable)."""
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return default
    try:
        return loads(text)
    except ValueError:  # json.JSONDecodeError: not JSON
        return default


def rfc3339(seconds: float | None = None) -> str:
    """A UTC time as Go's RFC3339Nano (what ``docker inspect`` shows), now if not given."""
    seconds = time.time() if seconds is None else seconds
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1e9):09d}Z"
