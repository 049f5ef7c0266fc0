"""Chapter 10: the streaming half of the API: attach and exec, over hijacked connections.

The daemon is a relay here. The client's socket (hijacked, :mod:`minidocker.daemon.hijack`) on one side,
a connection to the container's monitor on the other; frames go one way, keystrokes the other.
Three rules from real clients shape it:

* ``docker run`` attaches *before* it starts the container, so an attach to a created container
  waits and is connected to the monitor before the monitor starts the process: no output is lost;
* the client half-closes when it has no more input: we tell the monitor "stdin closed" and keep
  streaming output until the process ends, then close (EOF is how the client learns it ended);
* an exec's exit code is recorded *before* its stream closes: the client asks for it right after.

Example (what ``docker exec c hostname`` sends)::

    POST /v1.50/containers/c/exec  {"Cmd": ["hostname"], "AttachStdout": true, ...}  -> 201 {"Id": E}
    POST /v1.50/exec/E/start       (Upgrade: tcp)                      -> 101, frames, EOF
    GET  /v1.50/exec/E/json                                            -> {"ExitCode": 0, ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.detachkeys import DEFAULT, EscapeWatcher, parse
from minidocker.core.streams import CONTROL, STDERR, STDIN, STDOUT, Demux, frame
from minidocker.daemon import events
from minidocker.daemon.containers import Container
from minidocker.daemon.hijack import MULTIPLEXED, RAW, RawStream, finished, hijack
from minidocker.daemon.logs import render, tail_entries
from minidocker.daemon.monitor import socket_path
from minidocker.daemon.routes.containers import container, flag, json_body, sup

__all__ = ["Relay", "routes"]

routes = web.RouteTableDef()


class Relay:
    """One client connected through the daemon to a monitor (an attach, or an exec)."""

    def __init__(self, c: Container, raw: RawStream, request: dict, with_stdin: bool, tty: bool,
                 on_control: Callable[[dict], None] | None = None, detach_keys: bytes = b"") -> None:
        self.c, self.raw, self.request, self.with_stdin, self.tty = c, raw, request, with_stdin, tty
        self.on_control = on_control or (lambda message: None)
        self.exec = on_control is not None  # an exec's stream carries its exit code: read it to the end
        # The detach keys are watched on a terminal only, as dockerd does: piped stdin is data, any bytes
        self.escape = EscapeWatcher(detach_keys) if tty and with_stdin else None
        self.detached = False
        self.connected = asyncio.Event()
        self.cancelled = False
        self.reply: dict = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Open the connection to the monitor and make the request; the relay can then run."""
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(str(socket_path(self.c.id)))
            self.writer.write(json.dumps(self.request).encode() + b"\n")
            line = await self.reader.readline()
            self.reply = json.loads(line) if line else {"error": "the container has exited"}
        except OSError:
            self.reply = {"error": "the container is not running"}
        self.connected.set()

    def cancel(self) -> None:
        self.cancelled = True
        self.connected.set()

    # --8<-- [start:relay]
    # --8<-- [start:relay_part1]
    async def run(self) -> None:
        """Copy frames monitor -> client and input client -> monitor, until the monitor hangs up."""
        await self.connected.wait()
        if self.cancelled or "error" in self.reply or self.reader is None:
            return

        async def downstream() -> None:
            demux = Demux()
            while chunk := await self.reader.read(65536):
                for stream, payload in demux.feed(chunk):
                    if stream == CONTROL:
                        self.on_control(json.loads(payload))
                    elif self.detached:
                        continue  # a detached exec runs on: its output goes nowhere, its exit code is kept
                    elif not await self.raw.write(payload if self.tty else frame(stream, payload)):
                        return

        async def upstream() -> None:
            while data := await self.raw.read():
                if self.with_stdin:
                    data, self.detached = self.escape.feed(data) if self.escape else (data, False)
                    if data:
                        self.writer.write(frame(STDIN, data))
                        await self.writer.drain()
                    # --8<-- [end:relay_part1]
                    if self.detached:  # the client leaves; the process stays, its stdin open
                        self.raw.close()
                        return
            if self.with_stdin and not self.raw.lost.is_set():  # a half-close: stdin ended
                self.writer.write(frame(CONTROL, b'{"close_stdin": true}'))
                await self.writer.drain()

        # --8<-- [start:relay_part2]
        down = asyncio.ensure_future(downstream())
        up = asyncio.ensure_future(upstream())
        lost = asyncio.ensure_future(self.raw.lost.wait())
        try:
            await asyncio.wait([down, lost], return_when=asyncio.FIRST_COMPLETED)
            if self.detached and self.exec:
                await down
        finally:
            for task in (up, lost, down):
                task.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()
    # --8<-- [end:relay_part2]
    # --8<-- [end:relay]

    def send_control(self, message: dict) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(frame(CONTROL, json.dumps(message).encode()))


def detach_keys(request: web.Request, given: str = "") -> bytes:
    """The detach sequence: ``detachKeys`` of the query, else ``given`` (an exec's ``DetachKeys``), else
    the daemon's ``detach-keys`` setting, else ctrl-p,ctrl-q. Malformed: InvalidArgument, before any stream.

    Example: ``?detachKeys=ctrl-x,x`` -> ``b"\\x18x"``.
    """
    keys = request.query.get("detachKeys") or given or request.app["config"].get("detach-keys") or DEFAULT
    try:
        return parse(keys)
    except ValueError as e:
        raise errors.InvalidArgument(f"Invalid detach keys ({keys}) provided: {e}") from None


# --8<-- [start:attach]
@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    """Hijack the connection and relay the container's streams (waiting for the start if need be).

    ``logs=1`` replays the log first (docker-py's ``attach(logs=True)``); ``stream=0`` stops there.
    """
    c = container(request)
    streams = [s for s, name in ((STDOUT, "stdout"), (STDERR, "stderr")) if flag(request, name)]
    with_stdin, keys = flag(request, "stdin"), detach_keys(request)
    raw = await hijack(request, RAW if c.tty else MULTIPLEXED)
    try:
        relay = Relay(c, raw, {"op": "attach", "streams": streams, "stdin": with_stdin},
                      with_stdin, c.tty, detach_keys=keys)
        streaming = flag(request, "stream", True)
        if c.running and streaming:
            await relay.connect()  # before the replay: what is written meanwhile may come twice, never not
        elif c.state.get("Status") in ("created", "exited", "starting") and streaming:
            c.pending_attach.append(relay)  # start() connects it just before the process starts
        else:
            relay.cancel()
        if flag(request, "logs"):
            entries, _ = tail_entries(c.dir / "json.log", None)
            wanted = {"stdout": STDOUT in streams, "stderr": STDERR in streams}
            await raw.write(render(entries, wanted, c.tty))
        await relay.run()
    finally:
        if relay in c.pending_attach:
            c.pending_attach.remove(relay)
    return finished(request, raw)
# --8<-- [end:attach]


# ---- exec -------------------------------------------------------------------------------------
@routes.post("/containers/{id}/exec")
async def exec_create(request: web.Request) -> web.Response:
    c = container(request)
    body = await json_body(request, {})
    if not isinstance(body, dict) or not isinstance(body.get("Cmd"), list) or not body["Cmd"]:
        raise errors.InvalidArgument("No exec command specified")
    if not c.running:
        raise errors.NotRunning(c.id)
    if c.paused:
        raise errors.Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if body.get("DetachKeys"):
        detach_keys(request, str(body["DetachKeys"]))  # refused now, not when it starts
    exec_id = os.urandom(32).hex()
    request.app["execs"][exec_id] = {
        "ID": exec_id, "ContainerID": c.id, "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
        "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False,
        "DetachKeys": body.get("DetachKeys") or "",
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": str(body["Cmd"][0]),
                          "arguments": [str(a) for a in body["Cmd"][1:]], "privileged": False,
                          "user": body.get("User") or ""},
        "_request": {"op": "exec", "Cmd": [str(a) for a in body["Cmd"]], "Tty": bool(body.get("Tty")),
                     "Env": body.get("Env") or [], "WorkingDir": body.get("WorkingDir") or "",
                     "User": body.get("User") or "", "AttachStdin": bool(body.get("AttachStdin")),
                     "ConsoleSize": body.get("ConsoleSize")}}
    c.exec_ids.append(exec_id)
    events.container_event(request.app, c, "exec_create: " + " ".join(str(a) for a in body["Cmd"]),
                           execID=exec_id)
    return web.json_response({"Id": exec_id}, status=201)


def _exec(request: web.Request) -> dict[str, Any]:
    found = request.app["execs"].get(request.match_info["id"])
    if found is None:
        raise errors.NoSuchExec(request.match_info["id"])
    return found


# --8<-- [start:exec_start]
# --8<-- [start:exec_start_part1]
@routes.post("/exec/{id}/start")
async def exec_start(request: web.Request) -> web.StreamResponse:
    """Run the exec in the container's monitor; relay its streams; record its exit code first."""
    info = _exec(request)
    body = await json_body(request, {}) or {}
    if info["Running"] or info["ExitCode"] is not None:
        raise errors.Conflict(f"exec {info['ID']} has already run")
    c = sup(request).find(info["ContainerID"])
    if not c.running:
        # --8<-- [end:exec_start_part1]
        raise errors.NotRunning(c.id)
    tty = info["_request"]["Tty"]
    # --8<-- [start:exec_start_part2]
    if isinstance(body, dict) and body.get("ConsoleSize"):
        info["_request"]["ConsoleSize"] = body["ConsoleSize"]

    def on_control(message: dict) -> None:
        if "exit" in message:
            info.update(ExitCode=message["exit"], Running=False)

    detached = isinstance(body, dict) and body.get("Detach")
    raw = None if detached else await hijack(request, RAW if tty else MULTIPLEXED)
    relay = Relay(c, raw or _Sink(), info["_request"], info["OpenStdin"], tty, on_control,
                  # --8<-- [end:exec_start_part2]
                  detach_keys(request, info["DetachKeys"]))
    info["_relay"] = relay
    # --8<-- [start:exec_start_part3]
    events.container_event(request.app, c, "exec_start: " + " ".join(info["_request"]["Cmd"]),
                           execID=info["ID"])
    await relay.connect()
    if "error" in relay.reply:
        info.update(ExitCode=126, Running=False)
        if raw is None:
            raise errors.Conflict(relay.reply["error"])
        await raw.write(relay.reply["error"].encode() + b"\n" if tty else frame(STDERR, relay.reply[
            "error"].encode() + b"\n"))
        return finished(request, raw)
    info.update(Running=True, Pid=relay.reply.get("pid", 0))
    if raw is None:
        asyncio.get_running_loop().create_task(relay.run())
        return web.Response(status=200)
    await relay.run()
    if info["Running"]:  # the container went away under it
        info.update(Running=False, ExitCode=info["ExitCode"] if info["ExitCode"] is not None else 137)
    return finished(request, raw)
# --8<-- [end:exec_start_part3]
# --8<-- [end:exec_start]


class _Sink:
    """Where a detached exec's output goes: nowhere."""

    lost = asyncio.Event()

    async def write(self, data: bytes) -> bool:
        return True

    async def read(self) -> bytes:
        await asyncio.Event().wait()
        return b""


@routes.post("/exec/{id}/resize")
async def exec_resize(request: web.Request) -> web.Response:
    info = _exec(request)
    relay = info.get("_relay")
    h, w = int(request.query.get("h") or 0), int(request.query.get("w") or 0)
    if relay is not None:
        relay.send_control({"resize": [h, w]})
    return web.Response(status=200)


@routes.get("/exec/{id}/json")
async def exec_inspect(request: web.Request) -> web.Response:
    info = _exec(request)
    return web.json_response({k: v for k, v in info.items() if not k.startswith("_")})
