"""Chapter 10: ``docker cp``'s routes (``HEAD``, ``GET``, ``PUT /containers/{id}/archive``) and ``export``.

The work is :mod:`minidocker.daemon.archive`'s (every path resolved inside the container's root);
here it is put on the wire. The tar goes through a temporary file, written or read by a worker
thread, so the event loop never waits on a disk. What comes in is bounded (``MAX_UPLOAD``).

Example::

    $ docker cp web:/etc/hostname .          # HEAD, then GET ?path=/etc/hostname
    $ docker cp index.html web:/srv/         # HEAD ?path=/srv/, then PUT ?path=/srv/
    $ docker export web > web.tar            # GET /containers/web/export
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.daemon import archive
from minidocker.daemon.routes.containers import container, flag

__all__ = ["routes"]

routes = web.RouteTableDef()

MAX_UPLOAD = 16 << 30  # 16 GiB: a tar bigger than that is refused, not written to the disk
STAT_HEADER = "X-Docker-Container-Path-Stat"


async def _blocking(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise errors.InvalidArgument("path is required (path=)")
    return path


@routes.head("/containers/{id}/archive")
async def stat_path(request: web.Request) -> web.Response:
    c, path = container(request), _path(request)

    def work() -> dict:
        with archive.container_root(request.app["images"], c) as root:
            return archive.path_stat(root, path, request.match_info["id"])

    found = await _blocking(work)
    return web.Response(headers={STAT_HEADER: archive.stat_header(found)})


@routes.get("/containers/{id}/archive")
async def get_archive(request: web.Request) -> web.StreamResponse:
    c, path = container(request), _path(request)
    with tempfile.TemporaryFile() as spool:
        def work() -> dict:
            with archive.container_root(request.app["images"], c) as root:
                found = archive.path_stat(root, path, request.match_info["id"])
                archive.pack(root, path, spool, request.match_info["id"])
            spool.seek(0)
            return found

        found = await _blocking(work)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                               STAT_HEADER: archive.stat_header(found)})
        await response.prepare(request)
        while chunk := await _blocking(spool.read, 1 << 20):
            await response.write(chunk)
    await response.write_eof()
    return response


@routes.put("/containers/{id}/archive")
async def put_archive(request: web.Request) -> web.Response:
    c, path = container(request), _path(request)
    if c.config["HostConfig"].get("ReadonlyRootfs"):
        raise errors.Forbidden("container rootfs is marked read-only")
    keep = flag(request, "noOverwriteDirNonDir")
    with tempfile.TemporaryFile() as spool:
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise errors.InvalidArgument(f"archive larger than {MAX_UPLOAD >> 30} GiB")
            await _blocking(spool.write, chunk)
        spool.seek(0)

        def work() -> None:
            with archive.container_root(request.app["images"], c) as root:
                archive.extract(root, path, spool, no_overwrite_dir_non_dir=keep,
                            container=request.match_info["id"])

        await _blocking(work)
    return web.Response(status=200)


@routes.get("/containers/{id}/export")
async def export_container(request: web.Request) -> web.StreamResponse:
    """``docker export``: the container's filesystem as a tar, spooled first (the container is paused
    only while it is read, not while a slow client downloads it)."""
    from minidocker.daemon.export import export

    c = container(request)
    images = request.app["images"]
    with tempfile.TemporaryFile(dir=images.store.root / "tmp") as spool:
        await _blocking(export, images, c, spool)
        await _blocking(spool.seek, 0)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        while chunk := await _blocking(spool.read, 1 << 20):
            await response.write(chunk)
    await response.write_eof()
    return response
