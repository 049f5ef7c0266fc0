"""Chapter 10: the per-container monitor, minidocker's shim: it outlives the daemon, and so do containers.

Docker runs each container under a tiny ``containerd-shim`` process, not under dockerd: the shim is
the container's parent, holds its stdio, keeps its exit status. dockerd can then restart (upgrade,
crash) while containers run on. minidocker does the same. The daemon starts one monitor per
container (``python -m minidocker.daemon.monitor ID``, in a session of its own) and talks to it over a
UNIX socket in the run directory. The monitor:

1. runs the container through the engine's stages (:mod:`minidocker.daemon.engine`), as its parent;
2. holds its stdio (:mod:`minidocker.daemon.stdio`), logs its output (:mod:`minidocker.daemon.logs`) and
   serves attach, resize and exec (:mod:`minidocker.daemon.nsenter`) to the daemon;
3. records the exit status in ``state.json`` (atomically) the moment PID 1 exits, daemon or not;
4. cleans up what the stages set up, then exits. The daemon notices through a pidfd.

It is single-threaded (a ``selectors`` loop): setns(2) into a mount namespace, needed by exec,
is refused to a multi-threaded process.

The protocol: each connection sends one JSON line and gets one back; ``attach`` and ``exec``
connections then carry Docker's multiplexed frames (:mod:`minidocker.core.streams`) both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import syscalls as _syscalls
from minidocker.core.atomic import read_json, rfc3339, write_json
from minidocker.core.paths import run_dir, state_dir, umask
from minidocker.core.process import EngineError, exit_code
from minidocker.core.spec import ORDER_FIRST
from minidocker.core.streams import CONTROL, STDERR, STDIN, STDOUT, Conn, frame
from minidocker.core.units import parse_size
from minidocker.daemon import engine, handover, health, runtimes, stdio
from minidocker.daemon.containers import start_time
from minidocker.daemon.execs import ExecSession
from minidocker.daemon.logs import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, JsonLog
from minidocker.daemon.volumes import rootfs_propagation, volume_mounts

__all__ = ["Monitor", "log_path", "main", "run", "socket_path"]

FLOW_LIMIT = 1 << 20  # stop reading the container while a client has this much unsent output


def log_path(container_id: str) -> Path:
    """The monitor's own log (its stderr), in the container's directory."""
    return state_dir() / "containers" / container_id / "monitor.log"


def socket_path(container_id: str) -> Path:
    """Where the monitor of ``container_id`` listens (short: UNIX socket paths max out at 108 bytes)."""
    directory = run_dir() / "monitors"
    directory.mkdir(exist_ok=True)
    return directory / f"{container_id[:12]}.sock"


class Monitor:
    """The event loop of one container's monitor."""

    def __init__(self, container_id: str, listener: socket.socket, directory: Path | None = None) -> None:
        self.id = container_id
        self.dir = directory or state_dir() / "containers" / container_id
        self.config = read_json(self.dir / "config.json")
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.execs: dict[int, ExecSession] = {}  # pidfd -> session
        self.cleanup = contextlib.ExitStack()
        self.io: stdio.Stdio | None = None
        self.container: Any = None
        self.pidfd: int | None = None
        self.spec: Any = None
        self.finished = False
        self.handed: tuple[bytes, list[int]] | None = None  # the start worker's clean-up (see handover)
        self.keeper: tuple[int, socket.socket] | None = None  # ... or the worker itself, kept
        self.worker: tuple[int, int] | None = None  # the start worker's pidfd and pid, until reaped
        self.prober = health.Prober.of(self.config, self.dir)  # the healthcheck, if the container has one
        log_config = self.config["HostConfig"].get("LogConfig", {}).get("Config") or {}
        max_size = log_config.get("max-size")
        self.log = JsonLog(self.dir / "json.log", parse_size(max_size) if max_size else DEFAULT_MAX_SIZE,
                           int(log_config.get("max-file") or DEFAULT_MAX_FILES))

    # ---- the loop ---------------------------------------------------------------------------
    def serve(self) -> NoReturn:
        """Run until the container has exited and every client has its last bytes; then exit."""
        while not (self.finished and not self.conns):
            interest: dict[int, int] = {self.listener.fileno(): selectors.EVENT_READ}
            stalled = any(len(c.outbuf) > FLOW_LIMIT for c in self.conns.values())
            for fd, conn in self.conns.items():
                interest[fd] = (selectors.EVENT_READ if not conn.closing else 0) | (
                    selectors.EVENT_WRITE if conn.outbuf else 0)
            probes = [self.prober.session] if self.prober and self.prober.session else []
            for source in ([self.io] if self.io else []) + [s.io for s in [*self.execs.values(), *probes]]:
                for fd in source.outputs:
                    interest[fd] = 0 if stalled else selectors.EVENT_READ
                if source.stdin is not None and source.stdin_buffer:
                    interest[source.stdin] = interest.get(source.stdin, 0) | selectors.EVENT_WRITE
            for fd in (self.pidfd, *self.execs, *(s.pidfd for s in probes), *(self.worker or ())[:1]):
                if fd is not None:
                    interest[fd] = selectors.EVENT_READ
            self._watch(interest)
            probing = self.prober is not None and self.pidfd is not None
            wait = 1 if self.finished else self.prober.wait() if probing else None
            for key, events in self.selector.select(timeout=wait):
                try:
                    self._dispatch(key.fd, events)
                except Exception:  # a bug must not take the container down: drop that connection
                    traceback.print_exc()
                    if key.fd in self.conns:
                        self._drop(self.conns[key.fd])
            if self.prober and self.pidfd is not None and not self.finished:
                self.prober.tick(self._probe)
            if self.finished and not self.conns:
                break
            if self.finished:  # give slow clients a moment, not forever
                self._flush_all(deadline=5)
        self._exit()

    def _watch(self, interest: dict[int, int]) -> None:
        current = {key.fd: key.events for key in self.selector.get_map().values()}
        for fd, events in current.items():
            if interest.get(fd, 0) == 0:
                self.selector.unregister(fd)
            elif interest[fd] != events:
                self.selector.modify(fd, interest[fd])
        for fd, events in interest.items():
            if events and fd not in current:
                self.selector.register(fd, events)

    def _dispatch(self, fd: int, events: int) -> None:
        if fd == self.listener.fileno():
            sock, _ = self.listener.accept()
            sock.setblocking(False)
            self.conns[sock.fileno()] = Conn(sock)
        elif fd in self.conns:
            conn = self.conns[fd]
            if events & selectors.EVENT_WRITE:
                self._write(conn)
            if events & selectors.EVENT_READ and fd in self.conns:
                self._read(conn)
        elif fd == self.pidfd:
            self._container_exited()
        elif self.worker and fd == self.worker[0]:
            self._reap_worker()
        elif fd in self.execs:
            self._exec_exited(fd)
        elif self.prober and self.prober.session and fd == self.prober.session.pidfd:
            self.prober.exited()
        else:
            self._output(fd)

    # ---- connections ------------------------------------------------------------------------
    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if conn.kind == "request":
            conn.inbuf += data
            if b"\n" in conn.inbuf:
                line, _, rest = bytes(conn.inbuf).partition(b"\n")
                conn.inbuf.clear()
                self._request(conn, line, rest)
            elif len(conn.inbuf) > 1 << 20:
                self._drop(conn)
        else:
            self._frames(conn, data)

    def _frames(self, conn: Conn, data: bytes) -> None:
        for stream, payload in conn.demux.feed(data):
            if conn.target is None:
                continue
            io = conn.target if isinstance(conn.target, stdio.Stdio) else conn.target.io
            if stream == STDIN:
                io.write_stdin(payload)
            elif stream == CONTROL:
                message = json.loads(payload)
                if "resize" in message:
                    io.resize(*message["resize"])
                if message.get("close_stdin") and self._stdin_once(conn):
                    io.close_stdin()

    def _stdin_once(self, conn: Conn) -> bool:
        if isinstance(conn.target, ExecSession):
            return True
        return bool(self.config["Config"].get("StdinOnce"))

    def _write(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        del conn.outbuf[:sent]
        if conn.closing and not conn.outbuf:
            self._drop(conn)

    def _drop(self, conn: Conn) -> None:
        self.conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

    def _finish(self, conn: Conn) -> None:
        conn.closing = True
        if not conn.outbuf:
            self._drop(conn)

    def _flush_all(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        for conn in list(self.conns.values()):
            conn.sock.setblocking(True)
            conn.sock.settimeout(max(0.1, end - time.monotonic()))
            with contextlib.suppress(OSError):
                conn.sock.sendall(conn.outbuf)
            conn.outbuf.clear()
            self._drop(conn)

    def _request(self, conn: Conn, line: bytes, rest: bytes) -> None:
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            self._reply(conn, {"error": "bad request"}, close=True)
            return
        if op == "attach":
            if self.finished:
                self._reply(conn, {"ok": True, "exited": True}, close=True)
                return
            conn.kind, conn.streams = "attach", set(request.get("streams", [STDOUT, STDERR]))
            conn.target = self._stdio() if request.get("stdin") else None  # input may come before start
            self._reply(conn, {"ok": True})
        elif op == "start":  # after the daemon has attached the clients that were waiting
            self._reply(conn, self._start(request.get("runtime") or {}), close=True)
        elif op == "resize":
            if self.io:
                self.io.resize(int(request["h"]), int(request["w"]))
            self._reply(conn, {"ok": True}, close=True)
        elif op == "exec":
            self._exec(conn, request)
        else:
            self._reply(conn, {"error": f"unknown op {op!r}"}, close=True)
        if rest and conn.kind in ("attach", "exec"):
            self._frames(conn, rest)

    def _reply(self, conn: Conn, message: dict, close: bool = False) -> None:
        conn.send(json.dumps(message).encode() + b"\n")
        if close:
            conn.kind = "done"
            self._finish(conn)

    # ---- the container ----------------------------------------------------------------------
    # --8<-- [start:start]
    # --8<-- [start:start_part1]
    def _start(self, runtime: dict) -> dict:
        # --8<-- [end:start_part1]
        """Create the container through the engine's stages, as its parent; report pid or error.

        ``runtime`` is the daemon's word on who starts it (:mod:`minidocker.daemon.runtimes`): our
        engine, or the launcher a plug-in registered for its kind, given the spec the stages made.
        """
        # --8<-- [start:start_part2]
        if self.container is not None or self.finished:
            return {"error": "already started"}
        try:
            kind = runtime.get("kind", "engine")
            launch = None if kind == "engine" else runtimes.LAUNCHERS[kind]  # a plug-in's
            self._stdio()
            if launch is None:  # our engine: its stages run in a worker, PID 1 becomes our child
                self.container = self._start_in_worker()
            else:
                self._start_here(engine.stage_argv(self.config), launch, runtime)
            self.io.started()
        except EngineError as e:
            self._record_exit(e.exit_code, str(e))
            return {"error": str(e), "code": e.exit_code}
        except Exception as e:  # a bug or a host problem: still one line, still recorded
            self._record_exit(125, f"starting the container: {e}")
            return {"error": f"starting the container: {e}", "code": 125}
        self.pidfd = os.pidfd_open(self.container.pid)
        write_json(self.dir / "state.json", {
            "Status": "running", "Pid": self.container.pid, "MonitorPid": os.getpid(),
            "MonitorStart": start_time(os.getpid()),
            "StartedAt": rfc3339(), "FinishedAt": "", "ExitCode": 0, "OOMKilled": False, "Error": ""},
            durable=False)  # a running container: after a crash of the host, the daemon settles it
        if self.prober:
            self.prober.container_started()
        return {"pid": self.container.pid}
    # --8<-- [end:start_part2]
    # --8<-- [end:start]

    def _start_here(self, argv: list[str], launch: Any, runtime: dict) -> None:
        """Another runtime's launcher (a plug-in's) starts it, from this process: the monitor keeps all."""
        with self.io.as_standard_fds():
            self.spec = self._container_spec(argv, self.cleanup)
            self.container = launch(runtime, self.spec, self.config)

    def _container_spec(self, argv: list[str], cleanup: contextlib.ExitStack) -> Any:
        """The stages configure the container (with the daemon's own terminal and volume hooks)."""
        cfg = self.config["Config"]
        spec = engine.container_spec(self.id, argv, cleanup)
        if cfg.get("Tty"):
            spec.env.setdefault("TERM", "xterm")
            spec.add_hook("before_exec", stdio.take_terminal, order=ORDER_FIRST)
        if self.config.get("Mounts"):
            spec.add_hook("before_pivot", volume_mounts(self.config["Mounts"]))
            spec.rootfs_propagation = rootfs_propagation(self.config["Mounts"])
        return spec

    # --8<-- [start:start_in_worker]
    def _start_in_worker(self) -> Started:
        """Run the stages in a forked worker that starts PID 1 as *our* child, takes what must happen at
        the exit over as data (:mod:`minidocker.daemon.handover`), and exits with its dirtied pages."""
        ours, theirs = socket.socketpair()
        worker = os.fork()
        if worker == 0:
            ours.close()
            self._worker(theirs)
        theirs.close()
        try:
            reply, blob, fds = _receive(ours)
        except BaseException:
            ours.close()
            os.kill(worker, 9)
            os.waitpid(worker, 0)
            raise
        if reply.get("keeper"):  # a clean-up that is not data: the worker stays, and does it
            print(f"minidocker: the start worker stays: {reply['keeper']}", file=sys.stderr, flush=True)
            self.keeper = (worker, ours)
        else:
            ours.close()
            self.worker = os.pidfd_open(worker), worker  # reaped by the loop: the reply need not wait
        if "error" in reply:
            self._reap_worker()
            _reap_zombies()  # a PID 1 that failed to exec, now ours
            raise EngineError(reply["error"], reply["code"])
        if not reply.get("keeper"):
            self.handed = (blob, fds)
        self.spec = _ExecView(reply["env"], reply["cwd"])
        return Started(reply["pid"])
    # --8<-- [end:start_in_worker]

    def _worker(self, sock: socket.socket) -> NoReturn:
        """In the start worker: configure and start; send pid, env, cwd and the clean-up; exit."""
        try:
            self.listener.close()
            for conn in self.conns.values():
                conn.sock.close()
            stack = handover.RecordingStack()
            try:
                with self.io.as_standard_fds():
                    spec = self._container_spec(engine.stage_argv(self.config), stack)
                    container = engine.start(spec, reap=False)
            except EngineError as e:
                stack.close()
                _send(sock, {"error": str(e), "code": e.exit_code})
                os._exit(0)
            except Exception as e:
                with contextlib.suppress(Exception):
                    stack.close()
                _send(sock, {"error": f"starting the container: {e}", "code": 125})
                os._exit(0)
            reply = {"pid": container.pid, "env": spec.env, "cwd": spec.cwd}
            try:
                blob, fds = handover.pack(stack, spec, self.dir)
            except handover.NotData as e:
                self.io.close()  # the container's stdio is the monitor's alone (EOF, stdin's end)
                _send(sock, {**reply, "keeper": str(e)})
                self._keep(sock, spec, stack)
            _send(sock, reply, blob, fds)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(0)  # handed over: no clean-up here

    def _reap_worker(self) -> None:
        if self.worker:
            pidfd, pid = self.worker
            self.worker = None
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(pidfd)
            os.close(pidfd)
            os.waitpid(pid, 0)

    @staticmethod
    def _keep(sock: socket.socket, spec: Any, stack: contextlib.ExitStack) -> NoReturn:
        """A kept worker: wait for PID 1's wait status, then run the ``on_exit`` hooks and the clean-up."""
        status = sock.recv(64)
        for hook in spec.hooks("on_exit") if status else []:
            with contextlib.suppress(Exception):
                hook(int(status))
        with contextlib.suppress(Exception):
            stack.close()
        with contextlib.suppress(OSError):
            sock.sendall(b"done")
        os._exit(0)

    def _stdio(self) -> stdio.Stdio:
        """The container's stdio, made on first need (an attach with stdin may come before start)."""
        if self.io is None:
            cfg, host = self.config["Config"], self.config["HostConfig"]
            if cfg.get("Tty"):
                rows, columns = (host.get("ConsoleSize") or [24, 80])[:2]
                self.io = stdio.Stdio.terminal(rows or 24, columns or 80)
            else:
                self.io = stdio.Stdio.pipes(bool(cfg.get("OpenStdin")))
        return self.io

    def _output(self, fd: int) -> None:
        if self.io and fd in self.io.outputs:
            stream, data = self.io.read(fd)
            if data is None:
                return
            if not data:
                self.io.close_output(fd)
            else:
                self._output_data(stream, data)
        elif self.io and fd == self.io.stdin:
            self.io.flush_stdin()
        else:
            for session in self.execs.values():
                session.ready(fd)
            if self.prober and self.prober.session:
                self.prober.session.ready(fd)

    def _drain(self) -> None:
        while self.io and self.io.outputs:
            for fd in list(self.io.outputs):
                stream, data = self.io.read(fd)
                if not data:  # ended (or nothing left: PID 1 is gone, nothing else will write)
                    self.io.close_output(fd)
                else:
                    self._output_data(stream, data)

    def _output_data(self, stream: int, data: bytes) -> None:
        self.log.write("stdout" if stream == STDOUT else "stderr", data)
        for conn in self.conns.values():
            if conn.kind == "attach" and stream in conn.streams:
                conn.send(frame(stream, data))

    def _container_exited(self) -> None:
        status = self.container.wait()  # waitpid, then the stages' on_exit hooks
        self._drain()
        oom = False  # chapter 03's stage made the cgroup (under the cgroup parent); _exit removes it
        with contextlib.suppress(EngineError, OSError, ValueError):
            oom = Cgroup.open(self.id).oom_killed()
        self._record_exit(status, "", oom)

    # --8<-- [start:record_exit]
    def _record_exit(self, code: int, error: str, oom: bool = False) -> None:
        """The exit status goes to disk first: whatever happens next, it is known."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        previous = read_json(self.dir / "state.json", {})
        write_json(self.dir / "state.json", {
            **previous, "Status": "exited", "Pid": 0, "MonitorPid": os.getpid(),
            "StartedAt": previous.get("StartedAt", ""), "FinishedAt": rfc3339(), "ExitCode": code,
            "OOMKilled": oom, "Error": error})
        self.finished = True
        for conn in list(self.conns.values()):
            if conn.kind in ("attach", "exec"):
                self._finish(conn)
        for pidfd in list(self.execs):
            self.execs.pop(pidfd).close()
        if self.prober:
            self.prober.close()
    # --8<-- [end:record_exit]

    def _exit(self) -> NoReturn:
        with contextlib.suppress(Exception):
            self._teardown()
        with contextlib.suppress(Exception):
            self.cleanup.close()  # what the stages set up: cgroups, network, mounts
        if self.io:
            self.io.close()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path(self.id))
        os._exit(0)

    # --8<-- [start:teardown]
    def _teardown(self) -> None:
        """What the start worker handed over runs here, as the monitor exits: what it writes to no longer
        costs anything (every module is loaded already)."""
        status = getattr(self.container, "status", None)
        if self.keeper:
            worker, sock = self.keeper
            with contextlib.suppress(OSError):
                sock.sendall(b"%d" % status if status is not None else b"")
                sock.recv(16)  # "done", or its end
            sock.close()
            os.waitpid(worker, 0)
        elif self.handed:  # here: the monitor is about to exit, what it writes to now costs nothing
            self._reap_worker()  # its copies of the ports' sockets are closed then
            blob, fds = self.handed
            handover.run(blob, status if status is not None else 0, fds)
            (self.dir / handover.LEFT).unlink(missing_ok=True)  # done: nothing for the daemon to do
    # --8<-- [end:teardown]

    # ---- exec -------------------------------------------------------------------------------
    def _exec(self, conn: Conn, request: dict) -> None:
        if self.container is None or self.finished:
            self._reply(conn, {"error": "container is not running"}, close=True)
            return
        try:
            session = ExecSession.start(self.container.pid, self.spec, self.config, request,
                                        getattr(self.container, "spawn_exec", None))
        except (EngineError, OSError) as e:
            self._reply(conn, {"error": str(e)}, close=True)
            return
        session.conn = conn
        conn.kind, conn.target = "exec", session
        self.execs[session.pidfd] = session
        self._reply(conn, {"ok": True, "pid": session.pid})

    def _probe(self, argv: list[str]) -> ExecSession:
        """Start one healthcheck probe: an exec of ``argv`` with the container's env, user and dir."""
        return ExecSession.start(self.container.pid, self.spec, self.config, {"Cmd": argv, "Tty": False},
                                 getattr(self.container, "spawn_exec", None))

    def _exec_exited(self, pidfd: int) -> None:
        session = self.execs.pop(pidfd)
        code, problem = session.finish()
        conn = session.conn
        if problem:
            conn.send(frame(STDERR, f"{problem}\n".encode()))
        conn.send(frame(CONTROL, json.dumps({"exit": code}).encode()))
        self._finish(conn)


class Started:
    """A container started by the worker: PID 1 is our child; its ``on_exit`` hooks are handed over."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None  # its raw wait status, once it has exited

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return exit_code(self.status)


class _ExecView:
    """What ``docker exec`` needs of the container's spec: the environment and working directory."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.env, self.cwd = env, cwd


def _send(sock: socket.socket, reply: dict, blob: bytes = b"", fds: list[int] | None = None) -> None:
    """One message: a length and JSON, then ``blob``; descriptors ride on its first byte."""
    head = json.dumps({**reply, "blob": len(blob)}).encode()
    data = len(head).to_bytes(4, "big") + head + blob
    sent = socket.send_fds(sock, [data[:1]], fds) if fds else sock.send(data[:1])
    sock.sendall(data[sent:])


def _receive(sock: socket.socket) -> tuple[dict, bytes, list[int]]:
    first, fds, _, _ = socket.recv_fds(sock, 1, 64)
    for fd in fds:
        os.set_inheritable(fd, False)
    data = bytearray(first)
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = sock.recv(65536)
        if not chunk:
            raise EngineError("the start worker died")
        data += chunk
    size = int.from_bytes(data[:4], "big")
    reply = json.loads(bytes(data[4:4 + size]))
    blob = bytes(data[4 + size:])
    while len(blob) < reply["blob"]:
        chunk = sock.recv(65536)
        if not chunk:
            raise EngineError("the start worker died")
        blob += chunk
    return reply, blob, fds


def _reap_zombies() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


# --8<-- [start:rehearse]
def rehearse(scratch: Path, times: int = 10) -> None:
    """Run, in the fork server, the code every monitor runs while it waits, with no container.

    CPython 3.11 rewrites a function's bytecode as it warms up (PEP 659's specializing interpreter),
    and a page written in a fork becomes that fork's own copy: code first run in every monitor
    would be copied into every monitor. Warmed here, it stays shared.
    """
    (scratch / "config.json").write_text('{"Config": {}, "HostConfig": {}}')
    for _ in range(times):
        path = scratch / "m.sock"
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with umask(0o177):
            listener.bind(str(path))
        listener.listen(4)
        listener.setblocking(False)
        monitor = Monitor("rehearsal", listener, scratch)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        client.sendall(b'{"op": "attach", "streams": [1, 2], "stdin": false}\n{"op": "nothing"}\n')
        for _ in range(4):
            interest = {listener.fileno(): selectors.EVENT_READ}
            for fd, conn in monitor.conns.items():
                interest[fd] = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
            monitor._watch(interest)
            for key, events in monitor.selector.select(timeout=0.01):
                monitor._dispatch(key.fd, events)
        monitor._stdio()
        monitor.io.started()
        monitor.io.close()
        Started(0), _ExecView({}, "/"), log_path("rehearsal"), socket_path("rehearsal")
        ours, theirs = socket.socketpair()
        _send(theirs, {"pid": 1, "env": {}, "cwd": "/"}, b"blob", [theirs.fileno()])
        for fd in _receive(ours)[2]:
            os.close(fd)
        write_json(scratch / "state.json", {"Status": "running", "MonitorStart": start_time(os.getpid()),
                                            "StartedAt": rfc3339()})
        os.close(os.pidfd_open(os.getpid()))
        for conn in list(monitor.conns.values()):
            monitor._drop(conn)
        for sock in (client, ours, theirs, listener):
            sock.close()
        monitor.selector.close()
        monitor.log.close()
# --8<-- [end:rehearse]


def run(container_id: str, ready_fd: int) -> NoReturn:
    """Listen on the container's socket, write ``ready`` to ``ready_fd`` (then closed), and serve."""
    path = socket_path(container_id)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with umask(0o177):  # 0600 from bind(2) on (core.paths.umask)
        listener.bind(str(path))
    listener.listen(64)
    listener.setblocking(False)
    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)  # PID 1, started by a worker, is ours
    monitor = Monitor(container_id, listener)
    os.write(ready_fd, f"ready {os.getpid()}\n".encode())
    os.close(ready_fd)
    null = os.open(os.devnull, os.O_RDWR)
    for n in (0, 1):  # stderr stays: the monitor's log
        os.dup2(null, n)
    os.close(null)
    monitor.serve()


def main(argv: list[str] | None = None) -> NoReturn:
    """``python -m minidocker.daemon.monitor CONTAINER_ID``: listen, say "ready PID" on stdout, serve."""
    argv = sys.argv[1:] if argv is None else argv
    from minidocker.daemon import plugins

    plugins.discover()  # later chapters' network modes (the fork server has them already)
    run(argv[0], os.dup(1))


if __name__ == "__main__":
    main()
