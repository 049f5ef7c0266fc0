"""Chapter 09: repositories on top of the blob store: which blobs a repository has, manifests, tags.

The blob store (``registry/blobstore.py``) knows bytes by digest and nothing about names. A repository is
a set of small *link* files that give it access to some blobs, plus its manifests and tags:

    repositories/NAME/_layers/sha256/HEX                     the repository may serve blob HEX
    repositories/NAME/_manifests/revisions/sha256/HEX        manifest HEX is in NAME (holds its media type)
    repositories/NAME/_manifests/tags/TAG                    TAG points at a manifest (holds its digest)
    repositories/NAME/_referrers/sha256/SUBJECT/sha256:HEX   manifest HEX has ``subject`` SUBJECT

Each is written whole and renamed into place (``atomic_write``), so two server processes updating
the same tag concurrently leave one of the two values, never a mixture. A manifest is only
accepted when everything it points at is already there: a registry never holds an image it
cannot serve whole.

Example::

    >>> repos = Repositories(BlobStore("/tmp/storage"))
    >>> digest, _ = repos.put_manifest("busybox", "latest", body, OCI_MANIFEST)
    >>> repos.get_manifest("busybox", "latest")[0] == digest
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidocker.core.atomic import atomic_write
from minidocker.core.digests import DigestError, check_digest, digest_of
from minidocker.core.errors import InvalidArgument, Kind, NotFound
from minidocker.registry.blobstore import BlobStore

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "Manifest",
    "Repositories",
    "check_name",
    "check_tag",
    "parse_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """A repository name as the spec allows it (``library/busybox``), or NAME_INVALID."""
    if len(name) >= 256 or not _NAME.match(name):
        raise InvalidArgument(f"invalid repository name {name[:300]!r}: use lowercase letters, digits and "
                              "separators (.-_), components joined by '/'", code="NAME_INVALID")
    return name


def check_tag(tag: str) -> str:
    """A tag as the spec allows it (``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``), or MANIFEST_INVALID."""
    if not _TAG.match(tag):
        raise InvalidArgument(f"invalid tag {tag[:200]!r}", code="MANIFEST_INVALID")
    return tag


@dataclass
class Manifest:
    """What the registry needs to know about a manifest: its type and what it points at."""

    media_type: str
    blobs: list[tuple[str, int]] = field(default_factory=list)  # config and layers: (digest, size)
    manifests: list[tuple[str, int]] = field(default_factory=list)  # an index's children
    subject: str | None = None
    descriptor_extras: dict[str, Any] = field(default_factory=dict)  # artifactType, annotations


def _descriptor(value: Any, where: str) -> tuple[str, int]:
    if not isinstance(value, dict) or not isinstance(value.get("mediaType"), str):
        raise InvalidArgument(f"{where} is not a descriptor with a mediaType", code="MANIFEST_INVALID")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where} has no valid size", code="MANIFEST_INVALID")
    try:
        check_digest(str(value.get("digest")))
    except DigestError as e:
        raise InvalidArgument(f"{where}: {e}", code="MANIFEST_INVALID") from None
    return value["digest"], size


# exercise 09.3: Check a pushed manifest and list what it references
# hint: json.loads, schemaVersion 2; the media type is the Content-Type unless that is generic;
#   a manifest references config + layers (not those with "urls"), an index its "manifests";
#   every problem is InvalidArgument(..., code="MANIFEST_INVALID").
# --8<-- [start:parse_manifest]
# --8<-- [start:parse_manifest_part1]
def parse_manifest(body: bytes, content_type: str) -> Manifest:
    # --8<-- [end:parse_manifest_part1]
    """Check that ``body`` is an image manifest or index we can serve; say what it references.

    The media type is the request's ``Content-Type`` (kept exactly as pushed, and returned as
    ``Content-Type`` on every pull), or the body's ``mediaType`` if the client sent a generic one.
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgument(f"the manifest is not JSON: {e}", code="MANIFEST_INVALID") from None
    if not isinstance(document, dict) or document.get("schemaVersion") != 2:
        raise InvalidArgument("only schemaVersion 2 manifests are supported", code="MANIFEST_INVALID")
    # --8<-- [start:parse_manifest_part2]
    declared = document.get("mediaType")
    content_type = content_type.split(";")[0].strip()
    if content_type in _GENERIC_TYPES:
        guess = OCI_INDEX if "manifests" in document else OCI_MANIFEST
        media_type = declared if isinstance(declared, str) else guess
    elif declared is not None and declared != content_type:
        raise InvalidArgument(f"Content-Type {content_type} does not match the manifest's mediaType "
                              f"{declared}", code="MANIFEST_INVALID")
    else:
        media_type = content_type
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}", code="MANIFEST_INVALID")
    manifest = Manifest(media_type)
    if media_type in MANIFEST_TYPES:
        manifest.blobs.append(_descriptor(document.get("config"), "config"))
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("an image manifest needs a list of layers", code="MANIFEST_INVALID")
        for i, layer in enumerate(layers):
            reference = _descriptor(layer, f"layers[{i}]")
            if not layer.get("urls"):  # a "foreign" layer is served from elsewhere
                manifest.blobs.append(reference)
        artifact_type = document.get("artifactType") or document["config"]["mediaType"]
    else:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise InvalidArgument("an index needs a list of manifests", code="MANIFEST_INVALID")
        manifest.manifests = [_descriptor(m, f"manifests[{i}]") for i, m in enumerate(children)]
        artifact_type = document.get("artifactType")
    if document.get("subject") is not None:
        manifest.subject = _descriptor(document["subject"], "subject")[0]
    manifest.descriptor_extras = {k: v for k, v in (("artifactType", artifact_type),
                                                    ("annotations", document.get("annotations"))) if v}
    return manifest
# --8<-- [end:parse_manifest_part2]
# --8<-- [end:parse_manifest]


class Repositories:
    """Names over a :class:`BlobStore`: per-repository blob links, manifests, tags, referrers."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.root = blobs.root / "repositories"

    def _dir(self, name: str) -> Path:
        return self.root / check_name(name)

    @staticmethod
    def _link(base: Path, digest: str) -> Path:
        algorithm, hexdigest = check_digest(digest)
        return base / algorithm / hexdigest

    def exists(self, name: str) -> bool:
        """True once the repository has a blob or a manifest."""
        base = self._dir(name)
        return (base / "_layers").is_dir() or (base / "_manifests").is_dir()

    # -- blobs of a repository --------------------------------------------------------------------
    def link_blob(self, name: str, digest: str) -> None:
        """Give ``name`` access to a stored blob (after an upload or a cross-repository mount)."""
        link = self._link(self._dir(name) / "_layers", digest)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.touch()

    def blob_size(self, name: str, digest: str) -> int | None:
        """The blob's size if ``name`` may serve it and it is stored, else None."""
        if not self._link(self._dir(name) / "_layers", digest).exists():
            return None
        return self.blobs.size(digest)

    def unlink_blob(self, name: str, digest: str) -> bool:
        """Remove ``name``'s access to a blob (the bytes go at the next garbage collection)."""
        try:
            self._link(self._dir(name) / "_layers", digest).unlink()
            return True
        except FileNotFoundError:
            return False

    # -- manifests and tags -----------------------------------------------------------------------
    # --8<-- [start:put_manifest]
    def put_manifest(self, name: str, reference: str, body: bytes, content_type: str) -> tuple[str, Manifest]:
        """Store a manifest under a tag or its digest, if everything it references is in ``name``.

        Under a shared lock that garbage collection takes exclusively: a blob checked here cannot
        be collected before the manifest that keeps it alive is written.
        """
        manifest = parse_manifest(body, content_type)
        is_digest = ":" in reference
        algorithm = check_digest(reference)[0] if is_digest else "sha256"
        if not is_digest:
            check_tag(reference)
        digest = digest_of(body, algorithm)
        if is_digest and digest != reference:
            raise InvalidArgument(f"the manifest's digest is {digest}, not {reference}",
                                  code="DIGEST_INVALID")
        base = self._dir(name)
        with self.blobs.lock("gc", shared=True):
            for child, size in manifest.blobs:
                if self.blob_size(name, child) != size:
                    raise InvalidArgument(f"blob {child} ({size} bytes) is not in {name}: push it first",
                                          code="MANIFEST_BLOB_UNKNOWN", detail={"digest": child})
                self.blobs.touch(child)
            for child, size in manifest.manifests:
                if self.manifest_size(name, child) != size:
                    raise InvalidArgument(f"manifest {child} ({size} bytes) is not in {name}: push it first",
                                          code="MANIFEST_BLOB_UNKNOWN", detail={"digest": child})
            self.blobs.put(body, digest)
            revision = self._link(base / "_manifests" / "revisions", digest)
            revision.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(revision, manifest.media_type.encode())
            if manifest.subject:
                link = self._link(base / "_referrers", manifest.subject) / digest
                link.parent.mkdir(parents=True, exist_ok=True)
                link.touch()
            if not is_digest:
                (base / "_manifests" / "tags").mkdir(parents=True, exist_ok=True)
                atomic_write(base / "_manifests" / "tags" / reference, digest.encode())
        return digest, manifest
    # --8<-- [end:put_manifest]

    def resolve(self, name: str, reference: str) -> str:
        """The digest a tag points at (or the digest itself); MANIFEST_UNKNOWN/NAME_UNKNOWN if absent."""
        base = self._dir(name)
        if not self.exists(name):
            raise NotFound(f"repository {name} is not known to this registry", code="NAME_UNKNOWN")
        if ":" in reference:
            try:
                link = self._link(base / "_manifests" / "revisions", reference)
            except DigestError as e:
                raise InvalidArgument(str(e), code="DIGEST_INVALID") from None
            if link.exists():
                return reference
        elif _TAG.match(reference):
            with contextlib.suppress(FileNotFoundError):
                return (base / "_manifests" / "tags" / reference).read_text()
        raise NotFound(f"manifest {reference} is not in {name}", code="MANIFEST_UNKNOWN")

    def manifest_size(self, name: str, digest: str) -> int | None:
        """The manifest's size if ``name`` has it, else None."""
        if not self._link(self._dir(name) / "_manifests" / "revisions", digest).exists():
            return None
        return self.blobs.size(digest)

    def get_manifest(self, name: str, reference: str) -> tuple[str, str, bytes]:
        """``(digest, media type as pushed, body)`` of a manifest, by tag or digest."""
        digest = self.resolve(name, reference)
        try:
            link = self._link(self._dir(name) / "_manifests" / "revisions", digest)
            return digest, link.read_text(), self.blobs.read(digest)
        except FileNotFoundError:
            raise NotFound(f"manifest {reference} is not in {name}", code="MANIFEST_UNKNOWN") from None

    def delete_manifest(self, name: str, reference: str) -> None:
        """Delete a tag, or a manifest by digest with every tag that points at it."""
        base = self._dir(name)
        digest = self.resolve(name, reference)
        if ":" not in reference:
            with contextlib.suppress(FileNotFoundError):
                (base / "_manifests" / "tags" / reference).unlink()
            return
        for tag, target in self.tagged(name).items():
            if target == digest:
                with contextlib.suppress(FileNotFoundError):
                    (base / "_manifests" / "tags" / tag).unlink()
        with contextlib.suppress(FileNotFoundError, Kind, ValueError):
            _, media_type, body = self.get_manifest(name, digest)
            subject = parse_manifest(body, media_type).subject
            if subject:
                (self._link(base / "_referrers", subject) / digest).unlink()
        with contextlib.suppress(FileNotFoundError):
            self._link(base / "_manifests" / "revisions", digest).unlink()

    def tagged(self, name: str) -> dict[str, str]:
        """Every tag of ``name`` and the digest it points at."""
        tags = {}
        directory = self._dir(name) / "_manifests" / "tags"
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(directory):
                if not entry.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        tags[entry.name] = Path(entry.path).read_text()
        return tags

    def tags(self, name: str) -> list[str]:
        """The repository's tags in lexical order; NAME_UNKNOWN if there is no such repository."""
        if not self.exists(name):
            raise NotFound(f"repository {name} is not known to this registry", code="NAME_UNKNOWN")
        return sorted(self.tagged(name))

    def manifests(self, name: str) -> Iterator[str]:
        """Digests of every manifest stored in ``name``, tagged or not."""
        directory = self._dir(name) / "_manifests" / "revisions"
        with contextlib.suppress(FileNotFoundError):
            for algorithm in directory.iterdir():
                for link in algorithm.iterdir():
                    if not link.name.startswith("."):
                        yield f"{algorithm.name}:{link.name}"

    def catalog(self) -> list[str]:
        """Every repository name, sorted."""
        found = []
        for directory, subdirs, _ in os.walk(self.root):
            if "_layers" in subdirs or "_manifests" in subdirs:
                found.append(os.path.relpath(directory, self.root))
            subdirs[:] = [d for d in subdirs if not d.startswith(("_", "."))]
        return sorted(found)

    # --8<-- [start:referrers]
    def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``name`` whose ``subject`` is ``subject`` (signatures, SBOMs)."""
        found = []
        directory = self._link(self._dir(name) / "_referrers", subject)
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(directory)):
                with contextlib.suppress(Kind, FileNotFoundError):
                    digest, media_type, body = self.get_manifest(name, entry)
                    extras = parse_manifest(body, media_type).descriptor_extras
                    if artifact_type is None or extras.get("artifactType") == artifact_type:
                        found.append({"mediaType": media_type, "digest": digest, "size": len(body), **extras})
        return found
    # --8<-- [end:referrers]
