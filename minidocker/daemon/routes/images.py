"""Chapter 10: the images half of the API: pull and push (with progress), list, inspect, tag, remove, commit.

The daemon holds the image store (``request.app["images"]``, from :func:`minidocker.daemon.engine.images`)
and answers in Docker's shapes. Two details matter to clients: image names travel *inside* the
path (``/images/docker.io/library/busybox:latest/json``, slashes and all), and long operations
answer with a stream of JSON lines, flushed as they go, so the CLI can draw its progress bars.
An error after the stream has started can no longer be an HTTP status: it is a last line
``{"errorDetail": {"message": M}, "error": M}``.

Example::

    POST /images/create?fromImage=busybox&tag=latest
    {"status": "Pulling from library/busybox", "id": "latest"}
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "a6551a2e0037"}
    ...
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.process import EngineError
from minidocker.daemon import commitchanges, events
from minidocker.daemon.routes.containers import container, flag, json_body, sup

__all__ = ["routes"]

log = logging.getLogger("minidockerd")

routes = web.RouteTableDef()


def store(request: web.Request) -> Any:
    return request.app["images"]


async def progress_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    return response


async def send(response: web.StreamResponse, message: dict) -> None:
    await response.write(json.dumps(message).encode() + b"\r\n")


async def _blocking(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def registry_auth(request: web.Request) -> Any:
    """The credentials the client sent for the registry (``X-Registry-Auth``): they go before the
    daemon's own config file, as the user logged in on the client's side. A bad header: InvalidArgument."""
    from minidocker.core import dockerconfig as _dockerconfig

    try:
        return _dockerconfig.parse_registry_auth(request.headers.get("X-Registry-Auth", ""))
    except ValueError as e:
        raise errors.InvalidArgument(str(e)) from None


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    ref = request.query.get("fromImage", "")
    if not ref and request.query.get("fromSrc"):
        return await import_(request)
    if not ref:
        raise errors.InvalidArgument("fromImage or fromSrc must be given")
    tag = request.query.get("tag", "")
    if tag and "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref = f"{ref}@{tag}" if tag.startswith("sha256:") else f"{ref}:{tag}"
    auth = registry_auth(request)
    response = await store(request).pull(request, ref, progress_stream, send, auth)
    await _image_event(request, ref, "pull")  # if it is there now (a failure is the stream's last line)
    return response


# --8<-- [start:import]
async def import_(request: web.Request) -> web.StreamResponse:
    """``docker import``: ``fromSrc=-`` (the body) or a URL, spooled (bounded), then chapter 04's import."""
    from minidocker.daemon import imports

    source, repo, tag = request.query["fromSrc"], request.query.get("repo", ""), request.query.get("tag", "")
    repo_tag = f"{repo}:{tag}" if repo and tag else repo or None
    if repo_tag:
        await _blocking(store(request).normalize, repo_tag)  # a bad name: 400 before the upload is read
    images = store(request).store
    with images.temp_file() as (path, spool):  # in the image store: root's alone, removed after
        size = 0
        if source == "-":
            chunks = request.content.iter_chunked(1 << 20)
        elif source.startswith(("http://", "https://")):
            chunks = _download(source)
        else:
            raise errors.InvalidArgument(f"fromSrc {source!r}: '-' (the request body) or an http(s) URL")
        async for chunk in chunks:
            size += len(chunk)
            if size > imports.MAX_IMPORT:
                raise errors.InvalidArgument(f"archive larger than {imports.MAX_IMPORT >> 30} GiB")
            await _blocking(spool.write, chunk)
        await _blocking(spool.flush)
        image_id = await _blocking(lambda: imports.import_image(
            images, path, repo_tag, request.query.getall("changes", []),
            request.query.get("message", ""), source))
    events.emit(request.app, "image", "import", image_id, {"name": repo_tag or ""})
    response = await progress_stream(request)
    await send(response, {"status": image_id})
    await response.write_eof()
    return response
# --8<-- [end:import]


async def _download(url: str) -> Any:
    """The body at ``url``, in chunks (a worker thread reads it: the event loop never waits)."""
    import urllib.error
    import urllib.request

    try:
        answer = await _blocking(lambda: urllib.request.urlopen(url, timeout=30))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise errors.InvalidArgument(f"cannot download {url}: {e}") from None
    with answer:
        while chunk := await _blocking(answer.read, 1 << 20):
            yield chunk


async def _image_event(request: web.Request, ref: str, action: str) -> None:
    """Docker's ``pull``/``push`` event: the reference as users write it (``busybox:latest``), its name."""
    if await _blocking(store(request).find, ref) is None:
        return
    try:
        familiar = store(request).normalize(ref)
    except Exception:
        familiar = ref
    if "@" not in familiar and ":" not in familiar.rsplit("/", 1)[-1]:
        familiar += ":latest"
    name = familiar.split("@")[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    events.emit(request.app, "image", action, familiar, {"name": name})


@routes.post("/images/{name:.+}/push")
async def push(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    ref = f"{name}:{tag}" if tag and ":" not in name.rsplit("/", 1)[-1] else name
    auth = registry_auth(request)
    if await _blocking(store(request).find, ref) is None:
        raise errors.NoSuchImage(ref)
    response = await store(request).push(request, ref, progress_stream, send, auth)
    await _image_event(request, ref, "push")
    return response


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    found = await _blocking(store(request).list_images)
    filters = events.parse_filters(request.query.get("filters"))
    if request.query.get("filter"):  # before API 1.41: one reference pattern
        filters.setdefault("reference", []).append(request.query["filter"])
    for key in filters:
        if key not in ("dangling", "label", "reference", "before", "since"):
            raise errors.InvalidArgument(f"invalid filter '{key}'")
    found = [i for i in found if await _image_matches(request, i, filters)]
    if patterns := filters.get("reference"):  # as dockerd: an image is listed under the names that match
        found = [{**i, "RepoTags": tags, "RepoDigests": digests}
                 for i in found for tags, digests in [_references(i, patterns)]]
    return web.json_response(found)


def _references(image: dict, patterns: list[str]) -> tuple[list[str], list[str]]:
    """The image's tags and digests that a ``reference`` filter's glob names, whole or by repository."""
    import fnmatch

    def named(ref: str, separator: str) -> bool:
        return any(fnmatch.fnmatchcase(n, p) for n in (ref, ref.rsplit(separator, 1)[0]) for p in patterns)

    return ([t for t in image.get("RepoTags") or [] if t != "<none>:<none>" and named(t, ":")],
            [d for d in image.get("RepoDigests") or [] if named(d, "@")])


async def _image_matches(request: web.Request, image: dict, filters: dict[str, list[str]]) -> bool:
    """``docker images --filter``: dangling, label (all of them), reference (a glob), before, since."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    for value in filters.get("dangling") or []:
        if (value.lower() in ("1", "true")) != (not tags):
            return False
    if not events.labels_match(filters.get("label") or [], image.get("Labels") or {}):
        return False
    if (patterns := filters.get("reference")) and not any(_references(image, patterns)):
        return False
    for key in ("before", "since"):
        for ref in filters.get(key) or []:
            other = await _blocking(store(request).inspect, ref)
            if other is None:
                raise errors.NoSuchImage(ref)
            mine, theirs = image["Created"], _created(other)
            if (key == "before" and not mine < theirs) or (key == "since" and not mine > theirs):
                return False
    return True


def _created(inspected: dict) -> int:
    try:
        return events.parse_time(str(inspected.get("Created") or "")) // 1_000_000_000
    except errors.InvalidArgument:
        return 0


@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    found = await _blocking(store(request).inspect, request.match_info["name"])
    if found is None:
        raise errors.NoSuchImage(request.match_info["name"])
    return web.json_response(found)


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "") or "latest"
    if not repo:
        raise errors.InvalidArgument("repository name must be given (repo=)")
    if await _blocking(store(request).find, name) is None:
        raise errors.NoSuchImage(name)
    await _blocking(store(request).tag, name, f"{repo}:{tag_}")  # an invalid name: InvalidArgument
    image = await _blocking(store(request).find, name)
    events.emit(request.app, "image", "tag", image["Id"], {"name": f"{repo}:{tag_}"})
    return web.Response(status=201)


@routes.delete("/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    ref = request.match_info["name"]
    if await _blocking(store(request).find, ref) is None:
        raise errors.NoSuchImage(ref)
    image = await _blocking(store(request).find, ref)
    done = await _blocking(lambda: store(request).remove(ref, flag(request, "force")))  # or Conflict
    for item in done:  # {"Untagged": "busybox:latest"}, then {"Deleted": "sha256:..."}
        if "Untagged" in item:
            events.emit(request.app, "image", "untag", image["Id"], {"name": image["Id"]})
        if "Deleted" in item and item["Deleted"] == image["Id"]:
            events.emit(request.app, "image", "delete", image["Id"], {"name": image["Id"]})
    return web.json_response(done)


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    """``docker image prune``: untagged images; with ``dangling=false`` (``-a``) every unused one."""
    try:
        filters = json.loads(request.query.get("filters") or "{}")
    except ValueError:
        raise errors.InvalidArgument("invalid filters: a JSON object is expected") from None
    dangling = filters.get("dangling", {}) if isinstance(filters, dict) else {}
    everything = "false" in (dangling if isinstance(dangling, list) else list(dangling))
    deleted = await _blocking(store(request).prune, everything)
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    """``docker commit``: the container's read-write layer becomes a layer of a new image."""
    c = sup(request).find(request.query.get("container", ""))
    body = await json_body(request, {}) or {}
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "") or "latest"
    # As dockerd: the container's config, the body's fields over it, then the --change lines.
    kept = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
            "StopSignal", "OnBuild")
    changes = {k: v for k, v in c.config["Config"].items() if k in kept and v is not None}
    changes.update({k: v for k, v in (body if isinstance(body, dict) else {}).items() if k in kept})
    changes = commitchanges.apply(changes, request.query.getall("changes", []))
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    pause = request.query.get("pause", "true").lower() not in ("0", "false")  # Docker's default: pause
    name = f"{repo}:{tag_}" if repo else None
    image_id = await _blocking(lambda: store(request).commit(c.id, name, changes, pid=pid, pause=pause))
    return web.json_response({"Id": image_id}, status=201)


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    """``docker diff``: what the container added (1), changed (0) or deleted (2)."""
    c = container(request)
    pid = int(c.state.get("Pid") or 0) if c.running else 0
    try:
        found = await _blocking(lambda: store(request).changes(c.id, pid))
    except EngineError:
        found = []  # never started: no filesystem, no changes yet
    kinds = {"C": 0, "A": 1, "D": 2}
    return web.json_response([{"Path": path, "Kind": kinds[kind]} for kind, path in found])


@routes.get("/images/get")
@routes.get("/images/{name:.+}/get")
async def save(request: web.Request) -> web.StreamResponse:
    """``docker save``: an OCI image layout as a tarball (chapter 07's ``ocilayout.save``).

    ``GET /images/get?names=A&names=B`` saves several; ``GET /images/NAME/get`` one (docker-py's
    ``image.save()``).
    """
    import tempfile

    from minidocker.images import archive as ocilayout

    names = ([request.match_info["name"]] if "name" in request.match_info
             else request.query.getall("names", []))
    if not names:
        raise errors.InvalidArgument("no image names given (names=)")
    for name in names:
        if await _blocking(store(request).find, name) is None:
            raise errors.NoSuchImage(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/images.tar"
        await _blocking(lambda: ocilayout.save(names, path, store=store(request).store))
        for name in names:
            image = await _blocking(store(request).find, name)
            events.emit(request.app, "image", "save", image["Id"], {"name": image["Id"]})
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                await response.write(chunk)
    await response.write_eof()
    return response


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    """``docker load``: the tarball of ``save`` (or of ``docker save``) into the store."""
    import tempfile

    from minidocker.images import archive as ocilayout

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/images.tar"
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)
        response = await progress_stream(request)
        try:
            for line in await _blocking(lambda: ocilayout.load(path, store=store(request).store)):
                await send(response, {"stream": f"{line}\n"})
                loaded = line.rpartition(": ")[2].strip() if line.startswith("Loaded image") else ""
                if loaded and (image := await _blocking(store(request).find, loaded)):
                    events.emit(request.app, "image", "load", image["Id"], {"name": image["Id"]})
        except Exception as e:  # the headers are gone: the error is the stream's last line
            if not isinstance(e, EngineError):  # a bug: its traceback goes to the log too
                log.exception("%s %s", request.method, request.path)
            await send(response, {"errorDetail": {"message": str(e)}, "error": str(e)})
    await response.write_eof()
    return response


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    """``docker login``: check the credentials against the registry (the client keeps them)."""
    from minidocker.images import distribution as registry

    body = await json_body(request, {}) or {}
    if not isinstance(body, dict):
        raise errors.InvalidArgument("a JSON object {username, password, serveraddress} is expected")
    server = str(body.get("serveraddress") or "docker.io").removeprefix("https://").removeprefix("http://")
    server = "docker.io" if server.startswith("index.docker.io") else server.rstrip("/")
    try:
        await _blocking(lambda: registry.connect(server, (str(body.get("username", "")),
                                                          str(body.get("password", "")))).check_login())
    except (EngineError, OSError) as e:  # refused, or unreachable: the login did not succeed
        raise errors.Unauthorized(f"login attempt to {server} failed: {e}") from None
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})

