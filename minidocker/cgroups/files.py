"""Reading and writing cgroup interface files: the only I/O a cgroup backend does.

Every cgroup setting is a small text file in a directory of the cgroup filesystem: writing
``33554432`` to ``memory.limit_in_bytes`` *is* the memory limit. The files come in three shapes,
one helper each: a single value (``pids.current``), ``key value`` lines (``cpu.stat``,
``memory.events``), and a value the kernel may refuse (the error is the kernel's ``errno``, which we
turn into one line the user can act on).

Example::

    >>> read_int(Path("/sys/fs/cgroup/pids/pids.current"))
    212
    >>> read_keyed(Path("/sys/fs/cgroup/cpu/cpu.stat"))["nr_throttled"]
    0
"""

from __future__ import annotations

import os
from pathlib import Path

from minidocker.core.process import EngineError

__all__ = ["pids_in", "read_int", "read_keyed", "read_text", "rmdir_tree", "write"]


def write(path: Path, value: object) -> None:
    """Write ``value`` to the interface file ``path``; a refusal becomes an :class:`EngineError`.

    Opened without ``O_CREAT`` on a real cgroup filesystem would be stricter, but a fake hierarchy
    in a temp dir (the tests) needs files to be created, so a missing file is checked by callers.
    """
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        raise EngineError(f"cgroup: cannot write {value!r} to {path}: {e.strerror} "
                          f"(errno {e.errno})") from None


def read_text(path: Path, default: str = "") -> str:
    """The file's content, stripped; ``default`` if it does not exist (an older kernel, no controller)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return default


def read_int(path: Path, default: int | None = 0) -> int | None:
    """A one-number file; ``max`` (v2) is ``None``, as is a missing file when ``default`` is None."""
    text = read_text(path)
    if not text:
        return default
    return None if text == "max" else int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """A file of ``key value`` lines (``cpu.stat``, ``memory.events``, ``memory.oom_control``)."""
    found = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            found[key] = int(value)
    return found


def pids_in(directory: Path) -> set[int]:
    """Every process in the cgroup ``directory`` and the cgroups below it (host pids, as we see them)."""
    found = set()
    for procs in directory.glob("**/cgroup.procs"):
        found |= {int(p) for p in read_text(procs).split()}
    return found


def rmdir_tree(directory: Path) -> None:
    """Remove a cgroup directory and any cgroups below it, deepest first (only empty cgroups go)."""
    for sub in sorted(directory.glob("**/"), key=lambda p: len(p.parts), reverse=True):
        os.rmdir(sub)
