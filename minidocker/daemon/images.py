"""Chapter 10: the daemon's images: chapter 07's image store behind the API, pulls streamed as they go.

The store itself (pull, push, tags, layers) is chapter 07's; this module adapts it to a server:
blocking work runs in a thread so the event loop keeps serving, and a pull's progress events
cross from that thread to the HTTP response through a queue, one JSON line each, flushed at once:
that stream is what draws ``docker pull``'s progress bars. ``rmi`` asks the daemon, not the run
directory, which containers use an image.

Example (in a handler)::

    images = ImageService(in_use=lambda image_id: [...])
    return await images.pull(request, "busybox:latest", progress_stream, send)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import errors
from minidocker.core.dockerconfig import RegistryAuth
from minidocker.core.process import EngineError
from minidocker.images import cli as chapter06
from minidocker.images import reference
from minidocker.images.store import ImageStore
from minidocker.overlay.stage import ContainerFS
from minidocker.overlay.tar import HashingWriter

__all__ = ["ImageService"]

log = logging.getLogger("minidockerd")


class ImageService:
    """The image operations of the API, on one :class:`ImageStore`."""

    driver = "overlay2"

    def __init__(self, in_use: Callable[[str], list[str]] | None = None) -> None:
        self.store = ImageStore(in_use=in_use)

    def find(self, ref: str) -> dict[str, Any] | None:
        """``{"Id", "Config"}`` of the image ``ref`` names, or None."""
        try:
            image = self.store.get(ref)
        except errors.NotFound:
            return None
        return {"Id": image.id, "Config": image.config.get("config") or {}, "Os": image.config.get("os"),
                "Architecture": image.config.get("architecture"), "Variant": image.config.get("variant")}

    def list_images(self) -> list[dict[str, Any]]:
        return [chapter06.summary(i) for i in self.store.list()]

    def inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            return chapter06.inspect_image(self.store.get(ref), self.store)
        except errors.NotFound:
            return None

    def tag(self, ref: str, target: str) -> None:
        self.store.tag(ref, target)

    def remove(self, ref: str, force: bool = False) -> list[dict[str, str]]:
        return self.store.remove(ref, force=force)

    def prune(self, everything: bool = False) -> list[dict[str, str]]:
        """Untagged images and unused layers; with ``everything``, every image no container uses."""
        events: list[dict[str, str]] = []
        if everything:
            for image in self.store.list():
                if not self.store.in_use(image.id):
                    with contextlib.suppress(EngineError):
                        events += self.store.remove(image.id, force=True)
        return events + self.store.prune()

    def normalize(self, ref: str) -> str:
        return reference.parse(ref).familiar

    def release_rootfs(self, config: dict[str, Any]) -> None:
        """``docker rm``: the container's read-write layer goes, and its hold on the image's layers."""
        with contextlib.suppress(EngineError):
            ContainerFS.open(self.store.layers, config["Id"]).remove()

    def container_fs(self, container_id: str) -> ContainerFS:
        return ContainerFS.open(self.store.layers, container_id)

    # --8<-- [start:pull]
    async def stream(self, request: Any, work: Callable[[Callable[[dict], None]], Any],
                     open_stream: Any, send: Any) -> Any:
        """Run ``work(progress)`` in a thread; send each progress event as a JSON line as it comes."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict | None] = asyncio.Queue()

        def progress(event: dict) -> None:  # called in the worker thread
            loop.call_soon_threadsafe(queue.put_nowait, dict(event))

        def run() -> Any:
            try:
                return work(progress)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        job = loop.run_in_executor(None, run)
        response = await open_stream(request)
        while (event := await queue.get()) is not None:
            await send(response, event)
        try:
            await job
        except Exception as e:  # the headers are gone: the error is the stream's last line
            if not isinstance(e, EngineError):  # a bug: its traceback goes to the log too
                log.exception("%s %s", request.method, request.path)
            await send(response, {"errorDetail": {"message": str(e)}, "error": str(e)})
        await response.write_eof()
        return response
    # --8<-- [end:pull]

    async def pull(self, request: Any, ref: str, open_stream: Any, send: Any,
                   auth: RegistryAuth | None = None) -> Any:
        """Pull ``ref``; ``auth`` (the client's ``X-Registry-Auth``) goes before the daemon's config file."""
        from minidocker.images import distribution as registry
        from minidocker.images import pull

        parsed = reference.parse(ref)  # InvalidArgument (a 400) before the stream starts
        hooks = request.app.get("hooks")  # the plug-ins' checks (daemon/plugins.py: image_pull)
        checks = [check for hook in (hooks.image_pull if hooks else []) for check in hook(request, parsed)]

        def work(progress: Callable[[dict], None]) -> None:
            with registry.given_credentials(parsed.registry, auth):
                pull.pull(str(parsed), store=self.store, progress=progress, checks=checks)

        return await self.stream(request, work, open_stream, send)

    async def push(self, request: Any, ref: str, open_stream: Any, send: Any,
                   auth: RegistryAuth | None = None) -> Any:
        """Push ``ref``; chapter 07's push reports the digest (``TAG: digest: D size: N``) itself."""
        from minidocker.images import distribution as registry
        from minidocker.images import push

        def work(progress: Callable[[dict], None]) -> None:
            with registry.given_credentials(reference.parse(ref).registry, auth):
                push.push(ref, store=self.store, progress=progress)

        return await self.stream(request, work, open_stream, send)

    def commit(self, container_id: str, repo_tag: str | None, config: dict[str, Any], *, pid: int = 0,
               pause: bool = True) -> str:
        """``docker commit``: the container's changes as a new layer on its image; the new image's id.

        A running container (``pid``, its PID 1) is paused meanwhile unless ``pause`` is False, as
        Docker does: its processes cannot swap what the walk is reading.
        """
        import tempfile

        from minidocker.overlay import changes

        fs = self.container_fs(container_id)
        with tempfile.TemporaryDirectory(dir=self.store.root / "tmp") as tmp:
            with paused(pid if pause else 0):  # only while the files are read: compressing comes after
                committed = changes.commit(fs, self.store.layers, tar_path=Path(tmp) / "layer.tar")
            return _commit_image(self.store, fs, committed, repo_tag, config)

    def changes(self, container_id: str, pid: int = 0) -> list[tuple[str, str]]:
        """``docker diff``, the running container (``pid``) paused meanwhile; EngineError if never started."""
        from minidocker.overlay import changes

        with paused(pid):
            return changes.diff(self.container_fs(container_id))


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """Freeze the cgroup of the running container whose PID 1 is ``pid`` (0: none) for the block."""
    if not pid:
        yield
        return
    try:
        cgroup = Cgroup.of_process(pid)
    except EngineError:  # exited meanwhile: nothing runs to race with
        yield
        return
    with cgroup.frozen():
        yield


def store_gzip_blob(store: ImageStore, plain: Any) -> tuple[str, int]:
    """A layer tar stored gzip-compressed as a blob (commit, import): its digest and size.

    Compressed as a stream, so a big layer never sits in memory; written to a temporary file and
    renamed into place once whole (``commit_blob``), so a crash leaves no half blob.
    """
    import gzip
    import os
    import shutil

    with store.temp_file() as (tmp, out):
        writer = HashingWriter(out)
        with gzip.GzipFile(fileobj=writer, mode="wb", mtime=0) as gz:
            shutil.copyfileobj(plain, gz, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
        digest, size = writer.digest(), writer.size
        if not store.has_blob(digest):
            store.commit_blob(tmp, digest)
    return digest, size


def _commit_image(store: ImageStore, fs: ContainerFS, committed: Any, repo_tag: str | None,
                  config: dict[str, Any]) -> str:
    """Write the config and manifest of "the image + one layer" and record it."""
    import json
    import time

    from minidocker.core import digests
    from minidocker.images import manifest
    from minidocker.images.store import Image

    base: Image = next(i for i in store.list() if i.diff_ids == fs.diff_ids[:len(i.diff_ids)]
                       and len(i.diff_ids) == len(fs.diff_ids))
    with Path(committed.tar).open("rb") as tar:
        layer_digest, layer_size = store_gzip_blob(store, tar)
    new_config = json.loads(json.dumps(base.config))
    new_config["config"] = {**(new_config.get("config") or {}), **config}
    new_config["rootfs"]["diff_ids"] = [*base.diff_ids, committed.diff_id]
    new_config["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    raw_config = json.dumps(new_config, sort_keys=True).encode()
    layers = [*base.manifest.get("layers", []), {"mediaType": f"{manifest.OCI_LAYER}+gzip",
                                                 "digest": layer_digest, "size": layer_size}]
    document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST, "layers": layers,
                "config": {"mediaType": manifest.OCI_CONFIG, "digest": digests.digest_of(raw_config),
                           "size": len(raw_config)}}
    raw_manifest = json.dumps(document, sort_keys=True).encode()
    for blob in (raw_config, raw_manifest):
        store.put_blob(blob)
    tags = [str(reference.parse(repo_tag))] if repo_tag else []
    return store.add_image(digests.digest_of(raw_config), digests.digest_of(raw_manifest), tags=tags).id
