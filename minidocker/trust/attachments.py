"""Chapter 16: where signatures live in a registry: an OCI manifest tagged ``sha256-HEX.sig``.

Registries have no place for signatures, so cosign (and containers/image after it) made one out of
what every registry has: next to the image, in the same repository, a tag derived from the signed
manifest's digest (``sha256:abc…`` → ``sha256-abc….sig``) names an OCI image manifest whose layers
are the signatures: each layer a payload blob (``application/vnd.dev.cosign.simplesigning.v1+json``)
with its signature in the layer's annotation ``dev.cosignproject.cosign/signature``. The config is
an OCI image config with the payloads' digests as its ``rootfs.diff_ids``. Signing again adds a
layer (the manifest is read, extended and put back); a registry that knows nothing of signatures
stores and serves them like any image.

Example::

    >>> attach(reg, "app", "sha256:4b3e…", payload, signature)
    'sha256-4b3e….sig'
    >>> [s.annotations[ANNOTATION][:8] for s in fetch(reg, "app", "sha256:4b3e…")]
    ['MEUCIQD4']
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

from minidocker.core import digests
from minidocker.images import manifest
from minidocker.images.distribution import Registry, RegistryError
from minidocker.trust.signature import ANNOTATION, MEDIA_TYPE

__all__ = ["MAX_PAYLOAD", "MAX_SIGNATURES", "Attached", "attach", "fetch", "signature_tag"]

MAX_PAYLOAD = 4 << 20  # containers/image's limit for a signature's body
MAX_SIGNATURES = 64  # layers of one .sig manifest read at most: a verifier is not a download manager


@dataclass
class Attached:
    """One signature as stored: the payload's bytes and the layer's annotations (untrusted, both)."""

    payload: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        """The base64 signature the layer carries ('' if none)."""
        return self.annotations.get(ANNOTATION, "")


def signature_tag(digest: str) -> str:
    """``sha256:HEX`` → ``sha256-HEX.sig``, cosign's and containers/image's tag for its signatures."""
    algorithm, hexdigits = digests.check_digest(digest)
    return f"{algorithm}-{hexdigits}.sig"


# --8<-- [start:fetch]
def fetch(reg: Registry, repository: str, digest: str) -> list[Attached]:
    """The signatures stored for the manifest ``digest`` of ``repository`` ([] if there are none)."""
    try:
        sigs = reg.get_manifest(repository, signature_tag(digest))
    except RegistryError as e:
        if e.status == 404:
            return []
        raise
    found = []
    for layer in sigs.document.get("layers", [])[:MAX_SIGNATURES]:
        if layer.get("mediaType") != MEDIA_TYPE:
            continue  # attestations and other attachments share the scheme: not ours to read
        manifest.checked_size(layer, f"signature {str(layer.get('digest'))[:19]}", MAX_PAYLOAD)
        body = io.BytesIO()
        reg.fetch_blob(repository, layer, body)  # bounded by its size, checked against its digest
        annotations = layer.get("annotations") or {}
        found.append(Attached(body.getvalue(), {str(k): str(v) for k, v in annotations.items()}))
    return found
# --8<-- [end:fetch]


# --8<-- [start:attach]
def attach(reg: Registry, repository: str, digest: str, payload: bytes, signature: str) -> str:
    """Add one signature to the ``.sig`` manifest of ``digest`` (made if missing); return its tag."""
    tag = signature_tag(digest)
    layers: list[dict] = []
    try:
        layers = list(reg.get_manifest(repository, tag).document.get("layers", []))
    except RegistryError as e:
        if e.status != 404:
            raise
    layer = {"mediaType": MEDIA_TYPE, "digest": digests.digest_of(payload), "size": len(payload),
             "annotations": {ANNOTATION: signature}}
    if layer not in layers:  # the very same signature again: nothing to add
        layers.append(layer)
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [entry["digest"] for entry in layers]}},
                        separators=(",", ":")).encode()
    for blob in (payload, config):
        if not reg.has_blob(repository, digests.digest_of(blob)):
            reg.upload_blob(repository, digests.digest_of(blob), len(blob), io.BytesIO(blob))
    document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                "config": {"mediaType": manifest.OCI_CONFIG, "digest": digests.digest_of(config),
                           "size": len(config)},
                "layers": layers}
    reg.put_manifest(repository, tag, json.dumps(document, separators=(",", ":")).encode(),
                     manifest.OCI_MANIFEST)
    return tag
# --8<-- [end:attach]
