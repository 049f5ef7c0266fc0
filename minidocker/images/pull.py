"""Chapter 07: ``docker pull``: from a name to an image in the store, every byte checked on the way.

The steps, each a request to the registry (see ``images/distribution.py``)::

    HEAD manifests/TAG     -> the digest the tag points at (already have it? then we are done)
    GET  manifests/DIGEST  -> an index: choose our platform's manifest, GET it too
    GET  blobs/CONFIG      -> the config: how to run, and the diff IDs of the layers
    GET  blobs/LAYER × N   -> a few at a time, streamed to disk while hashed, then unpacked by
                              chapter 04's safe unpacker, checked against the diff IDs

A layer the store already has is not downloaded again ("Already exists"). The image is recorded
(and tagged) only when everything is in place; if anything fails, or the user presses Ctrl-C,
what this pull added is removed again: the store is as it was, and the next pull starts cleanly.
Until then the pull holds its layers and leases its blobs (``ImageStore.lease``), so that neither
``rmi``/``prune`` nor the roll-back of another pull deletes what this one relies on.

Progress goes to a callback as Docker's JSON events (see ``images/progress.py``).

Example::

    >>> image = pull("127.0.0.1:5000/library/busybox", progress=print)
    {'status': 'Pulling from library/busybox', 'id': 'latest'}
    ...
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minidocker.core.process import EngineError
from minidocker.images import distribution as registry
from minidocker.images import manifest, reference
from minidocker.images.checks import Check
from minidocker.images.distribution import Registry, RegistryError
from minidocker.images.progress import bar
from minidocker.images.store import Image, ImageStore
from minidocker.overlay.layers import LayerError

__all__ = ["MAX_CONCURRENT_DOWNLOADS", "Cancelled", "ensure_image", "pull"]

MAX_CONCURRENT_DOWNLOADS = 3  # Docker's default (dockerd --max-concurrent-downloads)
Progress = Callable[[dict[str, Any]], None]


class Cancelled(EngineError):
    """Another download of the same pull failed: this one stops too."""


def _quiet(_event: dict[str, Any]) -> None:
    pass


# exercise 07.6: Pull: the mirrors first, then the registry
# hint: reference.parse; the store (ImageStore() by default) cleans its temp files; the platform is
#   Platform.parse(platform) or Platform.host(); for each url of registry.endpoints(ref.registry):
#   registry.connect and _top_manifest, a RegistryError is noted and the next url tried; on success call
#   each check with (reg, ref, the digest: top[1] or top.digest), emit 'Pulling from REPOSITORY' (id: tag
#   or digest) and return _pull_image(...); all failed: raise _explain.
# --8<-- [start:pull]
def pull(name: str, *, store: ImageStore | None = None, platform: str | None = None,
         progress: Progress | None = None, checks: Sequence[Check] = ()) -> Image:
    """Pull ``name`` into the store and return the image; :class:`EngineError` with one line if not.

    Images of Docker Hub are tried on the configured mirrors first, then on Docker Hub itself.
    ``checks`` (``images/checks.py``) see the digest first: one that raises refuses the image.
    """
    ref = reference.parse(name)
    store = store or ImageStore()
    store.clean_temp()  # what a pull killed outright (SIGKILL, power cut) left behind
    emit = progress or _quiet
    want = manifest.Platform.parse(platform) if platform else manifest.Platform.host()
    failures = []
    for url in registry.endpoints(ref.registry):
        try:
            reg = registry.connect(url)
            top = _top_manifest(reg, ref, store, want)
        except RegistryError as e:
            failures.append(e)
            continue  # a mirror that fails or lacks the image: try the next endpoint
        for check in checks:  # before anything is stored (a later chapter's: images/checks.py)
            check(reg, ref, top[1] if isinstance(top, tuple) else top.digest)
        emit({"status": f"Pulling from {ref.repository}", "id": ref.tag or ref.digest})
        return _pull_image(reg, ref, top, store, want, emit)
    raise _explain(ref, failures)
# --8<-- [end:pull]


def ensure_image(name: str, *, store: ImageStore | None = None, policy: str = "missing",
                 platform: str | None = None, progress: Any = None) -> Image:
    """The image ``name`` means, pulled first if it is not in the store (``docker run``'s ``--pull``).

    ``policy`` is ``missing`` (pull only if it is not here), ``always`` or ``never`` (an error if it
    is not here). Progress goes to the terminal unless ``progress`` says otherwise.

    Example::

        image = ensure_image("busybox", policy="missing")    # pulled once, then found
    """
    store = store or ImageStore()
    if policy != "always":
        try:
            return store.get(name)
        except EngineError:
            if policy == "never":
                raise
    if progress is None:
        from minidocker.images.progress import TerminalProgress

        progress = TerminalProgress(sys.stderr)
        print(f"Unable to find image '{reference.parse(name).familiar}' locally", file=sys.stderr)
    return pull(name, store=store, platform=platform, progress=progress)


def _explain(ref: reference.Reference, failures: list[RegistryError]) -> EngineError:
    """The error of the last endpoint tried, worded as Docker words it."""
    last = failures[-1]
    if last.status in (401, 403):
        return EngineError(f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                           f"require 'minidocker login': {last}")
    if len(failures) > 1:
        return EngineError(f"{last} (mirrors tried first: {'; '.join(str(f) for f in failures[:-1])})")
    return last


def _top_manifest(reg: Registry, ref: reference.Reference, store: ImageStore,
                  want: manifest.Platform) -> registry.Manifest | tuple[Image, str]:
    """The manifest or index ``ref`` names; or, when the store has that image, it and the digest."""
    digest = ref.digest or reg.resolve(ref.repository, ref.reference)  # HEAD: cheap, no body
    if digest:
        pinned = str(ref.with_digest(digest))
        for image in store.list():
            if pinned in image.repo_digests and (image.config.get("os"), image.config.get("architecture")) \
                    == (want.os, want.architecture):
                return image, digest
    return reg.get_manifest(ref.repository, digest or ref.reference)


# --8<-- [start:pull_image]
# --8<-- [start:pull_image_part1]
def _pull_image(reg: Registry, ref: reference.Reference, top: registry.Manifest | tuple[Image, str],
                store: ImageStore,
                want: manifest.Platform, emit: Progress) -> Image:
    """Fetch what is missing of the image ``top`` names, then record and tag it."""
    tags = [str(ref)] if ref.tag and not ref.digest else []
    if isinstance(top, tuple):  # the store has this very image: just (re)tag it
        known, digest = top
        image = store.add_image(known.id, known.manifest_digest, tags=tags)
        emit({"status": f"Digest: {digest}"})
        emit({"status": f"Status: Image is up to date for {ref.familiar}"})
        return image
    added: list[str] = []  # blobs this pull stored: removed again if it fails
    holder = f"pull:{os.getpid()}-{uuid.uuid4().hex[:12]}"  # keeps our layers and blobs from a prune
    diff_ids: list[str] = []
    try:
# --8<-- [end:pull_image_part1]
        chosen = top
        if top.is_index:
            descriptor = manifest.select_manifest(top.document, want)
            chosen = reg.get_manifest(ref.repository, descriptor["digest"])
            if chosen.is_index:
                raise EngineError(f"{ref}: an index inside an index is not supported")
        config_descriptor, layers = chosen.document["config"], chosen.document.get("layers", [])
        manifest.checked_size(config_descriptor, f"config of {ref}", manifest.MAX_CONFIG)  # read whole
        for layer in layers:  # streamed to disk, up to their size: each must say it
            manifest.checked_size(layer, f"layer {str(layer.get('digest'))[:19]} of {ref}")
        # --8<-- [start:pull_image_part2]
        # leased before we look: a blob found here stays until our image is recorded
        store.lease(holder, [top.digest, chosen.digest, config_descriptor["digest"],
                             *(layer["digest"] for layer in layers)])
        # --8<-- [end:pull_image_part2]
        if top.is_index:
            _keep(store, top.raw, top.digest, added)
        _keep(store, chosen.raw, chosen.digest, added)
        # --8<-- [start:pull_image_part3]
        if not store.has_blob(config_descriptor["digest"]):
            with store.temp_file() as (tmp, f):
                reg.fetch_blob(ref.repository, config_descriptor, f)
                store.commit_blob(tmp, config_descriptor["digest"])
                added.append(config_descriptor["digest"])
        config = json.loads(store.read_blob(config_descriptor["digest"]))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise EngineError(f"{ref}: the manifest has {len(layers)} layers but the config {len(diff_ids)}")
        pairs = list(zip(layers, diff_ids, strict=True))
        sizes = _fetch_layers(reg, ref.repository, pairs, store, emit, added, holder)
        image = store.add_image(config_descriptor["digest"], chosen.digest, tags=tags,
                                repo_digest=str(ref.with_digest(top.digest)), sizes=sizes)
    except BaseException:
        store.roll_back(added, holder, diff_ids)
        raise
    store.release(holder, diff_ids)
    emit({"status": f"Digest: {top.digest}"})
    emit({"status": f"Status: Downloaded newer image for {ref.familiar}"})
    return image
        # --8<-- [end:pull_image_part3]
# --8<-- [end:pull_image]


def _keep(store: ImageStore, raw: bytes, digest: str, added: list[str]) -> None:
    if not store.has_blob(digest):
        store.put_blob(raw, digest)
        added.append(digest)


def _hold(store: ImageStore, diff_id: str, holder: str) -> bool:
    """Hold the layer if it is stored (True); False if not, or if a prune removed it a moment ago."""
    try:
        store.layers.ref(diff_id, holder)
    except LayerError:
        return False
    return True


class _Reading:
    """A file wrapper that reports how far it has been read (the "Extracting" progress)."""

    def __init__(self, source: Any, report: Callable[[int], None]) -> None:
        self.source, self.report, self.done = source, report, 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            self.done += len(data)
            self.report(self.done)
        return data


# --8<-- [start:fetch_layers]
# --8<-- [start:fetch_layers_part1]
def _fetch_layers(reg: Registry, repository: str, layers: list[tuple[dict[str, Any], str]],
                  store: ImageStore, emit: Progress, added: list[str], holder: str) -> dict[str, int]:
# --8<-- [end:fetch_layers_part1]
    """Download and unpack the layers a few at a time; return each layer's unpacked size.

    Downloads stream to a temporary file while hashed; a layer is unpacked only when its bytes
    are proven right. The first failure cancels the other downloads.
    """
    # --8<-- [start:fetch_layers_part2]
    failed = threading.Event()
    lock = threading.Lock()
    sizes: dict[str, int] = {}

    def one(descriptor: dict[str, Any], diff_id: str) -> None:
        short = descriptor["digest"][7:19]
        if failed.is_set():
            raise Cancelled("cancelled")
        if store.has_blob(descriptor["digest"]) and store.verified_diff_id(descriptor["digest"]) == diff_id \
                and _hold(store, diff_id, holder):  # the blob is leased, and we checked once it is that layer
            emit({"status": "Already exists", "progressDetail": {}, "id": short})
            sizes[diff_id] = store.layers.size(diff_id)
            return
    # --8<-- [end:fetch_layers_part2]
        total, last = descriptor.get("size", 0), [0.0]

        def downloading(done: int) -> None:
            if failed.is_set():
                raise Cancelled("cancelled")
            if time.monotonic() - last[0] > 0.1 or done == total:
                last[0] = time.monotonic()
                emit({"status": "Downloading", "progressDetail": {"current": done, "total": total},
                      "progress": bar(done, total), "id": short})

        # --8<-- [start:fetch_layers_part3]
        with store.temp_file() as (tmp, f):
            if not store.has_blob(descriptor["digest"]):
                reg.fetch_blob(repository, descriptor, f, downloading)
                f.flush()
                emit({"status": "Verifying Checksum", "progressDetail": {}, "id": short})
                emit({"status": "Download complete", "progressDetail": {}, "id": short})
                store.commit_blob(tmp, descriptor["digest"])
                with lock:
                    added.append(descriptor["digest"])
        # --8<-- [end:fetch_layers_part3]
        size, last[0] = os.path.getsize(store.blob_path(descriptor["digest"])), 0.0

        def extracting(done: int) -> None:
            if failed.is_set():
                raise Cancelled("cancelled")
            if time.monotonic() - last[0] > 0.1 or done == size:
                last[0] = time.monotonic()
                emit({"status": "Extracting", "progressDetail": {"current": done, "total": size},
                      "progress": bar(done, size), "id": short})

        if descriptor.get("mediaType") not in manifest.LAYER_TYPES:
            raise EngineError(f"layer {short}: unsupported media type {descriptor.get('mediaType')!r}")
        # --8<-- [start:fetch_layers_part4]
        with open(store.blob_path(descriptor["digest"]), "rb") as blob:
            # chapter 04 unpacks it safely (or, if stored, hashes it) and checks that the tar's sha256 is
            # the config's diff ID: a diff ID alone never gets a layer that is already here
            store.add_layer(_Reading(blob, extracting), descriptor["digest"], diff_id, holder=holder)
        sizes[diff_id] = store.layers.size(diff_id)
        emit({"status": "Pull complete", "progressDetail": {}, "id": short})
        # --8<-- [end:fetch_layers_part4]

    # --8<-- [start:fetch_layers_part5]
    for descriptor, _ in layers:
        emit({"status": "Pulling fs layer", "progressDetail": {}, "id": descriptor["digest"][7:19]})
    with ThreadPoolExecutor(MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="pull") as pool:
        futures = [pool.submit(one, descriptor, diff_id) for descriptor, diff_id in layers]
    # --8<-- [end:fetch_layers_part5]
        errors = []
        for future in futures:
            try:
                future.result()
            except BaseException as e:
                failed.set()
                errors.append(e)
    real = [e for e in errors if not isinstance(e, Cancelled)]
    if real or errors:
        raise (real or errors)[0]
    # --8<-- [start:fetch_layers_part6]
    return sizes
    # --8<-- [end:fetch_layers_part6]
# --8<-- [end:fetch_layers]
