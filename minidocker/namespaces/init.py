"""Chapter 02: a tiny init for PID 1 (``--init``), the job ``docker run --init`` gives to tini.

PID 1 is special in a PID namespace. The kernel hands it every orphaned process, so it must reap
them or zombies pile up; and a signal it has no handler for is dropped, so a plain program as
PID 1 ignores the SIGTERM of ``docker stop`` (only SIGKILL and SIGSTOP sent from an ancestor
namespace, the host, are forced through: pid_namespaces(7)). Most programs were not written to be
PID 1.

By default minidocker, like Docker, execs the command itself as PID 1 (so ``echo $$`` prints ``1``).
With ``--init`` this function stays PID 1 instead: it starts the command as PID 2, forwards signals
to it, reaps every orphan, and exits with the command's status when the command ends (the kernel
then kills whatever is left in the namespace).

Example (inside a fresh PID namespace, after pivot_root)::

    run_as_init(["/bin/sh", "-c", "sleep 1 & exit 3"], {"PATH": "/bin"}, report_fd)  # exits 3
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

from minidocker.core.process import exec_command, exit_code, from_terminal

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import NoReturn

__all__ = ["FORWARDED", "run_as_init"]

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)


# exercise 02.12: A PID 1 that forwards signals and reaps orphans
# hint: block FORWARDED and SIGCHLD (signal.pthread_sigmask) and fork the command (the child
#   exec_command()s, which unblocks them); close report_fd; then loop on signal.sigwaitinfo(): pass
#   a FORWARDED signal on with os.kill(child, ...) unless from_terminal(info); on SIGCHLD reap with
#   os.waitpid(-1, os.WNOHANG) until it returns (0, 0): exit with exit_code(status) when the command
#   ends, with 0 when no child is left. Never return.
# --8<-- [start:run_as_init]
def run_as_init(argv: Sequence[str], env: Mapping[str, str], report_fd: int) -> NoReturn:
    """Be a well-behaved PID 1: start ``argv``, forward signals to it, reap orphans, exit with its status."""
    # Blocked, the signals wait in a queue that sigwaitinfo(2) reads one by one, each with who sent
    # it (tini does the same). Ctrl-C from the terminal reaches the command directly, as it
    # reaches us: passed on, it would arrive twice.
    watched = {*FORWARDED, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    child = os.fork()
    if child == 0:
        exec_command(argv, env, report_fd)
    os.close(report_fd)  # the engine sees EOF once the command has exec'd (or failed to)
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD:
            if not from_terminal(info):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, info.si_signo)
            continue
        while True:  # one SIGCHLD may stand for many exits: orphans are ours to reap too
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == child:
                os._exit(exit_code(status))
# --8<-- [end:run_as_init]
