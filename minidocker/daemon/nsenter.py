"""Chapter 10: ``docker exec``: start one more process inside a running container, with setns(2).

A container is nothing but a set of namespaces and cgroups around its PID 1. A new process joins
them from outside: it writes its pid into each of PID 1's cgroups (as seen from the host), then
calls setns(2) on each of PID 1's ``/proc/PID/ns/*`` files. Joining a PID namespace, like creating
one, applies only to the caller's *children*, so it forks once more; that child is the exec'd
process, and the first one waits for it and passes its exit status on (as ``nsenter -F`` does).

Example (as root, with PID 1 of a container at host pid 4242)::

    pid = spawn_in(4242, ["/bin/sh", "-c", "hostname"], {"PATH": "/bin"}, "/", report_w)
    os.waitpid(pid, 0)        # the exit status of the command, run inside the container
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import exec_command, exit_code

__all__ = ["ORDER", "join_cgroups", "join_namespaces", "spawn_in"]

# The user namespace first: it grants the rights to join the others; mnt last of the ones that
# change what paths mean (we still read /proc paths of the host until then).
ORDER = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")


# --8<-- [start:join_cgroups]
def join_cgroups(pid: int) -> None:
    """Move the calling process into the cgroup of ``pid`` (chapter 03 finds it in the mount table)."""
    Cgroup.of_process(pid).add(os.getpid())
# --8<-- [end:join_cgroups]


# exercise 10.5: Join each namespace of a running container
# hint: for each kind in ORDER whose /proc/PID/ns/KIND inode differs from /proc/self/ns/KIND open it
#   (O_RDONLY | O_CLOEXEC) first, all of them; then setns into each, in ORDER, closing each file.
# --8<-- [start:join_namespaces]
def join_namespaces(pid: int) -> None:
    """setns(2) into each namespace of ``pid`` that differs from ours (the same one is refused)."""
    files = {}
    for kind in ORDER:  # open them all first: after setns(mnt) /proc/PID may mean something else
        if os.stat(f"/proc/{pid}/ns/{kind}").st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino:
            files[kind] = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    for kind in ORDER:
        if kind in files:
            _syscalls.setns(files[kind])
            os.close(files[kind])
# --8<-- [end:join_namespaces]


# --8<-- [start:spawn_in]
def spawn_in(pid: int, argv: Sequence[str], env: Mapping[str, str], cwd: str, report_w: int,
             before_exec: Sequence[Callable[[], None]] = (),
             restrict: Sequence[Callable[[], None]] = ()) -> int:
    """Fork a process that runs ``argv`` in the container whose PID 1 is ``pid``; return its pid.

    The returned process waits for the real one (it must: the PID namespace is joined only by its
    children) and exits with its status. ``report_w`` gets one line if the exec fails. The
    container never sees a process of ours that it could read: before joining anything we become
    non-dumpable and close every descriptor but stdio and ``report_w``; the ``restrict`` hooks
    (capabilities, seccomp: PID 1's) run before the fork into the container's PID namespace, and
    ``before_exec`` (terminal, user) in the process that then execs ``argv``.
    """
    child = os.fork()
    if child:
        return child
    try:
        _syscalls.prctl(_syscalls.PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/PID/{fd,mem,environ}
        os.closerange(3, report_w)  # the monitor's sockets, logs, pidfds, the other execs' stdio
        os.closerange(report_w + 1, os.sysconf("SC_OPEN_MAX"))
        join_cgroups(pid)
        join_namespaces(pid)
        for hook in restrict:
            hook()
        grandchild = os.fork()  # the first process the container can see: as restricted as its PID 1
        if grandchild == 0:
            os.chdir(cwd)
            for hook in before_exec:
                hook()
            exec_command(argv, env, report_w)  # execve makes the command dumpable again, as any process
        os.close(report_w)
        while True:
            with contextlib.suppress(InterruptedError):
                _, status = os.waitpid(grandchild, 0)
                os._exit(exit_code(status))
    except BaseException as e:
        with contextlib.suppress(BaseException):
            os.write(report_w, f"exec failed: {e}".encode())
        os._exit(126)
# --8<-- [end:spawn_in]
