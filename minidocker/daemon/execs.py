"""Chapter 10: one ``docker exec`` session, run by the container's monitor.

The monitor is the right place for exec: it is the parent of the container and already holds
stdio for it. For each exec it makes pipes (or a terminal), forks a process that joins the
container (:func:`minidocker.daemon.nsenter.spawn_in`), copies its output to the daemon in Docker's frames,
and, when the process exits, sends its exit code *before* closing the stream: the ``docker`` CLI
asks for ``ExitCode`` the moment the stream ends.

Example (in the monitor)::

    session = ExecSession.start(container_pid, spec, config, {"Cmd": ["hostname"], "Tty": False})
    ...                                  # session.ready(fd) as its fds become readable
    code, problem = session.finish()     # once its pidfd is readable
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from minidocker.core.process import exit_code, read_report
from minidocker.core.streams import frame
from minidocker.daemon import engine, nsenter, stdio, users

__all__ = ["ExecSession"]


class ExecSession:
    """A process started in a running container, with the monitor's ends of its stdio."""

    def __init__(self, pid: int, io: stdio.Stdio, report_r: int) -> None:
        self.pid, self.io, self.report_r = pid, io, report_r
        self.pidfd = os.pidfd_open(pid)
        self.conn: Any = None  # the daemon's connection: frames go there

    # --8<-- [start:exec_start]
    @classmethod
    def start(cls, container_pid: int, spec: Any, config: dict, request: dict,
              spawn: Any = None) -> ExecSession:
        """Start ``request["Cmd"]`` in the container with its env, working dir, user and terminal.

        ``spawn(argv, env, cwd, user, tty) -> pid``, if given, starts it instead: the container's
        runtime's own exec (:mod:`minidocker.daemon.runtimes`), with our stdio as its standard fds.
        """
        tty = bool(request.get("Tty"))
        rows, columns = (request.get("ConsoleSize") or [24, 80])[:2]
        io = stdio.Stdio.terminal(rows or 24, columns or 80) if tty else \
            stdio.Stdio.pipes(bool(request.get("AttachStdin")))
        env = dict(spec.env)
        for item in request.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        if tty:
            env.setdefault("TERM", "xterm")
        hooks = [stdio.take_terminal] if tty else []
        restrict = []  # what later chapters apply to every process (hardening), before it is visible
        for extra in engine.exec_hooks:
            restrict += extra(config)
        user = request.get("User") or config["Config"].get("User")
        if user:
            hooks.append(lambda: users.switch_user(user))
        for extra in engine.exec_final_hooks:  # the user's own capability sets, after the switch
            hooks += extra(config)
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        try:
            with io.as_standard_fds():
                if spawn is not None:
                    pid = spawn(list(request["Cmd"]), env, request.get("WorkingDir") or spec.cwd, user, tty)
                    return cls(pid, io, report_r)
                pid = nsenter.spawn_in(container_pid, request["Cmd"], env,
                                       request.get("WorkingDir") or spec.cwd, report_w, hooks, restrict)
        finally:
            os.close(report_w)
            io.started()
        return cls(pid, io, report_r)
    # --8<-- [end:exec_start]

    def ready(self, fd: int) -> None:
        """``fd`` (one of ours) is ready: pass output on, or write more queued stdin."""
        if fd in self.io.outputs:
            stream, data = self.io.read(fd)
            if data == b"":
                self.io.close_output(fd)
            elif data:
                self.conn.send(frame(stream, data))
        elif fd == self.io.stdin:
            self.io.flush_stdin()

    def finish(self) -> tuple[int, str | None]:
        """The process exited: reap it, pass on its last output; return its exit code and why it failed."""
        _, status = os.waitpid(self.pid, 0)
        for _ in range(64):
            for fd in list(self.io.outputs):
                stream, data = self.io.read(fd)
                if not data:
                    self.io.close_output(fd)
                else:
                    self.conn.send(frame(stream, data))
            if not self.io.outputs:
                break
        problem = read_report(self.report_r)
        self.report_r = -1
        self.close()
        return exit_code(status), problem

    def close(self) -> None:
        self.io.close()
        for fd in (self.pidfd, self.report_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = self.report_r = -1
