"""Chapter 07: what an image is made of: indexes, manifests, configs and layers, named by digest.

An image is a small graph of JSON documents and tarballs, each stored under the sha256 of its bytes
(its *digest*), each pointing at the next by digest through a *descriptor*
(``{"mediaType", "digest", "size"}``)::

    index (one per tag, optional)  ──> manifest per platform ──> config  (how to run it, diff_ids)
                                                             └─> layers  (compressed tarballs)

Because every pointer is a hash, the digest of the top document pins the whole graph: that is why
``busybox@sha256:…`` can be trusted wherever it came from, *if* we check every hash on the way.

Two vocabularies exist, Docker's and OCI's, with the same structure (see ``MEDIA_TYPES``). Digests
themselves (compute, validate, verify) are :mod:`minidocker.core.digests`, shared with the registry.

Example::

    >>> Platform.parse("linux/arm64")
    Platform(os='linux', architecture='arm64', variant='v8')
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass
from typing import Any

from minidocker.core.process import EngineError

__all__ = ["ACCEPT", "INDEX_TYPES", "LAYER_TYPES", "MANIFEST_TYPES", "MAX_CONFIG", "MAX_MANIFEST", "Platform",
           "checked_size", "compression_of", "parse_manifest", "select_manifest"]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# Ask for all four, or registries "helpfully" downgrade (to one platform, or to dead schema 1).
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
LAYER_TYPES = {
    OCI_LAYER: None, f"{OCI_LAYER}+gzip": "gzip", f"{OCI_LAYER}+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": None, DOCKER_LAYER: "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
MEDIA_TYPES = {"index": INDEX_TYPES, "manifest": MANIFEST_TYPES, "config": (OCI_CONFIG, DOCKER_CONFIG),
               "layer": tuple(LAYER_TYPES)}
ATTESTATION = "attestation-manifest"
# What we read whole into memory is bounded; layers stream to disk, as long as their descriptor says.
MAX_MANIFEST = 4 << 20  # a manifest or index: Docker's limit (and the distribution spec's)
MAX_CONFIG = 8 << 20  # an image config (JSON, read whole): ours, far above the largest we have seen


@dataclass(frozen=True)
class Platform:
    """An ``os/architecture[/variant]`` such as ``linux/amd64`` or ``linux/arm/v7``."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64`` -> ``Platform("linux", "arm64", "v8")``; a bad string is an EngineError."""
        parts = text.lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise EngineError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")
        variant = parts[2] if len(parts) == 3 else ("v8" if parts[1] == "arm64" else "")
        return cls(parts[0], {"x86_64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1]), variant)

    @classmethod
    def host(cls) -> Platform:
        """The platform of this machine, in the names Go (and so every image) uses."""
        machine = _platform.machine().lower()
        names = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"),
                 "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
                 "i686": ("386", ""), "i386": ("386", "")}
        architecture, variant = names.get(machine, (machine, ""))
        return cls("linux", architecture, variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


# exercise 07.4: Pick this platform's manifest from an index
# hint: skip attestations (vnd.docker.reference.type or os 'unknown'); match os and architecture; variants in
#   order of preference (arm64: v8 then none; arm/vN: vN down to v5 then none; else want's variant then
#   none, or any); return the best entry, or an EngineError 'no matching manifest for PLATFORM ...'.
# --8<-- [start:select_manifest]
def select_manifest(index: dict[str, Any], want: Platform) -> dict[str, Any]:
    """Pick the descriptor of ``want``'s manifest from an index (or Docker manifest list).

    Entries for ``unknown/unknown`` are build attestations (SBOMs, provenance), not images: skip
    them. A missing variant on arm64 means v8; an arm/v7 machine also runs v6 and v5 images.
    """
    if want.architecture == "arm64":
        order = ["v8", ""]
    elif want.architecture == "arm":
        newest = int(want.variant[1:]) if want.variant[1:].isdigit() else 7
        order = [f"v{n}" for n in range(newest, 4, -1)] + [""]
    else:
        order = [want.variant, ""] if want.variant else []  # empty: any variant will do
    candidates = []
    for entry in index.get("manifests", []):
        wanted = entry.get("platform") or {}
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == ATTESTATION or wanted.get("os") == "unknown":
            continue
        if (wanted.get("os"), wanted.get("architecture")) != (want.os, want.architecture):
            continue
        variant = wanted.get("variant", "")
        if order and variant not in order:
            continue
        candidates.append((order.index(variant) if order else 0, entry))
    if not candidates:
        raise EngineError(f"no matching manifest for {want} in the manifest list entries")
    return min(candidates, key=lambda c: c[0])[1]
# --8<-- [end:select_manifest]


# exercise 07.5: Decode a manifest or an index, and refuse what we cannot use
# hint: json.loads (not JSON: EngineError); the media type is the document's, else Content-Type without
#   parameters; refuse SCHEMA1 and schemaVersion 1; none at all: an index if it has 'manifests'; refuse
#   types outside INDEX_TYPES + MANIFEST_TYPES, and a manifest without 'config'; return (type, document).
# --8<-- [start:parse_manifest]
def parse_manifest(raw: bytes, content_type: str | None, what: str) -> tuple[str, dict[str, Any]]:
    """Decode a manifest or index and tell which it is; refuse what we cannot (or must not) use.

    The media type comes from the document itself, or from the ``Content-Type`` header when the
    document omits it (OCI allows that). Schema 1 (unsigned JSON, no content addressing of the
    config, retired by Docker Hub in 2024) is refused.
    """
    try:
        document = json.loads(raw)
    except ValueError:
        raise EngineError(f"{what}: the registry sent a manifest that is not JSON") from None
    media_type = document.get("mediaType") or (content_type or "").split(";")[0].strip()
    if media_type in SCHEMA1 or document.get("schemaVersion") == 1:
        raise EngineError(f"{what}: schema 1 manifests are not supported: push the image again "
                          "with a current client")
    if not media_type:  # no type anywhere: infer it from the shape, as containerd does
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in INDEX_TYPES + MANIFEST_TYPES:
        raise EngineError(f"{what}: not an image: unsupported media type {media_type!r}")
    if media_type in MANIFEST_TYPES and "config" not in document:
        raise EngineError(f"{what}: the manifest has no config")
    return media_type, document
# --8<-- [end:parse_manifest]


# --8<-- [start:checked_size]
def checked_size(descriptor: dict[str, Any], what: str, limit: int | None = None) -> int:
    """The ``size`` of a descriptor, which must be there (OCI requires it) and at most ``limit``.

    A download is only bounded by what the descriptor announced: a blob without a size could be
    endless, and a config or manifest "of 10 GB" would be read whole into memory.

        >>> checked_size({"digest": "sha256:…", "size": 32}, "layer")
        32
    """
    size = descriptor.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise EngineError(f"{what}: the descriptor has no valid size ({size!r}): an unbounded download")
    if limit is not None and size > limit:
        raise EngineError(f"{what}: {size} bytes is more than the {limit} bytes accepted")
    return size
# --8<-- [end:checked_size]


def compression_of(media_type: str, head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None`` for a layer: from its media type, else from its magic bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if media_type in LAYER_TYPES and LAYER_TYPES[media_type] is None:
        return None
    if media_type not in LAYER_TYPES:
        raise EngineError(f"unsupported layer media type {media_type!r}")
    return None if head[257:262] == b"ustar" else LAYER_TYPES[media_type]
