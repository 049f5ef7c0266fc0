"""Chapter 14: ``exec``: one more process in a running container, as the process JSON describes it.

The process JSON is config.json's ``process`` (``ctr task exec`` and dockerd write one per exec
and pass it with ``--process``). The new process joins the init's cgroup and namespaces (chapter
10's :mod:`~minidocker.daemon.nsenter`), then gets what :func:`specconv.process_hooks` gives the
init: rlimits, no_new_privs, the user, the capability sets, and the container's seccomp filter.

Joining a PID namespace applies to children only, so a helper joins and forks the process, then
exits at once: the process is handed to us (a subreaper), and with ``--detach`` to whoever is
ours (the shim), which is what containerd waits on. Its pid goes to ``--pid-file``.

Example::

    minidocker-runtime exec --process p.json --detach --pid-file exec.pid web
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from minidocker.core import syscalls as _syscalls
from minidocker.core.atomic import atomic_write
from minidocker.core.process import EngineError, exec_command, exit_code, forwarding_signals, read_report
from minidocker.daemon import nsenter
from minidocker.oci import console, lifecycle, specconv
from minidocker.oci.state import ContainerDir

__all__ = ["exec_process"]


# --8<-- [start:exec_process]
def exec_process(box: ContainerDir, process: dict, *, detach: bool, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0) -> int:
    """Run ``process`` in the container; its exit status, or 0 once it has exec'd with ``detach``."""
    state = box.load()
    status = box.status(state)
    if status != "running":
        raise EngineError(f"cannot exec in a {status} container")
    if not process.get("args"):
        raise EngineError("exec: no command given (process.args is empty)")
    config = state["config"]
    linux = config.get("linux") or {}
    hardening = specconv.hardening_of(config, process, linux)
    sets = specconv.process_capabilities(process)
    steps = sorted(specconv.process_hooks(process, hardening, sets), key=lambda step: step[2])
    steps.append(("before_exec", lambda: lifecycle.close_exec_from(3 + preserve_fds), 0))
    env = dict(item.split("=", 1) for item in process.get("env") or [] if "=" in item)
    terminal = bool(process.get("terminal"))
    if terminal and console_socket is None and not os.isatty(0):
        raise EngineError("cannot allocate tty if runc will detach without setting console socket")
    conn = console.connect(console_socket) if terminal and console_socket else None
    size = process.get("consoleSize") or {}
    size = (size.get("height", 0), size.get("width", 0))
    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)
    # --8<-- [end:exec_process]
    # --8<-- [start:exec_process_fork]
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    with forwarding_signals() as signals:
        helper = os.fork()
        if helper == 0:
            os.close(pid_r), os.close(report_r)
            _join_and_fork(state["pid"], process, env, steps, (conn, size) if terminal else None, pid_w,
                           report_w)
        os.close(pid_w), os.close(report_w)
        if conn is not None:
            os.close(conn)
        pid_text = read_report(pid_r)
        os.waitpid(helper, 0)
        problem = read_report(report_r)  # EOF: exec'd (or failed, with the reason)
        if not pid_text:
            raise EngineError(problem or "exec: could not join the container")
        pid = int(pid_text)
        if problem:
            raise EngineError(problem, exit_code(os.waitpid(pid, 0)[1]))
        if pid_file:
            atomic_write(Path(os.path.abspath(pid_file)), str(pid), mode=0o644)
        if detach:
            return 0
        return exit_code(signals.wait(pid))
    # --8<-- [end:exec_process_fork]


def _join_and_fork(pid: int, process: dict, env: dict, steps: list, terminal: tuple | None, pid_w: int,
                   report_w: int) -> None:
    """In the helper: join the init's cgroup and namespaces, fork the process, report its pid, exit."""
    try:
        _syscalls.prctl(_syscalls.PR_SET_DUMPABLE, 0)  # the container may not read us
        nsenter.join_cgroups(pid)
        nsenter.join_namespaces(pid)
        child = os.fork()
        if child == 0:
            os.close(pid_w)
            try:
                if terminal is not None:
                    console.take_terminal(*terminal)
                os.chdir(process.get("cwd") or "/")
                for _point, hook, _order in steps:
                    hook()
            except BaseException as e:
                with contextlib.suppress(BaseException):
                    os.write(report_w, f"exec failed: {e}".encode())
                os._exit(126)
            exec_command(process["args"], env, report_w)
        os.write(pid_w, str(child).encode())
        os._exit(0)
    except BaseException as e:
        with contextlib.suppress(BaseException):
            os.write(report_w, f"exec failed: {e}".encode())
        os._exit(126)
