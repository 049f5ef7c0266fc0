"""Chapter 11: the client's end of an attached container: a real terminal, or two demultiplexed streams.

``minidocker run -it busybox sh`` must feel like a local shell. Three things make it so:

* **raw mode** on our terminal: every key goes to the container as typed (Ctrl-C too, which the
  container's terminal turns into SIGINT for its foreground job), and nothing is echoed twice;
* the **window size**: sent once at the start and again on each SIGWINCH;
* the **pump**: keystrokes to the socket, output to our stdout, until the container closes the
  stream; our stdin's end becomes a half-close, so the container reads EOF but output still flows.

Without ``-t`` the output arrives multiplexed and is split back into stdout and stderr.

Example::

    with raw_terminal(0):
        pump(sock, tty=True, stdin_fd=0)
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import sys
import termios
import tty as _tty
from collections.abc import Iterator

from minidocker.core.detachkeys import EscapeWatcher
from minidocker.core.streams import STDERR, Demux

__all__ = ["pump", "raw_terminal", "terminal_size"]


def terminal_size(fd: int = 1) -> tuple[int, int]:
    """``(rows, columns)`` of our terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        size = shutil.get_terminal_size()
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put terminal ``fd`` in raw mode for the block; restore it however the block ends."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    _tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [])


# exercise 11.2: Copy stdin to the container and its output to ours
# hint: select on the socket (and stdin); socket data to fd 1 as is with a tty, else through a Demux to 1 or
#   2 (STDERR); an empty read or a reset ends it; stdin at EOF: shutdown(SHUT_WR), stop reading it. Mind
#   TLS: sock.pending() bytes are ready without select. With escape: stdin through escape.feed, and return
#   True at the detach keys (False when the socket ends).
# --8<-- [start:pump]
def pump(sock: socket.socket, tty: bool, stdin_fd: int | None, escape: EscapeWatcher | None = None) -> bool:
    """Copy ``stdin_fd`` -> ``sock`` and ``sock`` -> stdout/stderr until the container ends the stream.

    With ``escape`` (a terminal's detach keys) the keys typed are watched: True once they were typed
    (they are not sent), False when the stream ended.
    """
    demux = Demux()
    sources: list = [sock] + ([stdin_fd] if stdin_fd is not None else [])
    while True:
        pending = getattr(sock, "pending", lambda: 0)()  # TLS may hold decrypted bytes already
        ready = [sock] if pending else select.select(sources, [], [])[0]
        if sock in ready:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                return False
            if tty:
                _write_all(1, data)
            else:
                for stream, payload in demux.feed(data):
                    _write_all(2 if stream == STDERR else 1, payload)
        if stdin_fd is not None and stdin_fd in ready:
            typed = os.read(stdin_fd, 65536)
            data, detached = escape.feed(typed) if escape is not None and typed else (typed, False)
            if data:
                sock.sendall(data)
            if detached:
                return True
            if not typed:  # our input ended: half-close, keep reading the output
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                sources.remove(stdin_fd)
                stdin_fd = None
# --8<-- [end:pump]


def flush() -> None:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
