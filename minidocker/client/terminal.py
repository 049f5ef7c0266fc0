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

import _socket
import os
import select
import sys

from minidocker.core.streams import STDERR, Demux

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only
    import socket

    from minidocker.core.detachkeys import EscapeWatcher

# `run` without -t imports this module for its pump alone: what a terminal needs (termios, tty,
# shutil) is imported where it is used, and the socket is the client's bare _socket.socket.

__all__ = ["pump", "raw_terminal", "terminal_size"]


def terminal_size(fd: int = 1) -> tuple[int, int]:
    """``(rows, columns)`` of our terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        import shutil

        size = shutil.get_terminal_size()
    return size.lines, size.columns


class raw_terminal:  # a class, not a contextlib.contextmanager: contextlib costs `run` 3 ms
    """Put terminal ``fd`` in raw mode for the block; restore it however the block ends."""

    def __init__(self, fd: int) -> None:
        self.fd, self.saved = fd, None

    def __enter__(self) -> None:
        if os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


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
# --8<-- [start:pump_part1]
def pump(sock: socket.socket, tty: bool, stdin_fd: int | None, escape: EscapeWatcher | None = None) -> bool:
    # --8<-- [end:pump_part1]
    """Copy ``stdin_fd`` -> ``sock`` and ``sock`` -> stdout/stderr until the container ends the stream.

    With ``escape`` (a terminal's detach keys) the keys typed are watched: True once they were typed
    (they are not sent), False when the stream ended.
    """
    # --8<-- [start:pump_part2]
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
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):  # its input is closed (it may have
                    sources.remove(stdin_fd)  # exited): read the rest of its output and its status,
                    stdin_fd = None  # never take this for our stdout's broken pipe
                    continue
            if detached:
                return True
            if not typed:  # our input ended: half-close, keep reading the output
                try:
                    sock.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
                sources.remove(stdin_fd)
                stdin_fd = None
# --8<-- [end:pump_part2]
# --8<-- [end:pump]


def flush() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
