"""Chapter 08: an image in the making: a config and its layers after each step, then a real image.

Every step of a build turns one image into the next. Docker's classic builder makes each of them a
real image (``docker history`` shows their IDs); we keep them as :class:`ImageState`: the config
(which holds ``rootfs.diff_ids``, the ``history`` and the ``config`` a container runs with) and
the layers' blobs, compressed as a registry wants them. The state's ID is the digest of its config,
exactly as an image ID is: two steps that give the same config *are* the same image.

* a metadata instruction (``ENV``, ``CMD``, ...) changes the config and adds a history entry
  marked ``empty_layer``: ``docker history`` shows it with size 0;
* ``RUN``, ``COPY``, ``ADD`` (and a ``WORKDIR`` that creates its directory) add a layer;
* at the end :func:`store_image` writes the manifest and tags the result in chapter 07's store,
  from where it runs, pushes and saves like any pulled image.

Example::

    >>> state = ImageState.scratch().with_config(lambda c: c.update(Cmd=["sh"]), "CMD [\\"sh\\"]")
    >>> state.config["history"][-1]
    {'created': '2025-…', 'created_by': '/bin/sh -c #(nop)  CMD ["sh"]', 'empty_layer': True}
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minidocker.core import digests
from minidocker.core.process import EngineError
from minidocker.images import manifest, reference
from minidocker.images.store import Image, ImageStore
from minidocker.overlay import tar as _tar

__all__ = ["ImageState", "compress_layer", "history", "now", "store_image"]

GZIP_LEVEL = 6  # Docker's default when it pushes (compress/gzip.DefaultCompression)
_OCI_LAYER_GZIP = f"{manifest.OCI_LAYER}+gzip"
_TO_OCI = {manifest.DOCKER_LAYER: _OCI_LAYER_GZIP,
           "application/vnd.docker.image.rootfs.diff.tar": manifest.OCI_LAYER,
           "application/vnd.docker.image.rootfs.diff.tar.zstd": f"{manifest.OCI_LAYER}+zstd"}


def now() -> str:
    """The current time as an image config writes it (RFC 3339, UTC, nanoseconds)."""
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


@dataclass(frozen=True)
class ImageState:
    """An image during a build: its config, the descriptors of its layers' blobs, and its ID."""

    config: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    raw: bytes  # the config as stored: its sha256 is the ID

    @property
    def id(self) -> str:
        return digests.digest_of(self.raw)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def run_config(self) -> dict[str, Any]:
        """The ``config`` part: Env, Cmd, Entrypoint, WorkingDir, User..."""
        return self.config.get("config") or {}

    @classmethod
    def of(cls, config: dict[str, Any], layers: list[dict[str, Any]] | tuple = ()) -> ImageState:
        return cls(config, tuple(layers), json.dumps(config, sort_keys=True).encode())

    @classmethod
    def scratch(cls) -> ImageState:
        """``FROM scratch``: no layer, an empty config for this host's platform."""
        host = manifest.Platform.host()
        return cls.of({"architecture": host.architecture, "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": []}, "history": []})

    @classmethod
    def from_image(cls, image: Image, store: ImageStore) -> ImageState:
        """A stored image as a starting point (``FROM busybox``); its ID stays the image's."""
        layers = [dict(d, mediaType=_TO_OCI.get(d.get("mediaType", ""), d.get("mediaType")))
                  for d in image.manifest.get("layers", [])]
        return cls(image.config, tuple(layers), store.read_blob(image.id))

    # --8<-- [start:with_config]
    def with_config(self, change: Callable[[dict[str, Any]], None], created_by: str) -> ImageState:
        """The next state after a metadata instruction: ``change(config)``, one empty-layer history entry."""
        config = copy.deepcopy(self.config)
        config.setdefault("config", {})
        change(config["config"])
        config["created"] = now()
        config.setdefault("history", []).append({"created": config["created"], "created_by": created_by,
                                                 "empty_layer": True})
        return ImageState.of(config, self.layers)
    # --8<-- [end:with_config]

    # --8<-- [start:with_layer]
    def with_layer(self, diff_id: str | None, blob: dict[str, Any] | None, created_by: str,
                   change: Callable[[dict[str, Any]], None] | None = None) -> ImageState:
        """The next state after RUN/COPY/ADD: one more layer (``None``: the step changed no file)."""
        config = copy.deepcopy(self.config)
        config.setdefault("config", {})
        if change:
            change(config["config"])
        config["created"] = now()
        entry = {"created": config["created"], "created_by": created_by}
        layers = list(self.layers)
        if diff_id is None:
            entry["empty_layer"] = True
        else:
            config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
            layers.append(blob)
        config.setdefault("history", []).append(entry)
        return ImageState.of(config, layers)
    # --8<-- [end:with_layer]


def compress_layer(tar: Path, out_dir: Path) -> dict[str, Any]:
    """gzip a layer tar into ``out_dir/<digest>``; its descriptor (what a manifest lists)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".gz-")
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _tar.HashingWriter(raw)
            with open(tar, "rb") as src, gzip.GzipFile(fileobj=out, mode="wb", mtime=0,  # type: ignore[arg-type]
                                                       compresslevel=GZIP_LEVEL) as gz:
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
        digest = out.digest()
        size = os.path.getsize(tmp)
        os.replace(tmp, out_dir / digest[7:])
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return {"mediaType": _OCI_LAYER_GZIP, "digest": digest, "size": size}


# exercise 08.11: Store the final image and tag it
# hint: an image the store has: only tag it; else lease the layer blobs (store.lease, released in a
#   finally), link each missing one from blob_dirs, put the config, an OCI manifest listing the
#   layers, and add_image with the tags and the layer sizes.
# --8<-- [start:store_image]
def store_image(state: ImageState, store: ImageStore, blob_dirs: list[Path], tags: list[str]) -> Image:
    """Make the final state a real image of chapter 07's store: blobs, manifest, record, tags.

    Layer blobs the build made are linked in from the build cache (``blob_dirs``): same
    filesystem, no copy. The manifest is OCI's; the image ID is the config's digest. An image
    the store has already (``FROM busybox`` alone, or a rebuild) is only tagged: its manifest, the
    one a registry knows, stays.
    """
    with contextlib.suppress(EngineError):
        image = store.get(state.id)
        for tag in tags:
            store.tag(image.id, tag)
        return store.get(image.id)
    holder = f"build:{os.getpid()}-{id(state):x}"  # a lease: no prune takes these blobs meanwhile
    store.lease(holder, [layer["digest"] for layer in state.layers] + [state.id])
    try:
        for layer in state.layers:
            if store.has_blob(layer["digest"]):
                continue
            source = next((d / layer["digest"][7:] for d in blob_dirs if (d / layer["digest"][7:]).exists()),
                          None)
            if source is None:
                raise EngineError(f"layer blob {layer['digest'][:19]} is missing: "
                                  "build again with --no-cache")
            with store.temp_file() as (tmp, _f):
                os.unlink(tmp)
                os.link(source, tmp)
                store.commit_blob(tmp, layer["digest"])
        store.put_blob(state.raw, state.id)
        document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                    "config": {"mediaType": manifest.OCI_CONFIG, "digest": state.id, "size": len(state.raw)},
                    "layers": list(state.layers)}
        raw = json.dumps(document, sort_keys=True).encode()
        manifest_digest = digests.digest_of(raw)
        store.lease(holder, [manifest_digest])
        store.put_blob(raw, manifest_digest)
        sizes = {d: store.layers.size(d) for d in state.diff_ids}
        return store.add_image(state.id, manifest_digest, tags=[str(reference.parse(t)) for t in tags],
                               sizes=sizes)
    finally:
        store.release(holder, [])
# --8<-- [end:store_image]


def _epoch(text: str) -> int:
    with contextlib.suppress(ValueError):
        import datetime

        return int(datetime.datetime.fromisoformat(text[:19] + "+00:00").timestamp())
    return 0


# exercise 08.12: List an image's history as `docker history` does
# hint: one entry per config history record (size 0 for empty_layer, else the next diff ID's size),
#   newest first; the top entry gets the image ID and tags, the others '<missing>'.
# --8<-- [start:history]
def history(image: Image, store: ImageStore) -> list[dict[str, Any]]:
    """``docker history``: one entry per history record, newest first, with its layer's size.

    Records marked ``empty_layer`` have no layer; the others take the next diff ID in order.
    Only the top entry is an image we have: the others show ``<missing>``, as for a pulled image.
    """
    layers = iter(image.diff_ids)
    entries = []
    for record in image.config.get("history") or []:
        size = 0
        if not record.get("empty_layer"):
            diff_id = next(layers, None)
            with contextlib.suppress(EngineError, OSError):
                size = store.layers.size(diff_id) if diff_id else 0
        entries.append({"Id": "<missing>", "Created": _epoch(record.get("created", "")),
                        "CreatedBy": record.get("created_by", ""), "Tags": None, "Size": size,
                        "Comment": record.get("comment", "")})
    entries.reverse()
    if entries:
        entries[0].update(Id=image.id, Tags=[reference.parse(t).familiar for t in image.repo_tags] or None)
    return entries
# --8<-- [end:history]
