"""Small files written so that a crash never leaves half of one: write aside, fsync, rename.

The daemon and the monitors keep their state as JSON files under the state directory. A reader
(the daemon after a restart, another process) must see either the old or the new version, never a
truncated one: rename(2) over the old file is atomic, and fsync first makes sure the data is on
disk before the name points at it.

Example::

    >>> write_json(Path("/tmp/x.json"), {"Running": True}); read_json(Path("/tmp/x.json"))
    {'Running': True}
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import Any

__all__ = ["ZERO_TIME", "read_json", "rfc3339", "write_json"]

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker shows for "never"


# --8<-- [start:write_json]
def write_json(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` as JSON, atomically (readers see the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
# --8<-- [end:write_json]


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value in ``path``, or ``default`` if the file does not exist (or is unreadable)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return default


def rfc3339(seconds: float | None = None) -> str:
    """A UTC time as Go's RFC3339Nano (what ``docker inspect`` shows), now if not given."""
    seconds = time.time() if seconds is None else seconds
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1e9):09d}Z"
