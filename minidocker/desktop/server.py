"""The dashboard's web server (aiohttp): the page, its API, its live streams, its terminal.

Every route is a thin shell around Engine API calls made with chapter 11's client (a
:class:`~.apilog.LoggedClient`, run in a worker thread so the loop never blocks):

==========================================  ===============================================
``GET /``                                   the page (``?token=`` exchanged for the cookie)
``GET /api/overview``                       containers, images, volumes, networks (:mod:`.views`)
``GET /api/events``                         server-sent events: daemon events, calls, stats (:mod:`.hub`)
``GET /api/calls``                          the API-call log (:mod:`.apilog`)
``POST /api/containers/{id}/{action}``      start, stop, restart
``DELETE /api/containers/{id}``             remove (forced: a running one too, as the page asks first)
``GET /api/containers/{id}/logs``           server-sent events, one per line (``follow``, ``timestamps``)
``GET /api/containers/{id}/terminal``       WebSocket: a shell (:mod:`.terminal`)
``POST /api/images/pull``                   the pull's progress, JSON lines as the daemon sends them
``DELETE /api/images/{id}``                 remove an image
``POST /api/prune/{kind}``                  containers, images, volumes or networks
``POST /api/compose``                       a Compose project up from the posted file (chapter 13)
==========================================  ===============================================

Errors: the daemon's (:class:`~minidocker.client.client.APIError`) go to the page with their status
and message; our own bad input is a :class:`~minidocker.core.errors.InvalidArgument` (400), mapped by
``http_status`` like every other part does; anything else is a bug, logged, and a 500.

Example::

    >>> app = make_app(LoggedClient(None, None, CallLog()), Guard("127.0.0.1", 7015))
    >>> web.run_app(app, host="127.0.0.1", port=7015)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from minidocker.client.client import APIError, DaemonUnreachable
from minidocker.core.errors import InvalidArgument, http_status
from minidocker.core.streams import STDERR, Demux
from minidocker.desktop.apilog import VIA, LoggedClient
from minidocker.desktop.guard import Guard
from minidocker.desktop.hub import Hub
from minidocker.desktop.pump import END, Pump, json_lines
from minidocker.desktop.terminal import terminal
from minidocker.desktop.views import Views

__all__ = ["STATIC", "make_app"]

log = logging.getLogger("minidocker.desktop")
STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1 << 20  # a posted compose file or request: 1 MiB at most
MAX_LINE = 1 << 16  # a log line longer than this is cut into pieces
# The page runs only our own scripts; xterm.js sets styles inline; nothing may frame it.
CSP = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                  "img-src 'self' data:; frame-ancestors 'none'",
       "X-Content-Type-Options": "nosniff"}
ACTIONS = ("start", "stop", "restart")
PRUNABLE = ("containers", "images", "volumes", "networks")
KEEPALIVE = 15  # seconds between comments on an idle event stream (a closed page is noticed)

CLIENT = web.AppKey("client", LoggedClient)
GUARD = web.AppKey("guard", Guard)
HUB = web.AppKey("hub", Hub)
VIEWS = web.AppKey("views", Views)
routes = web.RouteTableDef()


@web.middleware
async def errors(request: web.Request, handler):
    """The daemon's errors with their status; ours by kind (``http_status``); the rest a logged 500."""
    VIA.set(f"{request.method} {request.path}")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except APIError as e:
        return web.json_response({"message": str(e)}, status=e.status)
    except DaemonUnreachable as e:
        return web.json_response({"message": str(e)}, status=502)
    except InvalidArgument as e:
        return web.json_response({"message": str(e)}, status=http_status(e))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return web.json_response({"message": "internal error (see the server's log)"}, status=500)


def _call(request: web.Request, method: str, path: str, query: dict | None = None, body: Any = None):
    """A JSON call to the daemon, in a worker thread (the loop goes on serving)."""
    return asyncio.to_thread(request.app[CLIENT].json, method, path, query, body)


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, at most :data:`MAX_BODY` bytes, or a 400."""
    if (request.content_length or 0) > MAX_BODY:
        raise InvalidArgument(f"the request is larger than {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise InvalidArgument(f"the request is larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidArgument("the request is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the request is not a JSON object")
    return body


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store", **CSP})


@routes.get("/api/overview")
async def overview(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(request.app[VIEWS].overview))


@routes.get("/api/calls")
async def calls(request: web.Request) -> web.Response:
    return web.json_response([c.as_json() for c in request.app[CLIENT].log.calls])


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[HUB].last_stats)


async def _sse(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await answer.prepare(request)
    return answer


async def _send(answer: web.StreamResponse, kind: str, data: Any) -> None:
    await answer.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())


# --8<-- [start:events]
@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The hub's messages as server-sent events, until the page goes away (or the server stops)."""
    hub = request.app[HUB]
    queue = hub.subscribe()
    try:
        answer = await _sse(request)
        client = request.app[CLIENT]
        await _send(answer, "hello", {"host": client.host, "version": client.version})
        while True:
            try:
                kind, data = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                await answer.write(b": still here\n\n")
                continue
            if kind in ("bye", "dropped"):
                break
            await _send(answer, kind, data)
    finally:
        hub.unsubscribe(queue)
    return answer
# --8<-- [end:events]


def _log_lines(tty: bool):
    """The lines of a logs answer: raw bytes with a TTY, else multiplexed frames (stdout, stderr)."""
    def items(response):
        demux, partial = Demux(), {1: b"", 2: b""}
        while chunk := response.read1(1 << 16):
            for stream, payload in [(1, chunk)] if tty else demux.feed(chunk):
                *lines, partial[stream] = (partial[stream] + payload).split(b"\n")
                if len(partial[stream]) > MAX_LINE:
                    lines.append(partial[stream])
                    partial[stream] = b""
                for line in lines:
                    yield {"stream": "stderr" if stream == STDERR else "stdout",
                           "line": line.decode(errors="replace").rstrip("\r")}
        for stream, rest in partial.items():
            if rest:
                yield {"stream": "stderr" if stream == STDERR else "stdout",
                       "line": rest.decode(errors="replace")}
    return items


@routes.get("/api/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    """The container's log as server-sent events, one per line; followed while the page reads."""
    client = request.app[CLIENT]
    info = await _call(request, "GET", f"/containers/{request.match_info['id']}/json")
    query = {"stdout": True, "stderr": True, "follow": request.query.get("follow") == "1",
             "timestamps": request.query.get("timestamps") == "1", "tail": request.query.get("tail", "1000")}
    queue: asyncio.Queue = asyncio.Queue()
    path = f"/containers/{info['Id']}/logs"
    pump = Pump(asyncio.get_running_loop(), lambda: client.request("GET", path, query),
                _log_lines(info["Config"].get("Tty", False)), queue.put_nowait).start()
    answer = await _sse(request)
    try:
        while (item := await queue.get()) is not END:
            if isinstance(item, Exception):
                await _send(answer, "failed", {"message": str(item)})
            else:
                await _send(answer, "line", item)
        await _send(answer, "end", {})
    finally:
        pump.close()
    return answer


@routes.post("/api/containers/{id}/{action}")
async def act(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown action {action[:40]!r}: use one of {', '.join(ACTIONS)}")
    await _call(request, "POST", f"/containers/{request.match_info['id']}/{action}")
    return web.json_response({"done": action})


@routes.delete("/api/containers/{id}")
async def remove_container(request: web.Request) -> web.Response:
    await _call(request, "DELETE", f"/containers/{request.match_info['id']}", {"force": True})
    return web.json_response({"done": "removed"})


@routes.get("/api/containers/{id}/terminal")
async def shell(request: web.Request) -> web.WebSocketResponse:
    return await terminal(request.app[CLIENT], request, request.match_info["id"])


def _reference(text: Any) -> dict[str, str]:
    """``busybox`` -> ``{"fromImage": "busybox", "tag": "latest"}``, as ``docker pull`` asks."""
    if not isinstance(text, str) or not text or len(text) > 512 or any(c.isspace() for c in text):
        raise InvalidArgument("give an image reference, like busybox:latest")
    if "@" in text:
        return {"fromImage": text}
    name, colon, tag = text.rpartition(":")
    if colon and "/" not in tag:
        return {"fromImage": name, "tag": tag}
    return {"fromImage": text, "tag": "latest"}


# --8<-- [start:pull]
@routes.post("/api/images/pull")
async def pull(request: web.Request) -> web.StreamResponse:
    """The daemon's progress JSON, passed through line by line: the page draws a bar per layer."""
    query = _reference((await _body(request)).get("image"))
    client, queue = request.app[CLIENT], asyncio.Queue()
    pump = Pump(asyncio.get_running_loop(), lambda: client.request("POST", "/images/create", query),
                json_lines, queue.put_nowait).start()
    answer = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
    await answer.prepare(request)
    try:
        while (item := await queue.get()) is not END:
            message = {"error": str(item)} if isinstance(item, Exception) else item
            await answer.write(json.dumps(message).encode() + b"\n")
    finally:
        pump.close()
    return answer
# --8<-- [end:pull]


@routes.delete("/api/images/{id}")
async def remove_image(request: web.Request) -> web.Response:
    return web.json_response(await _call(request, "DELETE", f"/images/{request.match_info['id']}"))


@routes.post("/api/prune/{kind}")
async def prune(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in PRUNABLE:
        raise InvalidArgument(f"cannot prune {kind[:40]!r}: use one of {', '.join(PRUNABLE)}")
    query = {"filters": json.dumps({"dangling": ["false"]})} if kind == "images" else None
    return web.json_response(await _call(request, "POST", f"/{kind}/prune", query))


class _Lines:
    """A file-like ``out`` for Compose: each line it prints goes to the page."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self.loop, self.queue = loop, queue

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.loop.call_soon_threadsafe(self.queue.put_nowait, {"line": line})
        return len(text)

    def flush(self) -> None:
        pass


def _compose_up(client: LoggedClient, name: str, text: str, out: _Lines) -> list[str]:
    """Chapter 13's ``up -d`` on a posted file: loaded from a private directory, which goes at once."""
    from minidocker.compose import apply
    from minidocker.compose.loader import load
    from minidocker.compose.model import Project

    with tempfile.TemporaryDirectory(prefix="minidocker-desktop-") as directory:  # mode 0700
        path = Path(directory) / "compose.yaml"
        path.write_text(text)
        document, facts = load([str(path)], directory, environ={})  # not the server's environment
        project = Project.from_document(document, facts, name)
    return apply.up(client, project, out=out)


@routes.post("/api/compose")
async def compose(request: web.Request) -> web.StreamResponse:
    """``compose up -d`` of the posted ``{"name", "yaml"}``: Compose's lines, then ``done`` or ``error``."""
    body = await _body(request)
    name, text = body.get("name") or "desktop", body.get("yaml")
    if not isinstance(text, str) or not isinstance(name, str) or not text.strip():
        raise InvalidArgument("post {\"name\": PROJECT, \"yaml\": \"services: ...\"}")
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()
    work = asyncio.ensure_future(asyncio.to_thread(_compose_up, request.app[CLIENT], name, text,
                                                   _Lines(loop, queue)))
    answer = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
    await answer.prepare(request)
    while not (work.done() and queue.empty()):
        getting = asyncio.ensure_future(queue.get())
        await asyncio.wait([getting, work], return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            await answer.write(json.dumps(getting.result()).encode() + b"\n")
        else:
            getting.cancel()
    try:
        created = work.result()
        final = {"done": True, "created": len(created)}
    except Exception as e:  # Compose's errors are for the user: one line
        final = {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    await answer.write(json.dumps(final).encode() + b"\n")
    return answer


def make_app(client: LoggedClient, guard: Guard) -> web.Application:
    """The application: guard and errors middlewares, the routes, the static files, the hub."""
    app = web.Application(middlewares=[guard.middleware, errors], client_max_size=MAX_BODY)
    app[CLIENT], app[GUARD], app[VIEWS] = client, guard, Views(client)
    app.add_routes(routes)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)

    async def start_hub(app: web.Application) -> None:
        app[HUB] = Hub(client, asyncio.get_running_loop())
        await asyncio.to_thread(app[HUB].start)
        client.log.listeners.append(app[HUB].on_call)

    async def stop_hub(app: web.Application) -> None:
        with contextlib.suppress(ValueError):
            client.log.listeners.remove(app[HUB].on_call)
        await asyncio.to_thread(app[HUB].stop)

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)
    return app
