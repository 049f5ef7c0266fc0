"""Chapter 10: a container's standard streams, held by its monitor: pipes or a terminal, fan-out, log.

Whoever holds a process's stdio decides its fate: if the daemon held the pipes, a restart of the
daemon would close them and kill every container with SIGPIPE. So the small per-container monitor
holds them. It reads the container's output, appends it to the log and copies it to every client
attached at that moment (through the daemon), in Docker's multiplexed frames; it writes what the
clients type to the container's stdin. With ``Tty`` the container gets a pseudo-terminal instead of
pipes: one output stream, and a window size to keep up to date.

Example (in the monitor)::

    io = Stdio.pipes(open_stdin=True)      # or Stdio.terminal(24, 80)
    with io.as_standard_fds():             # children forked now get the container's ends
        pid = start_the_container()
    io.read(fd)                            # -> [(STDOUT, b"..."), ...] for the log and the clients
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Iterator

from minidocker.core.streams import STDERR, STDOUT

__all__ = ["Stdio", "take_terminal"]


# --8<-- [start:take_terminal]
def take_terminal() -> None:
    """In the container, before exec: start a session and make our stdin terminal its controlling one.

    Then Ctrl-C typed in the client reaches the container's foreground processes as SIGINT, and a
    shell can do job control, exactly as on a real terminal.
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
# --8<-- [end:take_terminal]


class Stdio:
    """The monitor's ends of one process's stdio (the container's, or an exec's)."""

    def __init__(self, child_fds: list[int], outputs: dict[int, int], stdin: int | None,
                 tty: int | None = None) -> None:
        self.child_fds = child_fds  # what the process gets as 0, 1, 2 (closed here once it started)
        self.outputs = outputs  # our read end -> STDOUT or STDERR
        self.stdin = stdin  # our write end of its stdin (the terminal's master with a tty)
        self.tty = tty
        self.stdin_buffer = bytearray()
        for fd in (*outputs, *([stdin] if stdin is not None else [])):
            os.set_blocking(fd, False)

    # --8<-- [start:pipes]
    @classmethod
    def pipes(cls, open_stdin: bool) -> Stdio:
        """Three pipes (stdin only if it will be used: otherwise /dev/null, as Docker does)."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if open_stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        return cls([in_r, out_w, err_w], {out_r: STDOUT, err_r: STDERR}, in_w)
    # --8<-- [end:pipes]

    # --8<-- [start:terminal]
    @classmethod
    def terminal(cls, rows: int = 24, columns: int = 80) -> Stdio:
        """A pseudo-terminal: the process gets the slave side three times, we keep the master."""
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        io = cls([slave, slave, slave], {master: STDOUT}, master, tty=master)
        io.resize(rows, columns)
        return io
    # --8<-- [end:terminal]

    def resize(self, rows: int, columns: int) -> None:
        """Tell the terminal its new size; the kernel sends SIGWINCH to its foreground processes."""
        if self.tty is not None and rows > 0 and columns > 0:
            fcntl.ioctl(self.tty, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    @contextlib.contextmanager
    def as_standard_fds(self) -> Iterator[None]:
        """Make the child ends our fds 0, 1, 2 while a child is forked, then put /dev/null back."""
        for n, fd in enumerate(self.child_fds):
            os.dup2(fd, n)
        try:
            yield
        finally:
            null = os.open(os.devnull, os.O_RDWR)
            for n in range(3):
                os.dup2(null, n)
            os.close(null)

    def started(self) -> None:
        """The process has its copies of the child ends: close ours (or we would never see EOF)."""
        for fd in set(self.child_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child_fds = []

    def read(self, fd: int) -> tuple[int, bytes | None]:
        """Read output ``fd``: ``(stream, data)``; ``b""`` means it ended, None that nothing is there."""
        try:
            return self.outputs[fd], os.read(fd, 65536)
        except BlockingIOError:
            return self.outputs[fd], None
        except OSError as e:  # a terminal's master reads EIO once the last slave is closed
            if e.errno == errno.EIO:
                return self.outputs[fd], b""
            raise

    def close_output(self, fd: int) -> None:
        self.outputs.pop(fd, None)
        with contextlib.suppress(OSError):
            os.close(fd)

    def write_stdin(self, data: bytes) -> None:
        """Queue ``data`` for the process's stdin (written by :meth:`flush_stdin` as it reads)."""
        if self.stdin is not None:
            self.stdin_buffer += data
            self.flush_stdin()

    def flush_stdin(self) -> None:
        """Write as much queued stdin as the pipe takes now; a process gone drops the rest."""
        while self.stdin is not None and self.stdin_buffer:
            try:
                written = os.write(self.stdin, self.stdin_buffer[:65536])
            except BlockingIOError:
                return
            except OSError:  # EPIPE: nobody reads it any more
                self.stdin_buffer.clear()
                return
            del self.stdin_buffer[:written]

    def close_stdin(self) -> None:
        """The client's stdin ended (``StdinOnce``): the process reads EOF."""
        if self.stdin is not None and self.tty is None:
            self.flush_stdin()
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None

    def close(self) -> None:
        for fd in list(self.outputs):
            self.close_output(fd)
        if self.stdin is not None and self.stdin != self.tty:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
        self.stdin = None
        self.started()

