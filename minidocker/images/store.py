"""Chapter 07: the local image store: blobs by digest, images by config digest, tags by name.

Like containerd, minidocker keeps two stores side by side:

* the **content store** (``images/blobs/sha256/HEX``): manifests, indexes, configs and compressed
  layers exactly as the registry sent them, named by digest. It is what ``push`` and ``save`` send
  back out, byte for byte, so digests survive a round trip;
* the **layer store** of chapter 04: each layer unpacked once, named by its diff ID, shared.

An image is a record naming its config (whose digest *is* the image ID), its manifest, and the
names it is known by: tags (``127.0.0.1:5000/app:v1`` -> image ID) and repo digests
(``127.0.0.1:5000/app@sha256:…``, the manifest or index it was pulled as). Every change happens
under a lock and lands with an atomic rename: a crash never leaves half an image.

Until its image is recorded, a pull keeps its blobs with a *lease* (:meth:`ImageStore.lease`) as
it keeps its layers with a holder: ``rmi``, ``prune`` and another pull's roll-back leave them alone.

Example::

    >>> store = ImageStore()
    >>> image = store.get("busybox")            # by tag, ID, short ID or NAME@DIGEST
    >>> image.id, image.repo_tags
    ('sha256:3f57…', ['docker.io/library/busybox:latest'])
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from minidocker.core import errors
from minidocker.core.atomic import atomic_write
from minidocker.core.digests import digest_of, verify_digest
from minidocker.core.paths import run_dir, state_dir
from minidocker.core.process import EngineError
from minidocker.images import reference
from minidocker.network.ipam import process_identity
from minidocker.overlay import layers

__all__ = ["Image", "ImageStore", "containers_using", "mark_in_use", "unmark_in_use"]

_HEX = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")


@dataclass
class Image:
    """An image in the store, with its parsed config and manifest."""

    id: str
    config: dict[str, Any]
    manifest: dict[str, Any]
    manifest_digest: str
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    size: int = 0
    tagged_at: float = 0.0

    @property
    def diff_ids(self) -> list[str]:
        """The layers, bottom first, by the digest of their uncompressed tars."""
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def short_id(self) -> str:
        """12 hex digits, as ``docker images`` shows."""
        return self.id.removeprefix("sha256:")[:12]


def containers_using(image_id: str) -> list[str]:
    """Containers of this stage's ``run`` using ``image_id`` (their marks in the run dir, if alive).

    The daemon (chapter 10) knows its own containers: it passes its own check to :class:`ImageStore`.
    """
    users = []
    for mark in (run_dir() / "images-in-use").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            pid, used = mark.read_text().split()
            if used == image_id and os.path.exists(f"/proc/{pid}"):
                users.append(mark.name[:12])
    return users


def mark_in_use(image_id: str, container_id: str) -> None:
    """Until :func:`unmark_in_use` (or this process's end), ``rmi`` refuses to remove ``image_id``."""
    directory = run_dir() / "images-in-use"
    directory.mkdir(exist_ok=True)
    (directory / container_id).write_text(f"{os.getpid()} {image_id}\n")


def unmark_in_use(container_id: str) -> None:
    """The container is done with its image (see :func:`mark_in_use`)."""
    (run_dir() / "images-in-use" / container_id).unlink(missing_ok=True)


class ImageStore:
    """Images, tags and blobs under ``root`` (default ``STATE/images``), on top of chapter 04's layers.

    ``in_use(image_id)`` names the containers using an image (default: :func:`containers_using`);
    ``rmi`` refuses those images unless forced.
    """

    def __init__(self, root: Path | None = None, *, layer_store: layers.LayerStore | None = None,
                 in_use: Callable[[str], list[str]] | None = None) -> None:
        self.root = Path(root or state_dir() / "images")
        self.layers = layer_store or layers.LayerStore()
        self.in_use = in_use or containers_using
        for sub in ("blobs/sha256", "records", "tmp", "leases", "diffids"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ---- the content store ----------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where a blob is (or would be) kept."""
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[a-f0-9]{64}", hexdigits):
            raise EngineError(f"invalid digest {digest!r}")
        return self.root / "blobs" / "sha256" / hexdigits

    def has_blob(self, digest: str) -> bool:
        """True if the content store holds ``digest``."""
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        """A small blob's bytes (manifests, configs)."""
        return self.blob_path(digest).read_bytes()

    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store bytes under their digest (checked against ``digest`` if given); return the digest."""
        if digest:
            verify_digest(data, digest, "blob")
        digest = digest or digest_of(data)
        if not self.has_blob(digest):
            with self.temp_file() as (tmp, f):
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                self.commit_blob(tmp, digest)
        return digest

    # --8<-- [start:add_layer]
    def add_layer(self, source: str | os.PathLike | Any, blob_digest: str, diff_id: str, *,
                  holder: str) -> str:
        """Unpack the layer blob ``blob_digest`` (a path or a stream) as layer ``diff_id`` for ``holder``.

        A config's diff ID is a claim: anyone can copy the diff ID of a private layer into a config.
        So a stored layer is reused without reading the blob only when *we* once decompressed this
        very blob and found that diff ID (:meth:`verified_diff_id`); otherwise the blob is hashed
        (or unpacked) and must match, and the pair is remembered for the next pull. Docker does the
        same since moby/moby#33057 ("diff ID by digest", recorded only when verified).

            >>> store.add_layer(store.blob_path(blob), blob, config_diff_id, holder="pull:42-ab")
        """
        diff_id = layers.canonical(diff_id)
        trusted = self.verified_diff_id(blob_digest) == diff_id
        self.layers.add(source, expected_diff_id=diff_id, holder=holder, trusted=trusted)
        if not trusted:
            atomic_write(self._diff_id_path(blob_digest), diff_id + "\n")
        return diff_id
    # --8<-- [end:add_layer]

    def verified_diff_id(self, blob_digest: str) -> str | None:
        """The diff ID we found by decompressing the blob ``blob_digest`` ourselves, or None if never."""
        with contextlib.suppress(OSError, EngineError):
            return layers.canonical(self._diff_id_path(blob_digest).read_text())
        return None

    def _diff_id_path(self, blob_digest: str) -> Path:
        return self.root / "diffids" / self.blob_path(blob_digest).name

    def commit_blob(self, tmp: Path, digest: str) -> None:
        """Move a verified temporary file into the content store (atomically, by rename)."""
        os.replace(tmp, self.blob_path(digest))

    @contextlib.contextmanager
    def temp_file(self) -> Iterator[tuple[Path, Any]]:
        """A temporary file on the store's filesystem (so a rename commits it); removed if left."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix=f"{os.getpid()}-")
        path = Path(name)
        try:
            with os.fdopen(fd, "w+b") as f:
                yield path, f
        finally:
            path.unlink(missing_ok=True)

    def clean_temp(self) -> None:
        """Forget what processes killed mid-pull left: temporary files, holds on layers, leases.

        Their names carry their pid (``tmp/PID-…``, holder ``pull:PID-…``, a lease's owner). Complete
        blobs and layers they stored stay, for the next pull to reuse (``prune`` removes them otherwise).
        """
        def dead(pid: str) -> bool:
            return pid.isdigit() and not os.path.exists(f"/proc/{pid}")

        for path in (self.root / "tmp").iterdir():
            if dead(path.name.split("-")[0]):
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        for diff_id in self.layers.layers():
            with contextlib.suppress(EngineError, OSError):
                for holder in self.layers.holders(diff_id):
                    kind, _, owner = holder.partition(":")
                    if kind in ("pull", "load") and dead(owner.split("-")[0]):
                        self.layers.unref(diff_id, holder)
        self._leased(reclaim=True)

    def lease(self, holder: str, digests: list[str]) -> None:
        """Keep the blobs ``digests`` for ``holder`` (a pull) until its :meth:`release` or :meth:`roll_back`.

        A blob belongs to an image once the image is recorded; before that only the pull knows it
        uses it, downloaded or found here ("Already exists"). So a pull leases its blobs *before* it
        looks for them: ``leases/HOLDER.json`` names them and the process (pid, start time, boot:
        chapter 05's :func:`~minidocker.network.ipam.process_identity`). Leasing and deleting (``rmi``,
        ``prune``, a failed pull's roll-back) happen under the lock: a deleter sees the lease, or
        deleted the blob before the pull looked (which then downloads it). The lease of a process
        that died is ignored, and removed by :meth:`clean_temp`.
        """
        path = self.root / "leases" / f"{quote(holder, safe='')}.json"
        with self.locked():
            with contextlib.suppress(OSError, ValueError):
                digests = [*json.loads(path.read_text())["blobs"], *digests]
            self._write(path, {"owner": process_identity(os.getpid()), "blobs": sorted(set(digests))})

    def _leased(self, *, reclaim: bool = False) -> set[str]:
        """The blobs that live processes lease; ``reclaim``: delete the leases of dead ones."""
        blobs = set()
        for path in (self.root / "leases").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                lease = json.loads(path.read_text())
                if lease["owner"] and process_identity(int(lease["owner"][0])) == lease["owner"]:
                    blobs |= set(lease["blobs"])
                elif reclaim:
                    path.unlink(missing_ok=True)
        return blobs

    # ---- records and names ----------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access for changes (concurrent pulls, rmi, tag, prune)."""
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, path: Path, value: Any) -> None:
        atomic_write(path, json.dumps(value, indent=1, sort_keys=True))

    def _record_path(self, image_id: str) -> Path:
        return self.root / "records" / f"{image_id.removeprefix('sha256:')}.json"

    def _records(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in (self.root / "records").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                found[f"sha256:{path.stem}"] = json.loads(path.read_text())
        return found

    def tags(self) -> dict[str, str]:
        """Every tag (full name, ``registry/repo:tag``) and the image ID it points at."""
        path = self.root / "repositories.json"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return json.loads(path.read_text())
        return {}

    def _set_tags(self, tags: dict[str, str]) -> None:
        self._write(self.root / "repositories.json", dict(sorted(tags.items())))

    # --8<-- [start:add_image]
    def add_image(self, config_digest: str, manifest_digest: str, *, tags: list[str] = (),
                  repo_digest: str | None = None, sizes: dict[str, int] | None = None) -> Image:
        """Record an image whose blobs and layers are all in place, and point ``tags`` at it.

        The last step of a pull or load, done under the lock: the record is written before the
        tags, so a tag never points at a missing image.
        """
        with self.locked():
            config = json.loads(self.read_blob(config_digest))
            missing = [d for d in config.get("rootfs", {}).get("diff_ids", []) if not self.layers.has(d)]
            if missing:
                raise EngineError(f"layer {missing[0][:19]} vanished during the pull (pruned?): pull again")
            for diff_id in config.get("rootfs", {}).get("diff_ids", []):
                self.layers.ref(diff_id, f"image:{config_digest}")  # now nobody can prune it
            path = self._record_path(config_digest)
            record = json.loads(path.read_text()) if path.exists() else {"repo_digests": []}
            record.update(manifest=manifest_digest, tagged_at=time.time())
            if sizes:
                record["sizes"] = sizes
            if repo_digest and repo_digest not in record["repo_digests"]:
                record["repo_digests"].append(repo_digest)
            self._write(path, record)
            all_tags = self.tags()
            all_tags.update({t: config_digest for t in tags})
            self._set_tags(all_tags)
        return self.get(config_digest)
    # --8<-- [end:add_image]

    def resolve(self, name: str) -> str:
        """The image ID that ``name`` means: a tag, ``NAME@DIGEST``, an ID or a unique ID prefix."""
        records = self._records()
        full = _HEX.fullmatch(name)
        if full and len(full.group(1)) == 64 and f"sha256:{full.group(1)}" in records:
            return f"sha256:{full.group(1)}"
        with contextlib.suppress(EngineError):
            ref = reference.parse(name)
            if ref.digest:
                for image_id, record in records.items():
                    if str(ref.with_digest(ref.digest)) in record.get("repo_digests", []):
                        return image_id
            elif str(ref) in self.tags():
                return self.tags()[str(ref)]
        if full:
            matches = [i for i in records if i[7:].startswith(full.group(1))]
            if len(matches) == 1:
                return matches[0]
        raise errors.NoSuchImage(name)

    def get(self, name: str) -> Image:
        """The image ``name`` means, or :class:`~minidocker.core.errors.NoSuchImage`."""
        image_id = self.resolve(name)
        record = json.loads(self._record_path(image_id).read_text())
        manifest = json.loads(self.read_blob(record["manifest"]))
        config = json.loads(self.read_blob(image_id))
        sizes = record.get("sizes", {})
        tags = sorted(t for t, i in self.tags().items() if i == image_id)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        size = sum(sizes[d] if d in sizes else self._layer_size(d) for d in diff_ids)
        return Image(image_id, config, manifest, record["manifest"], tags, record.get("repo_digests", []),
                     size, record.get("tagged_at", 0.0))

    def _layer_size(self, diff_id: str) -> int:
        with contextlib.suppress(EngineError, OSError, ValueError):
            return self.layers.size(diff_id)
        return 0

    def list(self) -> list[Image]:
        """Every image, newest first."""
        images = [self.get(i) for i in self._records()]
        return sorted(images, key=lambda i: i.tagged_at, reverse=True)

    def tag(self, source: str, target: str) -> None:
        """Give the image ``source`` means the extra name ``target`` (``docker tag``)."""
        image_id = self.resolve(source)
        ref = reference.parse(target)
        if ref.digest:
            raise errors.InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        with self.locked():
            tags = self.tags()
            tags[str(ref)] = image_id
            self._set_tags(tags)

    # --8<-- [start:remove]
    def remove(self, name: str, *, force: bool = False) -> list[dict[str, str]]:
        """``docker rmi``: untag ``name``; delete the image when no name is left; then its layers.

        Removing one of several tags only untags. An image a container uses is refused unless
        ``force``d, and even then it is only untagged (the container still needs its layers).
        Returns Docker's answer: ``[{"Untagged": NAME}, {"Deleted": ID}]``.
        """
        image_id = self.resolve(name)
        with self.locked():
            tags = self.tags()
            names = sorted(t for t, i in tags.items() if i == image_id)
            by_name = reference.parse(name) if not _HEX.fullmatch(name) else None
            if by_name and str(by_name) in names and len(names) > 1:
                del tags[str(by_name)]
                self._set_tags(tags)
                return [{"Untagged": by_name.familiar}]
            users = self.in_use(image_id)
            repositories = {reference.parse(t).name for t in names}
            if not force and not by_name and len(repositories) > 1:
                raise errors.Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - image "
                                      "is referenced in multiple repositories")
            if users and not force:
                raise errors.Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - image "
                                      f"is being used by container {users[0]}")
            events = [{"Untagged": reference.parse(t).familiar} for t in names]
            for tag in names:
                del tags[tag]
            self._set_tags(tags)
            if users:  # forced: untagged, kept for the container that runs on it
                return events
            record = json.loads(self._record_path(image_id).read_text())
            events += [{"Untagged": reference.parse(d).familiar} for d in record.get("repo_digests", [])]
            self._record_path(image_id).unlink()
            own = json.loads(self.read_blob(image_id)).get("rootfs", {}).get("diff_ids", [])
            for diff_id in own:
                with contextlib.suppress(layers.LayerError, OSError):
                    self.layers.unref(diff_id, f"image:{image_id}")
            events.append({"Deleted": image_id})
            events += self._collect(own)  # its own layers, if nobody else holds them: never others'
        return events
    # --8<-- [end:remove]

    def references(self) -> tuple[set[str], set[str]]:
        """The blobs and the layers (diff IDs) that the recorded images need."""
        blobs, diff_ids = set(), set()
        for image_id, record in self._records().items():
            blobs |= {image_id, record["manifest"], *(d.rpartition("@")[2] for d in record["repo_digests"])}
            with contextlib.suppress(OSError, ValueError, KeyError):
                manifest = json.loads(self.read_blob(record["manifest"]))
                blobs |= {layer["digest"] for layer in manifest.get("layers", [])}
                diff_ids |= set(json.loads(self.read_blob(image_id))["rootfs"]["diff_ids"])
        return blobs, diff_ids

    def _collect(self, diff_ids: list[str]) -> list[dict[str, str]]:
        """Delete blobs no image references nor pull leases, and those of ``diff_ids`` nobody holds now.

        Only the layers named: the layer store is shared (chapter 04's ``--layer`` layers, commits,
        the build cache), and a layer nobody holds is not necessarily ours to delete.
        """
        blobs = self.references()[0] | self._leased()
        for path in (self.root / "blobs" / "sha256").iterdir():
            if f"sha256:{path.name}" not in blobs:
                path.unlink(missing_ok=True)
        return [{"Deleted": diff_id} for diff_id in self.layers.remove_unused(only=diff_ids)]

    def release(self, holder: str, diff_ids: list[str]) -> None:
        """Drop a temporary hold (a pull, a load in progress) on some layers, and its lease."""
        (self.root / "leases" / f"{quote(holder, safe='')}.json").unlink(missing_ok=True)
        for diff_id in diff_ids:
            with contextlib.suppress(EngineError, OSError):
                if self.layers.has(diff_id):
                    self.layers.unref(diff_id, holder)

    def roll_back(self, added: list[str], holder: str, diff_ids: list[str]) -> None:
        """Undo a failed pull or load: its blobs and layers go, unless an image or another pull uses them."""
        self.release(holder, diff_ids)
        with self.locked():
            used = self.references()[0] | self._leased()
            for digest in added:
                if digest not in used:
                    self.blob_path(digest).unlink(missing_ok=True)
            self.layers.remove_unused(only=diff_ids)  # the layers it unpacked, held by nobody now

    def prune(self) -> list[dict[str, str]]:
        """``docker image prune``: delete dangling images (no tag, no container), then unused layers."""
        events = []
        tagged = set(self.tags().values())
        for image_id in self._records():
            if image_id not in tagged and not self.in_use(image_id):
                events += self.remove(image_id)
        with self.locked():
            self.clean_temp()
            events += self._collect([])  # blobs nothing references (each removal took its own layers)
        return events
