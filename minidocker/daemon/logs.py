"""Chapter 10: container logs, json-file style: one JSON object per line, with a size cap.

Everything a container writes to stdout and stderr is kept by its monitor, so ``docker logs`` works
after the container has exited and while the daemon is down. Like Docker's default ``json-file``
driver, each line becomes ``{"log": "...\\n", "stream": "stdout", "time": "RFC3339Nano"}``. When the
file passes ``max_size`` it is rotated to ``NAME.1`` (and older files are dropped), so a chatty
container cannot fill the disk.

Example::

    >>> log = JsonLog(Path("/tmp/c.log"), max_size=1 << 20)
    >>> log.write("stdout", b"hello\\nwor"); log.write("stdout", b"ld\\n")
    >>> [e["log"] for e in read_entries(Path("/tmp/c.log"))]
    ['hello\\n', 'wor', 'ld\\n']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minidocker.core import errors
from minidocker.core.atomic import rfc3339
from minidocker.core.streams import STDERR, STDOUT, frame

__all__ = ["DEFAULT_MAX_FILES", "DEFAULT_MAX_SIZE", "JsonLog", "parse_lines", "parse_time", "private",
           "read_entries", "render", "tail_entries"]

DEFAULT_MAX_SIZE = 10 << 20  # without --log-opt max-size (parsed by core.units.parse_size)
DEFAULT_MAX_FILES = 2


def private(path: str, flags: int) -> int:
    """An ``opener`` for open(): a new file is root's alone (0600), as a container's output may hold secrets.

    Example: ``open(directory / "monitor.log", "ab", opener=private)``.
    """
    return os.open(path, flags, 0o600)


# --8<-- [start:JsonLog]
class JsonLog:
    """Append a container's output to ``path`` as json-file lines, rotating past ``max_size``."""

    def __init__(self, path: Path, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES):
        self.path, self.max_size, self.max_files = path, max_size, max(1, max_files)
        self.file = open(path, "ab", opener=private)  # noqa: SIM115 (open for the container's lifetime)

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` (one entry per line; a trailing partial line is an entry of its own)."""
        now = rfc3339()
        for line in data.splitlines(keepends=True):
            entry = json.dumps({"log": line.decode(errors="replace"), "stream": stream, "time": now})
            raw = entry.encode() + b"\n"
            if self.file.tell() and self.file.tell() + len(raw) > self.max_size:
                self.rotate()  # whole lines only: a file never passes the cap by more than one line
            self.file.write(raw)
        self.file.flush()

    def rotate(self) -> None:
        """``log`` -> ``log.1`` -> ``log.2`` ..., dropping the oldest; then start an empty file."""
        self.file.close()
        for n in range(self.max_files - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if n == self.max_files - 1:
                older.unlink(missing_ok=True)
            source = self.path if n == 1 else self.path.with_name(f"{self.path.name}.{n - 1}")
            if source.exists():
                os.replace(source, older)
        if self.max_files == 1:
            self.path.unlink(missing_ok=True)
        self.file = open(self.path, "ab", opener=private)  # noqa: SIM115

    def close(self) -> None:
        self.file.close()
# --8<-- [end:JsonLog]


def _files(path: Path) -> list[Path]:
    rotated = sorted(path.parent.glob(f"{path.name}.[0-9]*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, path]


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry still on disk, oldest first (rotated files, then the current one)."""
    for file in _files(path):
        try:
            with open(file, "rb") as f:
                yield from parse_lines(f.read())
        except FileNotFoundError:
            continue


def tail_entries(path: Path, tail: int | None) -> tuple[list[dict[str, Any]], int]:
    """The last ``tail`` entries (all if None), and the offset in the current file to follow from."""
    entries = []
    for file in _files(path)[:-1]:
        try:
            entries.extend(parse_lines(file.read_bytes()))
        except FileNotFoundError:
            continue
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    offset = data.rfind(b"\n") + 1  # a line being written is read next time, whole
    entries.extend(parse_lines(data[:offset]))
    return (entries if tail is None else entries[len(entries) - tail:] if tail else []), offset


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Entries from whole json-file lines (lines cut by a crash are skipped)."""
    found = []
    for line in data.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


# --8<-- [start:parse_time]
def parse_time(text: str | None, name: str) -> float:
    """``since``/``until`` as seconds since the epoch (0: not given): a Unix time, or RFC 3339.

    The docker CLI turns ``--since 10m`` or ``--until 2025-01-02`` into Unix seconds (``1735776000.0``)
    itself; other clients send RFC 3339 (``2025-01-02T10:00:00Z``, ``...+02:00``), which Docker takes too.
    """
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import UTC, datetime

    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise errors.InvalidArgument(f"invalid {name} {text!r}: a Unix time in seconds or an RFC 3339 "
                                     "time (2006-01-02T15:04:05Z)") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
# --8<-- [end:parse_time]


def entry_time(entry: dict[str, Any]) -> float:
    """When a log entry was written, in seconds since the epoch."""
    from minidocker.daemon.containers import seconds

    return seconds(entry.get("time", ""))


def render(entries: list[dict[str, Any]], streams: dict[str, bool], tty: bool, *, since: float = 0,
           until: float = 0, timestamps: bool = False) -> bytes:
    """Entries as a client reads them: raw with a terminal, else in Docker's frames (stdout 1, stderr 2).

    Only the ``streams`` asked for, written at ``since`` or later and ``until`` or earlier (0: no bound).
    """
    out = []
    for e in entries:
        if not streams.get(e.get("stream", ""), False):
            continue
        if (since or until) and not (since <= entry_time(e) and (not until or entry_time(e) <= until)):
            continue
        data = (f"{e['time']} " if timestamps else "").encode() + e["log"].encode()
        out.append(data if tty else frame(STDOUT if e["stream"] == "stdout" else STDERR, data))
    return b"".join(out)
