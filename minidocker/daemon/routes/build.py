"""The daemon's side of chapter 08: ``POST /build``: the context arrives as a tar, the build streams back.

(Like ``daemon/engine.py``, this module assembles a later chapter into chapter 10's daemon, so it carries
no chapter number: the daemon may import it.)

As in Docker, the client sends the whole build context as the request body (a tar, maybe
compressed) and the options in the query string (``t``, ``dockerfile``, ``buildargs`` as JSON,
``target``, ``nocache``, ``pull``, ``q``, ``labels``, ``networkmode``). The build runs in a thread
(:func:`minidocker.build.builder.build`, whose RUN steps run in a worker process); its events cross to
the HTTP response through a queue and go out one JSON object a line, flushed at once. The
``docker`` CLI's classic builder (``DOCKER_BUILDKIT=0 docker build``) reads exactly this stream.

Also here: ``POST /build/prune`` (``docker builder prune``; ``docker system prune`` calls it) and
``GET /images/{name}/history`` (``docker history``).

Register it in a daemon (before chapter 10's tables: its ``/build/prune`` placeholder then loses)::

    api_build.register(app)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tarfile
import tempfile
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.daemon.routes.containers import flag

__all__ = ["register", "routes"]

routes = web.RouteTableDef()


def _json_query(request: web.Request, name: str) -> dict[str, str]:
    try:
        value = json.loads(request.query.get(name) or "{}")
    except ValueError:
        raise errors.InvalidArgument(f"invalid {name}: not JSON") from None
    if not isinstance(value, dict):
        raise errors.InvalidArgument(f"invalid {name}: a JSON object is expected")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _options(request: web.Request) -> dict[str, Any]:
    """The query string as :func:`minidocker.build.builder.build`'s keyword arguments (or InvalidArgument)."""
    from minidocker.images import reference

    query = request.query
    if query.get("remote"):
        raise errors.InvalidArgument("remote build contexts (URLs, git) are not supported: send the context "
                                     "as the request body")
    if query.get("version") == "2":
        raise errors.InvalidArgument("BuildKit (version=2) is not supported by minidockerd: use the classic "
                                     "builder (DOCKER_BUILDKIT=0 docker build)")
    tags = query.getall("t", [])
    for tag in tags:
        try:
            reference.parse(tag)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"invalid tag {tag!r}: {e}") from None
    try:
        cache_from = json.loads(query.get("cachefrom") or "[]")
    except ValueError:
        raise errors.InvalidArgument("invalid cachefrom: not JSON") from None
    if cache_from:  # the classic builder's --cache-from: other images' steps as the cache
        raise errors.InvalidArgument("--cache-from is not supported by this daemon's builder: its own "
                                     "cache (kept across restarts, emptied by docker builder prune) is used")
    return {"dockerfile": query.get("dockerfile") or "Dockerfile", "tags": tags,
            "extra_hosts": _extra_hosts(query.getall("extrahosts", [])),
            "build_args": _json_query(request, "buildargs"), "target": query.get("target") or None,
            "no_cache": flag(request, "nocache"), "pull": flag(request, "pull"),
            "network": query.get("networkmode") or "default",
            "labels": _json_query(request, "labels") or None}


def _extra_hosts(values: list[str]) -> list[str]:
    """``docker build --add-host HOST:IP`` (``extrahosts``, one or comma-joined): chapter 05's rules."""
    from minidocker.core.process import EngineError
    from minidocker.network.netfiles import parse_add_host

    hosts = [h.strip() for value in values for h in value.split(",") if h.strip()]
    for host in hosts:
        try:
            parse_add_host(host)
        except EngineError as e:
            raise errors.InvalidArgument(str(e)) from None
    return hosts


# --8<-- [start:post_build]
# --8<-- [start:post_build_part1]
@routes.post("/build")
async def post_build(request: web.Request) -> web.StreamResponse:
    """``docker build``: store the body, build in a thread, stream its events; errors as the last line."""
# --8<-- [end:post_build_part1]
    from minidocker.build import builder as build
    from minidocker.build.cache import BuildCache

    # --8<-- [start:post_build_part2]
    options, quiet = _options(request), flag(request, "q")
    store = request.app["images"].store
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict | None] = asyncio.Queue()
    gone = False  # the client went away: the next event stops the build

    def on_event(event: dict) -> None:  # in the build's thread
        if gone:
            raise build.BuildError("the client disconnected: build cancelled")
        if not (quiet and "stream" in event):
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def work(context: str) -> str:
        try:
            return build.build(context, on_event=on_event, store=store,
                               cache=BuildCache(layer_store=store.layers), **options)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)
    # --8<-- [end:post_build_part2]

    # --8<-- [start:post_build_part3]
    with tempfile.NamedTemporaryFile(dir=store.root / "tmp", prefix=f"{os.getpid()}-context-") as context:
    # --8<-- [end:post_build_part3]
        async for chunk in request.content.iter_chunked(1 << 20):
            context.write(chunk)
        context.flush()
        if not await loop.run_in_executor(None, tarfile.is_tarfile, context.name):
            _dockerfile_alone(context, options["dockerfile"])  # ``docker build - < Dockerfile``
        # --8<-- [start:post_build_part4]
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        job = loop.run_in_executor(None, work, context.name)
        while (event := await queue.get()) is not None:
            try:
                await response.write(json.dumps(event).encode() + b"\r\n")
            except (ConnectionError, RuntimeError):
                gone = True
        try:
            image_id = await job
        # --8<-- [end:post_build_part4]
            if quiet:
                await response.write(json.dumps({"stream": image_id + "\n"}).encode() + b"\r\n")
        except Exception as e:  # the headers are gone: the error is the stream's last line
            detail: dict[str, Any] = {"message": str(e)}
            code = getattr(e, "exit_code", 0)
            if isinstance(e, build.BuildError) and code not in (0, 125):
                detail["code"] = code  # the CLI exits with the failed command's status
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write(json.dumps({"errorDetail": detail, "error": str(e)}).encode() + b"\r\n")
    # --8<-- [start:post_build_part5]
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response
    # --8<-- [end:post_build_part5]
# --8<-- [end:post_build]


def _dockerfile_alone(body: Any, name: str) -> None:
    """Rewrite a body that is not a tar (a bare Dockerfile) as a context holding just that file."""
    import io

    body.seek(0)
    data = body.read()
    body.seek(0)
    body.truncate()
    with tarfile.open(fileobj=body, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    body.flush()


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    """``docker builder prune`` (and the last part of ``docker system prune``): drop the build cache."""
    from minidocker.build.cache import BuildCache

    store = request.app["images"].store
    keys, reclaimed = await asyncio.get_running_loop().run_in_executor(
        None, lambda: BuildCache(layer_store=store.layers).prune())
    return web.json_response({"CachesDeleted": keys, "SpaceReclaimed": reclaimed})


@routes.get("/images/{name:.+}/history")
async def image_history(request: web.Request) -> web.Response:
    """``docker history IMAGE``: each layer with the instruction that made it and its size."""
    from minidocker.build.image import history

    store = request.app["images"].store
    name = request.match_info["name"]

    def work() -> list[dict]:
        return history(store.get(name), store)

    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, work))  # or NoSuchImage


# --8<-- [start:register]
def register(app: web.Application) -> None:
    """Add these routes to a daemon's application, with and without the ``/vX.YY`` prefix.

    Call it before the other tables are added: the first route registered for a path wins.
    """
    for route in routes:
        for prefix in ("", "/{version:v[0-9]+[.][0-9]+}"):
            app.router.add_route(route.method, prefix + route.path, route.handler)
# --8<-- [end:register]
