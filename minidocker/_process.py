"""The exit-status contract every stage shares, and the exec that honours it.

A container engine is judged by small things: ``docker run`` exits with the command's own status,
with 128+N when a signal killed it, with 127 when the command does not exist, 126 when it cannot be
executed and 125 when the engine itself failed. Every ``python -m minidocker.STAGE`` entry point keeps
that contract, so this module is shared by all of them.

The exec happens in a child that has already entered the container; the engine, outside, must learn
*why* it failed. The child gets a close-on-exec pipe: a successful exec closes it silently (EOF), a
failed one writes one line and exits 126/127. That is the same trick ``subprocess`` and runc use.

Example::

    >>> r, w = os.pipe2(os.O_CLOEXEC)
    >>> if os.fork() == 0:
    ...     exec_command(["nope"], {"PATH": "/bin"}, w)
    >>> os.close(w); read_report(r)
    'exec: "nope": executable file not found in $PATH'
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator, Mapping, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import NoReturn

__all__ = ["EXIT_CANNOT_EXECUTE", "EXIT_ENGINE", "EXIT_NOT_FOUND", "EngineError", "exec_command",
           "exit_code", "forwarding_signals", "read_report"]

EXIT_ENGINE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EngineError(Exception):
    """A failure the user can act on: printed as one line (no traceback), the process exits ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ENGINE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code(wait_status: int) -> int:
    """Map a ``waitpid`` status to a shell-style exit code: the status itself, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


# exercise 01.3: Exec the command, or report why not
# hint: reset SIGPIPE and SIGXFSZ to SIG_DFL and unblock every signal (signal.pthread_sigmask), then
#   os.execvpe(argv[0], argv, env); on OSError, _describe_exec_error(name, e) gives the exit code
#   (127 or 126) and the one-line reason: write it to report_fd, then os._exit(code). Never return.
# --8<-- [start:exec_command]
def exec_command(argv: Sequence[str], env: Mapping[str, str], report_fd: int) -> NoReturn:
    """Replace this (child) process by ``argv``, searching ``PATH`` from ``env`` as a shell would.

    Never returns: on failure it writes one line to ``report_fd`` and exits 127 (not found) or
    126 (found but not executable), the codes shells and Docker use.
    """
    # Python ignores SIGPIPE, the engine ignores SIGINT and SIGQUIT while it waits, and an ignored
    # signal stays ignored across exec: the program must start with the defaults, or `yes | head`
    # would never end and Ctrl-C would not reach it.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    name = argv[0] if argv else ""
    try:
        if not name:
            raise FileNotFoundError(errno.ENOENT, "no command given")
        os.execvpe(name, list(argv), dict(env))
    except OSError as e:
        code, reason = _describe_exec_error(name, e)
    except BaseException as e:  # never let a child unwind into the engine's own code
        code, reason = EXIT_ENGINE, f"exec: {name!r}: {e}"
    try:
        os.write(report_fd, reason.encode(errors="replace")[:4000])
    finally:
        os._exit(code)
# --8<-- [end:exec_command]


def _describe_exec_error(name: str, e: OSError) -> tuple[int, str]:
    if e.errno == errno.ENOENT:
        if not name:
            return EXIT_NOT_FOUND, "no command given: pass one after '--' (or the image has no CMD)"
        if "/" in name:
            return EXIT_NOT_FOUND, f'exec: "{name}": stat {name}: no such file or directory'
        return EXIT_NOT_FOUND, f'exec: "{name}": executable file not found in $PATH'
    if e.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
        return EXIT_CANNOT_EXECUTE, f'exec: "{name}": permission denied'
    if e.errno == errno.ENOEXEC:
        return EXIT_CANNOT_EXECUTE, f'exec: "{name}": exec format error'
    return EXIT_CANNOT_EXECUTE, f'exec: "{name}": {e.strerror}'


def read_report(fd: int) -> str | None:
    """Read a child's report pipe until EOF (the exec happened, or the child exited). Closes ``fd``."""
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    text = b"".join(chunks).decode(errors="replace").strip()
    return text or None


# Signals the engine passes on to the container. SIGINT and SIGQUIT are not among them: the terminal
# already sends those to the whole foreground process group, container included, so the engine just
# ignores them while it waits (as system(3) does) instead of delivering them twice.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


class Forwarder:
    """Where the engine's termination signals go: the container, once :meth:`attach` names it.

    A signal that arrives before the container exists is kept and delivered at :meth:`attach`, so
    there is no window in which a SIGTERM would kill the engine and orphan the container.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []

    def attach(self, pid: int) -> None:
        """From now on signals go to ``pid``; deliver those that came before."""
        self.pid = pid
        while self.pending:
            self.forward(self.pending.pop(0), None)

    def forward(self, signum: int, _frame: object) -> None:
        if self.pid is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


@contextlib.contextmanager
def forwarding_signals(pid: int | None = None) -> Iterator[Forwarder]:
    """While the block runs, pass termination signals sent to the engine on to the container.

    Enter it *before* forking the container and :meth:`Forwarder.attach` its pid once known (or
    give ``pid`` at once). Only the main thread may set signal handlers: elsewhere nothing is
    forwarded, and the caller must forward itself.
    """
    forwarder = Forwarder()
    if pid is not None:
        forwarder.attach(pid)
    try:
        handlers = {sig: signal.signal(sig, forwarder.forward) for sig in FORWARDED_SIGNALS}
        handlers |= {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    except ValueError:  # not the main thread: "signal only works in main thread" (none was set)
        handlers = {}
    try:
        yield forwarder
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
