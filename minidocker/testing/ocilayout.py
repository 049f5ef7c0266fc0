"""Write an OCI image layout: a directory of blobs plus ``index.json``, what skopeo and umoci read.

With no Docker Hub, the tests, notebooks and demo of the registry chapter make their images
themselves: layers are tarballs (busybox's rootfs, or any bytes), the config lists their
uncompressed digests, the manifest lists config and layers, and ``index.json`` names the manifest
with a tag. ``skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG`` then pushes it like any image.

Example::

    >>> from minidocker import rootfs
    >>> write_image(Path("/tmp/layout"), "latest", [rootfs.busybox_tar().read_bytes()], cmd=["/bin/sh"])
    {'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:…', 'size': 402, …}
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from minidocker.core.atomic import atomic_write

__all__ = ["write_blob", "write_image", "write_index"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def write_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    """Store ``data`` under ``blobs/sha256/HEX``; return its descriptor."""
    hexdigest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / hexdigest
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        atomic_write(path, data)
    return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": len(data)}


def _tag(layout: Path, tag: str | None, descriptor: dict[str, Any]) -> None:
    """Name ``descriptor`` ``tag`` in ``index.json`` (None: only the blobs, e.g. an index's children)."""
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if tag is None:
        return
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"].append({**descriptor, "annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps(index, indent=2))


def write_image(layout: Path, tag: str | None, layers: list[bytes], *, cmd: list[str] | None = None,
                architecture: str = "amd64", compress: bool = True,
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Write an image of ``layers`` (tar bytes, gzipped if ``compress``); return its manifest's descriptor."""
    layout.mkdir(parents=True, exist_ok=True)
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    descriptors, diff_ids = [], []
    for tar in layers:
        diff_ids.append(f"sha256:{hashlib.sha256(tar).hexdigest()}")
        blob = gzip.compress(tar, compresslevel=6, mtime=0) if compress else tar
        descriptors.append(write_blob(layout, blob, layer_type))
    config = {"architecture": architecture, "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": cmd or ["/bin/sh"], "Labels": labels or {}},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": "minidocker _ocilayout"} for _ in layers]}
    config_descriptor = write_blob(layout, json.dumps(config, sort_keys=True).encode(),
                                   "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                "layers": descriptors}
    descriptor = write_blob(layout, json.dumps(manifest, indent=2).encode(), OCI_MANIFEST)
    descriptor["platform"] = {"architecture": architecture, "os": "linux"}
    _tag(layout, tag, descriptor)
    return descriptor


def write_index(layout: Path, tag: str, manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """Write a multi-platform index of ``manifests`` (descriptors with ``platform``) under ``tag``."""
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{k: v for k, v in m.items() if k != "annotations"} for m in manifests]}
    descriptor = write_blob(layout, json.dumps(index, indent=2).encode(), OCI_INDEX)
    _tag(layout, tag, descriptor)
    return descriptor
