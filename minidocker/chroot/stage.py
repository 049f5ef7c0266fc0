"""Chapter 01: run a command jailed in a root filesystem with chroot(2), and see why that is not enough.

``chroot`` changes what ``/`` means for one process and its children. It is the oldest ancestor of
containers: a program inside sees only the files of the jail. But everything else is shared with the
host: processes, hostname, mounts, network, users. A root process inside can simply walk out, which
:func:`breakout_script` shows and chapter 02 fixes.

Run it (as root)::

    python -m minidocker.chroot "$(python -m minidocker.rootfs)" -- /bin/sh -c 'ls /; echo $$'

Exit status: the command's own, 128+N if signal N killed it, 127 if it does not exist in the rootfs,
126 if it cannot be executed, 125 if the engine failed (the rootfs does not exist, say).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from minidocker.core import stage as _stage
from minidocker.core.process import (
    DEFAULT_PATH,
    EngineError,
    exec_command,
    exit_code,
    forwarding_signals,
    read_report,
)

__all__ = ["breakout_script", "jail", "main", "run"]


# exercise 01.1: Jail a process in the root filesystem
# hint: os.chroot(rootfs) changes what "/" means but not the working directory, which may stay
#   outside the jail: step inside with os.chdir("/").
# --8<-- [start:jail]
def jail(rootfs: str) -> None:
    """Make ``rootfs`` this process's ``/``: chroot(2), then step inside it.

    chroot alone does not move the current directory: a process whose working directory is outside
    the new root can still reach the old tree through ``..``. So we always ``chdir("/")`` right after.
    """
    os.chroot(rootfs)
    os.chdir("/")
# --8<-- [end:jail]


# exercise 01.2: Run a command in the jail: fork, jail, exec, wait
# hint: refuse a rootfs that is not a directory (EngineError); fork: the child jail()s and
#   exec_command()s, and reports any failure through an os.pipe2(os.O_CLOEXEC) pipe before
#   os._exit(125); all inside `with forwarding_signals() as signals:`; the parent read_report()s,
#   then signals.wait(pid) (it passes signals on while it waits), then
#   returns exit_code(status), or raises EngineError(report, exit_code(status)) if there was one.
# --8<-- [start:run]
def run(rootfs: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` inside ``rootfs`` and return its exit status (shell-style, 128+N for signals).

    The engine forks; the child jails itself and execs the command. A close-on-exec pipe tells the
    engine why an exec failed (127 not found, 126 not executable) without the child printing anything.
    """
    if not os.path.isdir(rootfs):
        raise EngineError(f"rootfs {rootfs!r} is not a directory: "
                          "build one with 'python -m minidocker.rootfs'")
    env = dict(env or {"PATH": DEFAULT_PATH, "HOME": "/root", "TERM": os.environ.get("TERM", "xterm")})
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    with forwarding_signals() as signals:  # before the fork: no SIGTERM may orphan the child
        pid = os.fork()
        if pid == 0:  # the child: never returns into the engine's code
            try:
                os.close(report_r)
                jail(rootfs)
                exec_command(argv, env, report_w)
            except BaseException as e:
                os.write(report_w, f"chroot {rootfs}: {e}".encode())
            os._exit(125)
        os.close(report_w)
        problem = read_report(report_r)  # signals stay pending meanwhile: wait() passes them on
        status = signals.wait(pid)
    if problem:
        raise EngineError(problem, exit_code(status))
    return exit_code(status)
# --8<-- [end:run]


# exercise 01.4: Break out of the jail through /proc
# hint: mount a procfs at /proc, then try cat /proc/PID/root<marker> for every PID until one works;
#   exit 0 on success and 1 otherwise, after unmounting /proc.
# --8<-- [start:breakout]
def breakout_script(marker: str) -> str:
    """A shell script that, run as root inside a chroot, prints the host's file ``marker``.

    The jail only changed ``/`` for our own process. The kernel still shows every process of the
    host in ``/proc``, and ``/proc/PID/root`` is a door to the root directory of process PID: for
    any process outside the jail (the engine that started us, the host's init), that is the host's
    real ``/``. Mounting ``/proc`` needs nothing but root, so root walks out of the jail. The
    script tries each process in turn (silently: ``2>&-`` closes stderr, since a jail has no
    ``/dev/null``), and unmounts what it mounted, to leave nothing behind.
    """
    return (
        "mkdir -p /proc && mount -t proc proc /proc || exit 1; status=1; "
        f"for door in /proc/[0-9]*/root; do cat $door{marker} 2>&- && status=0 && break; done; "
        "umount /proc; exit $status"
    )
# --8<-- [end:breakout]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.chroot ROOTFS -- CMD [ARG...]``."""
    def body() -> int:
        args = _stage.parse_command_line(argv, "python -m minidocker.chroot", __doc__)
        return run(args.rootfs, args.command)

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
