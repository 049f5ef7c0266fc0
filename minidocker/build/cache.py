"""Chapter 08: the build cache: "this step, on this image, already gave that image".

A build is a chain: each step takes an image and gives the next. If a step is *the same
instruction on the same image* (and, for ``COPY``/``ADD``, the same source files, content, mode
and owner), its result is the same too, so it can be reused instead of run. That is the whole
cache, as in Docker's classic builder::

    key = sha256(parent image ID, instruction as the builder understood it [, sources' checksum])

Since a step's result becomes the next step's parent, one changed step changes every key after
it: they all run again, and none before it. That is why a Dockerfile copies its dependency list
and installs dependencies *before* it copies the source code that changes every day.

On disk, under ``$MINIDOCKER_STATE/build-cache/`` (so it survives a daemon restart)::

    entries/KEY.json      the resulting image: its config's digest, its layers' descriptors
    blobs/sha256/HEX      configs and compressed layers made by builds
    tmp/                  work in progress

The layers a step made stay in chapter 04's layer store, held by ``build-cache:KEY``, so pruning
images does not take them away; :meth:`BuildCache.prune` (``docker builder prune``, ``system
prune``) drops everything.

Example::

    >>> cache = BuildCache()
    >>> key = cache.key(parent.id, "RUN /bin/sh -c make")
    >>> cache.get(key) is None          # not built yet
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from minidocker.build.image import ImageState
from minidocker.core.atomic import atomic_write
from minidocker.core.paths import state_dir
from minidocker.overlay.layers import LayerError, LayerStore

__all__ = ["BuildCache"]

HOLDER = "build-cache:"


class BuildCache:
    """The cache of build steps at ``root`` (default ``STATE/build-cache``), on a layer store."""

    def __init__(self, root: Path | None = None, layer_store: LayerStore | None = None) -> None:
        self.root = Path(root or state_dir() / "build-cache")
        self.layers = layer_store or LayerStore()
        self.blobs = self.root / "blobs" / "sha256"
        for sub in (self.blobs, self.root / "entries", self.root / "tmp"):
            sub.mkdir(parents=True, exist_ok=True)

    # --8<-- [start:key]
    @staticmethod
    def key(parent_id: str, instruction: str, checksum: str = "") -> str:
        """The cache key of a step: its parent image, what it does, and what it reads."""
        material = json.dumps([parent_id, instruction, checksum]).encode()
        return hashlib.sha256(material).hexdigest()
    # --8<-- [end:key]

    def holder(self, key: str) -> str:
        """The layer store holder of the layer made by step ``key``."""
        return HOLDER + key

    def _entry(self, key: str) -> Path:
        return self.root / "entries" / f"{key}.json"

    # --8<-- [start:get]
    def get(self, key: str) -> ImageState | None:
        """The image step ``key`` gave last time, if everything it needs is still there."""
        try:
            entry = json.loads(self._entry(key).read_text())
            raw = (self.blobs / entry["config"][7:]).read_bytes()
        except (OSError, ValueError, KeyError):
            return None
        state = ImageState(json.loads(raw), tuple(entry["layers"]), raw)
        if not all(self.layers.has(d) for d in state.diff_ids):
            return None  # a layer was pruned (its base image removed): build the step again
        made = entry.get("layer")
        if made and not (self.blobs / made[7:]).exists():
            return None
        os.utime(self._entry(key))  # "last used", for a future least-recently-used prune
        return state
    # --8<-- [end:get]

    # --8<-- [start:put]
    def put(self, key: str, state: ImageState, made: dict[str, Any] | None = None) -> None:
        """Remember that step ``key`` gave ``state`` (``made``: the layer blob the step created)."""
        atomic_write(self.blobs / state.id[7:], state.raw)
        entry = {"config": state.id, "layers": list(state.layers), "layer": made["digest"] if made else None,
                 "created": time.time()}
        atomic_write(self._entry(key), json.dumps(entry))  # a reader sees the whole entry or none
    # --8<-- [end:put]

    def scratch(self) -> Path:
        """A new private directory for a step's temporary files (removed by the caller)."""
        import tempfile

        return Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix=f"{os.getpid()}-"))

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, for ``system df``: key, its layer and its size, when it was last used."""
        found = []
        for path in (self.root / "entries").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                entry = json.loads(path.read_text())
                blob = self.blobs / entry["layer"][7:] if entry.get("layer") else None
                size = blob.stat().st_size if blob and blob.exists() else 0
                found.append({"ID": path.stem[:12], "Size": size,
                              "LastUsedAt": path.stat().st_mtime, "InUse": False, "Shared": False,
                              "Type": "regular", "Description": entry["config"]})
        return found

    # --8<-- [start:prune]
    def prune(self) -> tuple[list[str], int]:
        """Drop the whole cache: entries, blobs, and the layers only the cache held.

        Returns the removed keys and the bytes reclaimed (blobs, and layers that went).
        """
        keys = sorted(p.stem for p in (self.root / "entries").glob("*.json"))
        reclaimed = sum(p.stat().st_size for p in self.blobs.iterdir() if p.is_file())
        for path in (self.root / "entries").glob("*.json"):
            path.unlink(missing_ok=True)
        ours = []  # the layers the cache held: only those may go (the store is shared)
        for diff_id in self.layers.layers():
            with contextlib.suppress(LayerError, OSError):
                for holder in self.layers.holders(diff_id):
                    if holder.startswith(HOLDER):
                        self.layers.unref(diff_id, holder)
                        ours.append(diff_id)
        for path in self.blobs.iterdir():
            path.unlink(missing_ok=True)
        self.clean_temp()
        sizes = {d: self._size(d) for d in self.layers.layers()}
        removed = self.layers.remove_unused(only=ours)
        return keys, reclaimed + sum(sizes.get(d, 0) for d in removed)
    # --8<-- [end:prune]

    def clean_temp(self) -> None:
        """Remove what builds killed before their clean-up left in ``tmp/`` (named after their pid)."""
        for path in (self.root / "tmp").iterdir():
            pid = path.name.split("-")[0].split(".")[-1]
            if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):  # not a build in progress
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def _size(self, diff_id: str) -> int:
        with contextlib.suppress(LayerError, OSError, ValueError):
            return self.layers.size(diff_id)
        return 0
