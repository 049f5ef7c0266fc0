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

__all__ = ["EXIT_CANNOT_EXECUTE", "EXIT_ENGINE", "EXIT_NOT_FOUND", "EngineError", "Forwarder", "exec_command",
           "exit_code", "forwarding_signals", "from_terminal", "read_report"]

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
# hint: reset SIGPIPE, SIGXFSZ and the FORWARDED_SIGNALS to SIG_DFL and unblock every signal
#   (signal.pthread_sigmask: the engine blocks those it forwards until it waits), then
#   os.execvpe(argv[0], argv, env); on OSError, _describe_exec_error(name, e) gives the exit code
#   (127 or 126) and the one-line reason: write it to report_fd, then os._exit(code). Never return.
# --8<-- [start:exec_command]
def exec_command(argv: Sequence[str], env: Mapping[str, str], report_fd: int) -> NoReturn:
    """Replace this (child) process by ``argv``, searching ``PATH`` from ``env`` as a shell would.

    Never returns: on failure it writes one line to ``report_fd`` and exits 127 (not found) or
    126 (found but not executable), the codes shells and Docker use.
    """
    # Python ignores SIGPIPE, a shell starts a background job with SIGINT and SIGQUIT ignored, and an
    # ignored signal stays ignored across exec, a blocked one blocked: the program must start with
    # the defaults, or `yes | head` would never end and Ctrl-C would not reach it. The defaults come
    # before the unblocking: a SIGTERM that waited in the queue acts as it would on the program.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS):
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


# Signals the engine passes on to the container: all that ask a program to stop or to act. SIGINT
# and SIGQUIT are among them (``docker run`` forwards them too): a supervisor's ``kill -INT`` must
# stop the container, not the engine alone. But a terminal sends Ctrl-C (SIGINT) and Ctrl-\
# (SIGQUIT) to its whole foreground process group, the container included: passed on, they would
# arrive twice. Only the kernel tells the two apart, in the signal's ``si_code``: SI_USER for
# kill(2), SI_KERNEL for a terminal. A Python handler never sees it; sigwaitinfo(2) does, so the
# engine blocks these signals and reads them itself while it waits (:meth:`Forwarder.wait`).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT,
                     signal.SIGQUIT)

# What a terminal sends to every process of its foreground group: Ctrl-C, Ctrl-\ and a resize.
TERMINAL_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH})
SI_KERNEL = 0x80  # si_code of a signal the kernel sent (<asm-generic/siginfo.h>; Python has no name)


def from_terminal(info: signal.struct_siginfo) -> bool:
    """Whether ``info`` is a terminal's Ctrl-C, Ctrl-\\ or resize, which its whole foreground group got."""
    return info.si_signo in TERMINAL_SIGNALS and info.si_code == SI_KERNEL


class Forwarder:
    """Where the engine's signals go: the container, once :meth:`wait` (or :meth:`attach`) names it.

    :func:`forwarding_signals` blocks the signals before the container exists: the kernel keeps
    any that arrive, with their sender, until :meth:`wait` reads them. So no SIGTERM can kill the
    engine and orphan the container, and none is lost. (Processes forked meanwhile inherit the
    blocked signals: :func:`exec_command` unblocks them.)
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.mask: set[int] | None = None  # the mask to restore while the signals are blocked

    def wait(self, pid: int) -> int:
        """Wait for our child ``pid`` to exit, passing the signals on to it; return its wait status.

        A signal the terminal sent to the whole group (:func:`from_terminal`) is not passed on: the
        container got it too. Every other one is, SIGINT from ``kill`` included.
        """
        if self.mask is None:  # not blocked (not the main thread): nothing to read
            self.attach(pid)
            return os.waitpid(pid, 0)[1]
        self.pid = pid
        watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # its exit wakes sigwaitinfo
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)  # it may be gone before SIGCHLD was blocked
                if done:
                    return status
                info = signal.sigwaitinfo(watched)
                if info.si_signo != signal.SIGCHLD and not from_terminal(info):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, info.si_signo)
        finally:
            self.pid = None  # reaped: its pid may soon be another process's
            self._unblock()

    def attach(self, pid: int) -> None:
        """Pass signals to ``pid`` from signal handlers instead (for a caller that waits itself).

        Those that came before are delivered now. A handler cannot tell a terminal's SIGINT or
        SIGQUIT from a ``kill``: it passes neither on (as system(3) would ignore them).
        """
        self.pid = pid
        if self.mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            self.mask = None

    def forward(self, signum: int, _frame: object) -> None:
        """The signal handler of :meth:`attach`."""
        if self.pid is not None and signum not in TERMINAL_SIGNALS:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def _unblock(self) -> None:
        """Drop what is still blocked (its target is gone, or never was), then unblock."""
        if self.mask is not None:
            while signal.sigtimedwait({*FORWARDED_SIGNALS, signal.SIGCHLD}, 0):
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            self.mask = None


@contextlib.contextmanager
def forwarding_signals(pid: int | None = None) -> Iterator[Forwarder]:
    """While the block runs, pass the signals sent to the engine on to the container.

    Enter it *before* forking the container, then :meth:`Forwarder.wait` for it (or
    :meth:`Forwarder.attach` its pid and wait yourself; or give ``pid`` at once). Only the main
    thread may set signal handlers: elsewhere nothing is forwarded, and the caller must forward itself.
    """
    forwarder = Forwarder()
    try:
        handlers = {sig: signal.signal(sig, forwarder.forward) for sig in FORWARDED_SIGNALS}
    except ValueError:  # not the main thread: "signal only works in main thread" (none was set)
        handlers = {}
    if handlers:
        forwarder.mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        if pid is not None:
            forwarder.attach(pid)
        yield forwarder
    finally:
        forwarder.pid = None
        forwarder._unblock()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
