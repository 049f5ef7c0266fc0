"""Chapter 09: garbage collection: delete the blobs no manifest needs any more, while servers run.

Deleting a manifest or moving a tag never deletes layers: another image may share them, and
deciding that needs a look at *every* repository. That is a separate pass, mark and sweep:

1. **mark**: every manifest each repository keeps (all of them, or with ``delete_untagged`` only
   those reachable from a tag), and every blob those manifests reference;
2. **sweep**: delete every stored blob that is not marked.

Running it while servers accept pushes needs two precautions, because a push writes its layers
*before* the manifest that references them:

* a **grace period**: blobs younger than ``grace`` seconds are never deleted (they may belong to a
  push whose manifest has not arrived yet; a blob a client found with ``HEAD`` is touched too);
* a **lock**: the collector holds ``locks/gc`` exclusively; a manifest push holds it shared while
  it checks its blobs and writes itself, so no blob can vanish between that check and the write.

Run it::

    python -m minidocker.registry gc --storage DIR [--grace 3600] [--delete-untagged] [--dry-run]
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.core.errors import Kind
from minidocker.registry.blobstore import BlobStore
from minidocker.registry.store import INDEX_TYPES, Repositories, parse_manifest

__all__ = ["Collected", "collect_garbage"]


@dataclass
class Collected:
    """What a collection found and did."""

    kept: int = 0
    deleted: list[str] = field(default_factory=list)
    freed: int = 0
    untagged: list[str] = field(default_factory=list)  # "repo@digest" of manifests removed
    stale_uploads: int = 0

    def __str__(self) -> str:
        return (f"kept {self.kept} blobs, deleted {len(self.deleted)} ({self.freed} bytes), "
                f"{len(self.untagged)} untagged manifests, {self.stale_uploads} abandoned uploads")


def _references(repos: Repositories, name: str, digest: str) -> tuple[list[str], list[str], str | None]:
    """(blobs, child manifests, subject) of one manifest; empty if it is unreadable."""
    try:
        _, media_type, body = repos.get_manifest(name, digest)
        manifest = parse_manifest(body, media_type)
    except (Kind, FileNotFoundError):  # gone, or not a manifest we can read
        return [], [], None
    children = [d for d, _ in manifest.manifests] if media_type in INDEX_TYPES else []
    return [d for d, _ in manifest.blobs], children, manifest.subject


def _reachable(repos: Repositories, name: str, young: set[str]) -> set[str]:
    """Manifests of ``name`` reachable from a tag (through indexes and subjects), or too young to judge."""
    keep = set(repos.tagged(name).values()) | young
    todo = list(keep)
    while todo:
        for child in _references(repos, name, todo.pop())[1]:
            if child not in keep:
                keep.add(child)
                todo.append(child)
    stored = set(repos.manifests(name))
    changed = True
    while changed:  # a signature or SBOM lives as long as what it is about
        changed = False
        for digest in stored - keep:
            if _references(repos, name, digest)[2] in keep:
                keep.add(digest)
                changed = True
    return keep


# exercise 09.4: Collect the blobs no manifest references
# hint: under store.lock("gc", shared=False): mark every manifest of every repository (only the
#   reachable ones with delete_untagged) and what it references; then delete each unmarked blob
#   older than `grace` seconds; finally forget deleted links and abandoned uploads.
# --8<-- [start:collect_garbage]
def collect_garbage(storage: Path | str, *, grace: float = 3600, delete_untagged: bool = False,
                    dry_run: bool = False, upload_age: float = 86400) -> Collected:
    """Mark the blobs that manifests reference, sweep the rest (older than ``grace`` seconds)."""
    store = BlobStore(storage)
    repos = Repositories(store)
    result = Collected()
    now = time.time()
    with store.lock("gc", shared=False):
        marked: set[str] = set()
        for name in repos.catalog():
            manifests = set(repos.manifests(name))
            if delete_untagged:
                revisions = repos.root / name / "_manifests" / "revisions"
                young = {d for d in manifests if _mtime(revisions / d.replace(":", "/")) > now - grace}
                keep = _reachable(repos, name, young)
                for digest in sorted(manifests - keep):
                    result.untagged.append(f"{name}@{digest}")
                    if not dry_run:
                        repos.delete_manifest(name, digest)
                manifests = keep
            for digest in manifests:
                marked.add(digest)
                marked.update(_references(repos, name, digest)[0])
        for digest, mtime in list(store.blobs()):
            if digest in marked or mtime > now - grace:
                result.kept += 1
                continue
            path = store.path(digest)
            with contextlib.suppress(FileNotFoundError):
                result.freed += path.stat().st_size
                if not dry_run:
                    path.unlink()
                result.deleted.append(digest)
    if not dry_run:
        _forget_deleted(repos, set(result.deleted))
        for upload in list(store.stale_uploads(upload_age)):
            store.cancel_upload(upload)
            result.stale_uploads += 1
    return result
# --8<-- [end:collect_garbage]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _forget_deleted(repos: Repositories, deleted: set[str]) -> None:
    """Remove the repositories' links to blobs that no longer exist."""
    for name in repos.catalog():
        layers = repos.root / name / "_layers"
        for directory, _, files in os.walk(layers):
            algorithm = os.path.basename(directory)
            for hexdigest in files:
                if f"{algorithm}:{hexdigest}" in deleted:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, hexdigest))
