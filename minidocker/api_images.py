"""Chapter 07: the images half of the API: pull (with progress), import, list, inspect, tag, remove.

The daemon holds the image store (``request.app["images"]``, from :func:`minidocker.engine.images`)
and answers in Docker's shapes. Two details matter to clients: image names travel *inside* the
path (``/images/docker.io/library/busybox:latest/json``, slashes and all), and long operations
answer with a stream of JSON lines, flushed as they go, so the CLI can draw its progress bars.
An error after the stream has started can no longer be an HTTP status: it is a last line
``{"errorDetail": {"message": M}, "error": M}``.

Example::

    POST /images/create?fromSrc=-&repo=busybox&tag=latest   (body: a root filesystem tarball)
    {"status": "sha256:5d1..."}
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from typing import Any

from aiohttp import web

from minidocker._atomic import rfc3339
from minidocker.api_containers import flag, sup
from minidocker.supervisor import ApiError

__all__ = ["image_inspect_shape", "image_summary_shape", "routes"]

routes = web.RouteTableDef()


def store(request: web.Request) -> Any:
    return request.app["images"]


async def progress_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    return response


async def send(response: web.StreamResponse, message: dict) -> None:
    await response.write(json.dumps(message).encode() + b"\r\n")


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    images = store(request)
    loop = asyncio.get_running_loop()
    if request.query.get("fromSrc") == "-":
        repo, tag = request.query.get("repo", ""), request.query.get("tag", "")
        name = f"{repo}:{tag or 'latest'}" if repo else None
        spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 (closed below)
        try:
            async for chunk in request.content.iter_chunked(1 << 20):
                spool.write(chunk)
            spool.seek(0)
            response = await progress_stream(request)
            try:
                image_id = await loop.run_in_executor(None, images.import_tar, spool, name)
            except Exception as e:
                await send(response, {"errorDetail": {"message": f"import: {e}"}, "error": f"import: {e}"})
            else:
                await send(response, {"status": image_id})
        finally:
            spool.close()
        await response.write_eof()
        return response
    ref = request.query.get("fromImage", "")
    if not ref:
        raise ApiError(400, "fromImage or fromSrc must be given")
    tag = request.query.get("tag", "")
    if tag and "@" not in ref:
        ref = f"{ref}@{tag}" if tag.startswith("sha256:") else f"{ref}:{tag}"
    pull = getattr(images, "pull", None)
    if pull is None:  # no registry client yet (chapter 06): only what is already here
        if await loop.run_in_executor(None, images.find, ref) is None:
            raise ApiError(404, f"pull access denied for {ref}: no registry client in this engine yet "
                                "(chapter 06); use 'minidocker import'")
        response = await progress_stream(request)
        await send(response, {"status": f"Status: Image is up to date for {images.normalize(ref)}"})
        await response.write_eof()
        return response
    return await pull(request, ref, progress_stream, send)


def image_summary_shape(image: dict) -> dict[str, Any]:
    """An entry of ``GET /images/json`` (``docker images``)."""
    return {"Id": image["Id"], "ParentId": "", "RepoTags": image.get("RepoTags") or [],
            "RepoDigests": image.get("RepoDigests") or [], "Created": int(image.get("Created") or 0),
            "Size": int(image.get("Size") or 0), "SharedSize": -1, "VirtualSize": int(image.get("Size") or 0),
            "Labels": (image.get("Config") or {}).get("Labels") or {}, "Containers": -1}


def image_inspect_shape(image: dict) -> dict[str, Any]:
    """``GET /images/NAME/json`` (``docker image inspect``)."""
    return {"Id": image["Id"], "RepoTags": image.get("RepoTags") or [],
            "RepoDigests": image.get("RepoDigests") or [], "Parent": "", "Comment": "",
            "Created": image.get("CreatedAt") or rfc3339(image.get("Created") or 0), "DockerVersion": "",
            "Author": "", "Config": image.get("Config") or {},
            "Architecture": image.get("Architecture", "amd64"),
            "Os": "linux", "Size": int(image.get("Size") or 0), "VirtualSize": int(image.get("Size") or 0),
            "GraphDriver": {"Name": store_driver(image), "Data": {}},
            "RootFS": {"Type": "layers", "Layers": image.get("Layers") or []},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}}


def store_driver(image: dict) -> str:
    return image.get("Driver", "dir")


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    images = await asyncio.get_running_loop().run_in_executor(None, store(request).list_images)
    show_all = flag(request, "all")
    return web.json_response([image_summary_shape(i) for i in images if show_all or i.get("RepoTags")
                              or not i.get("Dangling")])


def _find(request: web.Request, ref: str) -> dict:
    image = store(request).find(ref)
    if image is None:
        raise ApiError(404, f"No such image: {ref}")
    return image


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    return web.json_response(image_inspect_shape(_find(request, request.match_info["name"])))


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    image = _find(request, request.match_info["name"])
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "") or "latest"
    if not repo:
        raise ApiError(400, "repository name must be given (repo=)")
    store(request).tag(image["Id"], f"{repo}:{tag_}")
    return web.Response(status=201)


@routes.delete("/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    ref = request.match_info["name"]
    image = _find(request, ref)
    users = [c for c in sup(request).containers.values() if c.config["Image"] == image["Id"]]
    if users and not flag(request, "force"):
        raise ApiError(409, f"conflict: unable to remove repository reference \"{ref}\" (must force) - "
                            f"container {users[0].id[:12]} is using its referenced image {image['Id'][7:19]}")
    try:
        done = await asyncio.get_running_loop().run_in_executor(None, store(request).remove, ref)
    except KeyError:
        raise ApiError(404, f"No such image: {ref}") from None
    return web.json_response(done)
