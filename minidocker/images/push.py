"""Chapter 07: ``docker push``: send an image's blobs, then its manifest, to a registry.

A push is a pull backwards, and just as content-addressed::

    HEAD blobs/DIGEST                   the registry has it already?       -> "Layer already exists"
    POST blobs/uploads/?mount=D&from=R  it has it in another repository?   -> "Mounted from R"
    POST blobs/uploads/ + PUT ?digest=D upload it                          -> "Pushed"
    PUT  manifests/TAG                  last, once everything it names is there

The blobs pushed are the very bytes pulled (the content store keeps them), so the digest of the
pushed manifest equals the pulled one: an image keeps its name across registries.

Example::

    >>> push("127.0.0.1:5000/team/busybox:v1")
    'sha256:…'
"""

from __future__ import annotations

import gzip
import io
import json
import platform as _platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minidocker import rootfs
from minidocker.core import digests
from minidocker.core.process import DEFAULT_PATH, EngineError
from minidocker.images import distribution as registry
from minidocker.images import manifest, reference
from minidocker.images.progress import bar
from minidocker.images.store import ImageStore

__all__ = ["MAX_CONCURRENT_UPLOADS", "busybox_image", "push", "seed_busybox"]

MAX_CONCURRENT_UPLOADS = 5  # Docker's default (dockerd --max-concurrent-uploads)
Progress = Callable[[dict[str, Any]], None]


# --8<-- [start:push]
# --8<-- [start:push_part1]
def push(name: str, *, store: ImageStore | None = None, progress: Progress | None = None) -> str:
    """Push the image tagged ``name`` to its registry; return the manifest digest the registry has."""
# --8<-- [end:push_part1]
    store = store or ImageStore()
    emit = progress or (lambda _event: None)
    # --8<-- [start:push_part2]
    ref = reference.parse(name)
    if ref.digest:
        raise EngineError(f"cannot push a digest reference ({name}): push a tag")
    image = store.get(str(ref))
    reg = registry.connect(ref.registry)
    emit({"status": f"The push refers to repository [{ref.name}]"})
    # Where else on this registry the image already lives: blobs can be mounted from there.
    sources = [r.repository for r in map(reference.parse, image.repo_tags + image.repo_digests)
               if r.registry == ref.registry and r.repository != ref.repository]
    descriptors = list(reversed(image.manifest.get("layers", [])))
    for descriptor in descriptors:
        emit({"status": "Preparing", "progressDetail": {}, "id": descriptor["digest"][7:19]})

    def send(descriptor: dict[str, Any], quiet: bool = False) -> None:
        digest, short = descriptor["digest"], descriptor["digest"][7:19]
        say = (lambda _event: None) if quiet else emit
        if reg.has_blob(ref.repository, digest):
            return say({"status": "Layer already exists", "progressDetail": {}, "id": short})
        for source in sources:
            if reg.mount_blob(ref.repository, digest, source):
                return say({"status": f"Mounted from {source}", "progressDetail": {}, "id": short})
    # --8<-- [end:push_part2]
        total, last = descriptor["size"], [0.0]

        def pushing(done: int) -> None:
            if time.monotonic() - last[0] > 0.1 or done == total:
                last[0] = time.monotonic()
                say({"status": "Pushing", "progressDetail": {"current": done, "total": total},
                     "progress": bar(done, total), "id": short})

        # --8<-- [start:push_part3]
        with open(store.blob_path(digest), "rb") as blob:
            reg.upload_blob(ref.repository, digest, total, blob, pushing)
        return say({"status": "Pushed", "progressDetail": {}, "id": short})

    with ThreadPoolExecutor(MAX_CONCURRENT_UPLOADS, thread_name_prefix="push") as pool:
        for done in [pool.submit(send, d) for d in descriptors]:
            done.result()
    send(image.manifest["config"], quiet=True)
    raw = store.read_blob(image.manifest_digest)
    media_type = image.manifest.get("mediaType") or manifest.OCI_MANIFEST
    digest = reg.put_manifest(ref.repository, ref.reference, raw, media_type)
    store.add_image(image.id, image.manifest_digest, repo_digest=str(ref.with_digest(digest)))
    emit({"status": f"{ref.reference}: digest: {digest} size: {len(raw)}"})
    emit({"progressDetail": {}, "aux": {"Tag": ref.reference, "Digest": digest, "Size": len(raw)}})
    return digest
        # --8<-- [end:push_part3]
# --8<-- [end:push]


# --8<-- [start:seed_busybox]
def seed_busybox(registry_host: str, name: str = "library/busybox:latest") -> str:
    """Put the busybox image of chapter 00 into a registry, as ``docker.io/library/busybox`` is.

    For places without Docker Hub: a local registry seeded this way serves as Docker Hub's mirror,
    and ``run busybox`` then works unchanged. One gzip layer, a config with ``Cmd ["sh"]``; the
    bytes are reproducible, so seeding twice gives the same digest. Returns the manifest digest.
    The registry must take pushes from whoever runs this.
    """
    reg = registry.connect(registry_host)
    repository, _, tag = name.partition(":")
    blobs, raw = busybox_image()
    for blob in blobs:
        digest = digests.digest_of(blob)
        if not reg.has_blob(repository, digest):
            reg.upload_blob(repository, digest, len(blob), io.BytesIO(blob))
    return reg.put_manifest(repository, tag or "latest", raw, manifest.OCI_MANIFEST)
# --8<-- [end:seed_busybox]


def busybox_image() -> tuple[list[bytes], bytes]:
    """Chapter 00's busybox as an OCI image: ``([layer, config], manifest)``, the same bytes every time.

    Example::

        >>> blobs, raw = busybox_image()
        >>> json.loads(raw)["layers"][0]["digest"] == digests.digest_of(blobs[0])
        True
    """
    layer_tar = rootfs.busybox_tar().read_bytes()
    layer = gzip.compress(layer_tar, compresslevel=6, mtime=0)
    host = manifest.Platform.host()
    config = json.dumps({
        "architecture": host.architecture, "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digests.digest_of(layer_tar)]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"minidocker: busybox-static ({_platform.machine()})"}],
    }, sort_keys=True).encode()
    document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                "config": {"mediaType": manifest.OCI_CONFIG, "digest": digests.digest_of(config),
                           "size": len(config)},
                "layers": [{"mediaType": f"{manifest.OCI_LAYER}+gzip", "digest": digests.digest_of(layer),
                            "size": len(layer)}]}
    return [layer, config], json.dumps(document, sort_keys=True).encode()
