"""Chapter 10: the daemon's side of a container's life: create, start, watch, wait, stop, remove.

The daemon never runs a container itself. To start one it launches its monitor
(``python -m minidocker.daemon.monitor ID``, in a new session so no signal for the daemon reaches it),
waits for the monitor's "ready", connects the clients that attached early, and then says "start".
From then on it only *watches* the monitor through a pidfd (a file descriptor that becomes readable
when a process exits, even one that is not our child): when the monitor exits the container has
exited, and ``state.json`` says how.

When the daemon starts it does the same for every container on disk: a monitor still alive is
watched again; a container whose monitor is gone has its recorded exit status.

Example (in the daemon's event loop)::

    sup = Supervisor(); await sup.restore()
    c = sup.find("web")
    await sup.start(c); code = await sup.wait(c, "not-running")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from minidocker.core import errors
from minidocker.core.atomic import write_json
from minidocker.core.paths import private_dir, run_dir, state_dir
from minidocker.daemon import events, handover, restart
from minidocker.daemon.containers import Container, pid_is_monitor, seconds
from minidocker.daemon.logs import private
from minidocker.daemon.monitor import socket_path

__all__ = ["Supervisor"]


class Supervisor:
    """Every container of this daemon, and the operations on them."""

    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.root = private_dir(state_dir() / "containers")
        self.on_removed: list[Any] = []  # callbacks(container): release its filesystem, ...
        self.forkserver: subprocess.Popen | None = None
        self.hooks: Any = None  # the plug-ins' (daemon/plugins.py), set by the application
        self.app: Any = None
        self.boot: list[Container] = []  # stopped containers whose restart policy says: start now

    # ---- finding ----------------------------------------------------------------------------
    def find(self, ref: str) -> Container:
        """A container by full id, name (with or without ``/``) or unique id prefix; else NoSuchContainer."""
        ref = ref.lstrip("/") if ref.startswith("/") else ref
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == f"/{ref}":
                return c
        found = [c for c in self.containers.values() if c.id.startswith(ref)] if ref else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise errors.InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise errors.NoSuchContainer(ref)

    def names(self) -> set[str]:
        return {c.name.lstrip("/") for c in self.containers.values()}

    def add(self, c: Container) -> None:
        self.containers[c.id] = c

    # ---- after a daemon restart -------------------------------------------------------------
    async def restore(self) -> None:
        """Load every container on disk; watch the monitors still running, settle the others."""
        for directory in sorted(self.root.iterdir()):
            c = Container.load(directory)
            if c is None:
                shutil.rmtree(directory, ignore_errors=True)  # a create that never finished
                continue
            self.add(c)
            monitor = int(c.state.get("MonitorPid") or 0)
            if c.running and pid_is_monitor(monitor, int(c.state.get("MonitorStart") or 0)):
                self._watch(c, monitor, child=False)
            elif c.running:  # the monitor died without recording an exit (SIGKILL, reboot)
                c.state.update(Status="exited", Pid=0, ExitCode=255, Error="the container's monitor died")
                write_json(c.dir / "state.json", c.state)
            if not c.running:
                await self._clean_up_left(c)
            if not c.running and c.config["HostConfig"].get("AutoRemove") and c.state["Status"] == "exited":
                await self.remove(c, force=True, volumes=True)
            elif not c.running and restart.on_boot(c.config["HostConfig"].get("RestartPolicy"), c.restart,
                                                   int(c.state.get("ExitCode") or 0)):
                self.boot.append(c)

    async def start_on_boot(self) -> None:
        """Start what the restart policies bring back with the daemon (after the plug-ins are restored)."""
        for c in self.boot:
            if c.id in self.containers and not c.running:
                try:
                    await self.start(c, by_policy=True)
                except (errors.EngineError, OSError) as e:
                    logging.getLogger("minidockerd").warning("restarting %s: %s", c.id[:12], e)
        self.boot.clear()

    # ---- start and watch --------------------------------------------------------------------
    # --8<-- [start:start]
    async def start(self, c: Container, by_policy: bool = False) -> None:
        """Launch the container's monitor, connect early attachers, then tell it to start.

        A start by hand (not ``by_policy``) gives the restart policy a fresh start: no retries
        used, no back-off, no longer stopped by hand.
        """
        if not by_policy:
            self._cancel_restart(c)
            await self._restart_settled(c)
            fresh = {**c.restart, "Retries": 0, "Delay": 0.0, "ManuallyStopped": False}
            if fresh != c.restart:  # a new container's record is already fresh: no write, no fsync
                c.restart.update(fresh)
                restart.save(c.dir, c.restart)
        async with c.lock:
            if c.running:
                raise errors.NotModified("container already started")
            if c.removing:
                raise errors.Conflict(f"container {c.id} is being removed")
            for hook in getattr(self.hooks, "container_start", None) or []:  # a plug-in may refuse
                await hook(self.app, c)
            if (c.config["HostConfig"].get("Links") or c.config.get("LinkHosts")) and \
                    c.config["HostConfig"].get("NetworkMode") in (None, "", "default", "bridge"):
                await asyncio.get_running_loop().run_in_executor(None, self._link, c)
            runtime = self.runtime(c)  # one the daemon no longer knows (restarted without it): a 400
            pid = await self._spawn_monitor(c)
            c.state.update(Status="starting")
            self._watch(c, pid, child=True)
            for attach in c.pending_attach:
                await attach.connect()
            c.pending_attach.clear()
            reply = await self.ask(c, {"op": "start", "runtime": runtime.start_options()})
            if "error" in reply:
                await self._gone(c)  # the monitor recorded the failure and exits
                kind = errors.InvalidArgument if reply.get("code", 125) in (126, 127) else errors.Failed
                raise kind(reply["error"])  # a command that cannot run is the caller's to fix
            c.reload_state()
            c.restarting = False
        events.container_event(self.app, c, "start")
        self._volume_events(c, "mount")
        await self._call("container_started", c)
    # --8<-- [end:start]

    def _link(self, c: Container) -> None:
        """Legacy links, resolved now: the others' addresses and variables, for the engine's argv."""
        from minidocker.daemon import links

        hosts, env = links.resolve(c.config["HostConfig"].get("Links") or [], self.find,
                                   lambda other: links.bridge_address(other.id))
        c.config.update(LinkHosts=hosts, LinkEnv=env)
        write_json(c.dir / "config.json", c.config, mode=0o600)

    async def _spawn_monitor(self, c: Container) -> int:
        """A new monitor for ``c``: forked by the fork server, or else a fresh ``python -m``."""
        await self._left_cleaned_up(c)  # the last one's, if it died: it names this container's cgroup
        line = b""
        if self.forkserver is not None and self.forkserver.poll() is not None:  # it died: another
            self.forkserver.wait()
            await asyncio.get_running_loop().run_in_executor(None, self.start_forkserver)
        if self.forkserver is not None and self.forkserver.poll() is None:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_unix_connection(str(self.forkserver_socket))
                writer.write(c.id.encode() + b"\n")
                line = await reader.readline()
                writer.close()
        if not line.startswith(b"ready "):
            monitor = subprocess.Popen(
                [sys.executable, "-m", "minidocker.daemon.monitor", c.id], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=open(c.dir / "monitor.log", "ab", opener=private),  # noqa: SIM115
                start_new_session=True)
            line = await asyncio.get_running_loop().run_in_executor(None, monitor.stdout.readline)
            monitor.stdout.close()
        if not line.startswith(b"ready "):
            raise errors.Failed(f"the container's monitor failed to start: see {c.dir}/monitor.log")
        return int(line.split()[1])

    def start_forkserver(self) -> None:
        """Start the fork server that makes monitors fast (see :mod:`minidocker.daemon.forkserver`)."""
        self.forkserver_socket = run_dir() / "forkserver.sock"
        self.forkserver = subprocess.Popen(
            [sys.executable, "-m", "minidocker.daemon.forkserver", str(self.forkserver_socket)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
        if self.forkserver.stdout.readline() != b"ready\n":
            self.forkserver.kill()
            self.forkserver.wait()
            self.forkserver = None
        else:
            self.forkserver.stdout.close()

    def stop_forkserver(self) -> None:
        if self.forkserver is not None:
            self.forkserver.terminate()
            self.forkserver.wait()
            self.forkserver = None

    def _watch(self, c: Container, pid: int, child: bool) -> None:
        """Call :meth:`_exited` when the monitor ``pid`` exits (a pidfd works for any process)."""
        c.monitor_pid = pid
        c.monitor_gone = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            loop.call_soon(self._exited, c, -1, child)
            return
        loop.add_reader(pidfd, self._exited, c, pidfd, child)

    def _exited(self, c: Container, pidfd: int, child: bool) -> None:
        if pidfd >= 0:
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)
        with contextlib.suppress(ChildProcessError):  # ours if we are its subreaper
            os.waitpid(c.monitor_pid, os.WNOHANG)
        c.reload_state()
        if c.state.get("Status") in ("running", "starting"):
            c.state.update(Status="exited", Pid=0, ExitCode=255, Error="the container's monitor died")
            write_json(c.dir / "state.json", c.state)
        if (c.dir / handover.LEFT).exists():  # it died before its clean-up: do it before anything else
            clean_up = self._clean_up_left(c, then=self._settled)
            c.left_clean_up = asyncio.get_running_loop().create_task(clean_up)
        else:
            self._settled(c)

    # --8<-- [start:clean_up_left]
    async def _clean_up_left(self, c: Container, then: Callable[[Container], None] | None = None) -> None:
        """What a dead monitor's container still held (its cgroup, address, ports, mounts), released
        from the clean-up its start worker handed over (:mod:`minidocker.daemon.handover`)."""
        try:
            if (c.dir / handover.LEFT).exists():
                logging.getLogger("minidockerd").warning("cleaning up after %s's monitor", c.id[:12])
                with open(c.dir / "monitor.log", "ab", opener=private) as log:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "minidocker.daemon.handover", str(c.dir),
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                await process.wait()
        finally:  # even if it could not run: the container is not left "dying" for ever
            if then is not None:
                then(c)
    # --8<-- [end:clean_up_left]

    async def _left_cleaned_up(self, c: Container) -> None:
        """Wait for the clean-up a dead monitor left, if it is running: a start or a removal meanwhile
        would race it (it removes the cgroup, lease and mounts named after this container)."""
        task = c.left_clean_up
        if task is not None and not task.done() and task is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    def _settled(self, c: Container) -> None:
        """The monitor is gone and so is all its container held: say so, and apply the restart policy."""
        c.monitor_gone.set()
        c.exit_count += 1
        events.container_event(self.app, c, "die", exitCode=int(c.state.get("ExitCode") or 0))
        self._volume_events(c, "unmount")
        asyncio.get_running_loop().create_task(self._after_exit(c))

    def _volume_events(self, c: Container, action: str) -> None:
        """Docker's ``mount``/``unmount`` event of each named volume of ``c`` as it starts and stops."""
        for m in c.config.get("Mounts") or []:
            if m.get("Type") == "volume":
                more = {} if action == "unmount" else {"destination": m["Destination"], "propagation": m.get(
                    "Propagation", ""), "read/write": str(m.get("RW", True)).lower()}
                events.emit(self.app, "volume", action, m["Name"], {
                    "container": c.id, "driver": m.get("Driver", "local"), **more})

    async def _call(self, point: str, c: Container) -> None:
        """Run the plug-ins' hooks of ``point`` for ``c``; a failing one is logged, not raised."""
        for hook in getattr(self.hooks, point, None) or []:
            try:
                await hook(self.app, c)
            except Exception:
                logging.getLogger("minidockerd").exception("%s hook for %s", point, c.id[:12])

    async def _after_exit(self, c: Container) -> None:
        await self._call("container_exited", c)
        async with c.exited:
            c.exited.notify_all()
        if c.config["HostConfig"].get("AutoRemove") and c.id in self.containers:
            await self.remove(c, force=True, volumes=True)
        elif c.id in self.containers and not c.removing:
            self._schedule_restart(c)

    # ---- restart policies -------------------------------------------------------------------
    # --8<-- [start:schedule_restart]
    def _schedule_restart(self, c: Container) -> None:
        """After an exit: start ``c`` again after the back-off, if its restart policy says so."""
        ran = seconds(c.state.get("FinishedAt", "")) - seconds(c.state.get("StartedAt", ""))
        delay = restart.decide(c.config["HostConfig"].get("RestartPolicy"), c.restart,
                               int(c.state.get("ExitCode") or 0), max(ran, 0.0))
        if delay is None:
            return
        restart.save(c.dir, c.restart)
        c.restarting = c.restart_waiting = True
        c.restart_task = asyncio.get_running_loop().create_task(self._restart_after(c, delay))

    async def _restart_after(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)  # only this wait may be cancelled (by a stop, a start, a remove)
        c.restart_waiting = False
        try:
            if c.id not in self.containers or c.removing or c.running:
                return
            c.restart["RestartCount"] = c.restart.get("RestartCount", 0) + 1
            restart.save(c.dir, c.restart)
            await self.start(c, by_policy=True)  # a failed start exits too: the policy decides again
        except (errors.EngineError, OSError) as e:
            logging.getLogger("minidockerd").warning("restarting %s: %s", c.id[:12], e)
        finally:
            if c.restart_task is asyncio.current_task():
                c.restart_task, c.restarting = None, False
    # --8<-- [end:schedule_restart]

    def _cancel_restart(self, c: Container) -> bool:
        """Cancel a restart waiting for its back-off (True if there was one); one already starting
        the container goes on (see :meth:`_restart_settled`)."""
        task = c.restart_task
        if task is None or task.done() or task is asyncio.current_task() or not c.restart_waiting:
            return False
        task.cancel()
        c.restart_task, c.restarting, c.restart_waiting = None, False, False
        return True

    async def _restart_settled(self, c: Container) -> None:
        """Wait for a restart that is starting the container: a half-made start is never cut off."""
        task = c.restart_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    def stopped_by_hand(self, c: Container) -> bool:
        """``docker stop`` or ``kill``: no restart until a start by hand (True if a restart was pending)."""
        c.restart["ManuallyStopped"] = True
        restart.save(c.dir, c.restart)
        return self._cancel_restart(c)

    async def _gone(self, c: Container) -> None:
        await c.monitor_gone.wait()

    async def ask(self, c: Container, request: dict) -> dict:
        """One request to the container's monitor, one JSON reply."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path(c.id)))
        except OSError as e:
            raise errors.NotRunning(c.id) from e
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            line = await reader.readline()
            return json.loads(line) if line else {"error": "the monitor closed the connection"}
        except (OSError, ValueError) as e:
            return {"error": f"the container's monitor failed: {e}"}
        finally:
            writer.close()

    # ---- wait, stop, kill -------------------------------------------------------------------
    # --8<-- [start:wait]
    async def wait(self, c: Container, condition: str = "not-running", seen: int | None = None) -> int:
        """Block until ``condition`` holds: ``not-running``, ``next-exit`` or ``removed``.

        ``seen`` is the exit count when the request arrived: an exit after that is the "next" one,
        even if it happens before we get here.
        """
        seen = c.exit_count if seen is None else seen
        if condition == "removed":
            await c.removed.wait()
            return int(c.state.get("ExitCode") or 0)
        async with c.exited:
            if condition == "not-running" and not c.running and c.state.get("Status") != "starting":
                return int(c.state.get("ExitCode") or 0)
            await c.exited.wait_for(lambda: c.exit_count > seen)
        return int(c.state.get("ExitCode") or 0)
    # --8<-- [end:wait]

    def signal(self, c: Container, signum: int) -> None:
        """Send ``signum`` to the container's PID 1 (NotRunning if it is not running)."""
        if not c.running:
            raise errors.NotRunning(c.id)
        events.container_event(self.app, c, "kill", signal=signum)
        try:
            self.runtime(c).signal(c.id, int(c.state["Pid"]), signum)
        except (ProcessLookupError, errors.InvalidArgument):  # gone, or a runtime no longer configured
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(c.state["Pid"]), signum)

    def runtime(self, c: Container) -> Any:
        """The runtime ``c`` runs on (``HostConfig.Runtime``; ours for a container made before runtimes)."""
        runtimes = self.app["runtimes"] if self.app is not None and "runtimes" in self.app else None
        if runtimes is None:
            from minidocker.daemon.runtimes import Runtimes

            runtimes = Runtimes()
        return runtimes.find(c.config["HostConfig"].get("Runtime"))

    # --8<-- [start:stop]
    async def stop(self, c: Container, timeout: float | None = None, signum: int | None = None) -> bool:
        """Docker's stop: the stop signal, ``timeout`` seconds of grace, then SIGKILL (False: not running)."""
        pending = self.stopped_by_hand(c)  # a restart waiting for its back-off is cancelled
        await self._restart_settled(c)  # one starting the container: stopped once started
        if not c.running:
            return pending
        cfg = c.config["Config"]
        signum = signum or parse_signal(cfg.get("StopSignal") or "SIGTERM")
        if timeout is None:  # the container's own (0 included: SIGKILL at once), else Docker's 10 s
            timeout = cfg["StopTimeout"] if cfg.get("StopTimeout") is not None else 10
        seen = c.exit_count
        with contextlib.suppress(errors.NotRunning):
            self.signal(c, signum)
        try:
            async with asyncio.timeout(max(timeout, 0)):
                async with c.exited:
                    await c.exited.wait_for(lambda: c.exit_count > seen)
        except TimeoutError:
            with contextlib.suppress(errors.NotRunning):
                self.signal(c, signal.SIGKILL)
            async with c.exited:
                await c.exited.wait_for(lambda: c.exit_count > seen)
        events.container_event(self.app, c, "stop")
        return True
    # --8<-- [end:stop]

    # ---- remove -----------------------------------------------------------------------------
    async def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        """Delete the container and its files; a running one only with ``force`` (Conflict otherwise).

        With ``volumes`` (``docker rm -v``, and ``run --rm``), its anonymous volumes too."""
        self._cancel_restart(c)
        await self._restart_settled(c)
        await self._left_cleaned_up(c)  # it reads its file from the directory about to go
        if c.running or c.state.get("Status") == "starting":
            if not force:
                raise errors.Conflict(f"You cannot remove a running container {c.id}. Stop the "
                                      "container before attempting removal or force remove")
            await self.stop(c, timeout=0, signum=signal.SIGKILL)
        self._cancel_restart(c)
        if c.removing or c.id not in self.containers:
            await c.removed.wait()
            return
        c.removing = True
        await self._call("container_removed", c)
        for callback in self.on_removed:
            await callback(c)
        for attach in c.pending_attach:
            attach.cancel()
        await asyncio.get_running_loop().run_in_executor(None, _delete_tree, c.dir)
        self.containers.pop(c.id, None)
        c.removed.set()
        events.container_event(self.app, c, "destroy")
        if volumes:
            from minidocker.daemon.volumes import remove_anonymous

            used = {m.get("Name") for o in self.containers.values() for m in o.config.get("Mounts") or []}
            for name in await asyncio.get_running_loop().run_in_executor(
                    None, remove_anonymous, c.config.get("Mounts") or [], used):
                events.emit(self.app, "volume", "destroy", name, {"driver": "local"})


def _delete_tree(path: Any) -> None:
    shutil.rmtree(path, ignore_errors=True)


def parse_signal(value: str | int) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"15"`` or 15 -> 15; ValueError for anything else."""
    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
    else:
        number = getattr(signal, text if text.startswith("SIG") else f"SIG{text}", None)
    if not isinstance(number, int) or not 0 < int(number) < 65:
        raise ValueError(f"invalid signal: {value}")
    return int(number)
