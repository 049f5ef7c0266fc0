"""Pull and push progress: Docker's JSON events, and how a terminal (or a log) shows them.

A pull or push reports what it does as a stream of small dicts shaped exactly like the JSON lines
``dockerd`` sends its clients, so the daemon of chapter 10 forwards them as they are::

    {"status": "Downloading", "id": "a3ed95caeb02",
     "progressDetail": {"current": 1048576, "total": 2221290}, "progress": "[=====>  ] 1.049MB/2.221MB"}

:class:`TerminalProgress` draws them: on a terminal one line per layer, redrawn in place with
ANSI cursor moves (what the docker CLI does, no library needed); elsewhere plain lines, without
the per-chunk progress (as ``docker pull | cat`` prints).

Example::

    >>> show = TerminalProgress(sys.stdout)
    >>> show({"status": "Pulling fs layer", "id": "a3ed95caeb02", "progressDetail": {}})
    a3ed95caeb02: Pulling fs layer
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from minidocker.core.units import human_size

__all__ = ["TerminalProgress", "bar"]

PRECISION = 4  # the docker CLI's progress bars print 4 significant digits (go-units' HumanSize): 1.049MB


def bar(current: int, total: int, width: int = 50) -> str:
    """``[=====>      ] 1.049MB/2.221MB``, or just the amount when the total is unknown."""
    if total <= 0:
        return human_size(current, PRECISION)
    filled = min(width, width * current // total)
    arrow = ">" if filled < width else ""
    drawn = f"{'=' * filled}{arrow}".ljust(width)
    return f"[{drawn}] {human_size(current, PRECISION)}/{human_size(total, PRECISION)}"


class TerminalProgress:
    """A callable that prints progress events: redrawn lines on a terminal, plain lines elsewhere."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.lines: dict[str, int] = {}  # layer id -> its line, counted from the first
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self._show(event)

    def _show(self, event: dict[str, Any]) -> None:
        if "error" in event or "status" not in event:
            return  # errors are printed once, by the command; "aux" data is for programs
        text = event.get("status", "")
        if event.get("progress"):
            if not self.tty:
                return
            text += f" {event['progress']}"
        key = event.get("id")
        if not key or "progressDetail" not in event:  # a plain message ends the block of layer lines
            self.lines.clear()
            self.out.write(f"{key}: {text}\n" if key else f"{text}\n")
        elif not self.tty or key not in self.lines:
            self.lines[key] = len(self.lines)
            self.out.write(f"{key}: {text}\n")
        else:  # redraw the layer's own line: up, clear, write, back down
            up = len(self.lines) - self.lines[key]
            self.out.write(f"\x1b[{up}A\r\x1b[2K{key}: {text}\r\x1b[{up}B")
        self.out.flush()
