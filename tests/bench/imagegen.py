"""Images for the pull and large-image scenarios, generated (reproducibly) and pushed to the local registry.

There is no Docker Hub here, and a benchmark should not depend on one: the images are made from
a seeded random generator, so every run pulls the same bytes. Layers are gzip tarballs as on
Docker Hub, with a mix of file sizes (many small files, a few large ones) and of contents
(random bytes, which do not compress, like binaries; base64 text, which compresses to about 3/4).

* ``multilayer``: 6 layers, about 66 MB compressed (the pull scenario: no layer is shared with
  busybox, so every engine downloads and unpacks all of it);
* ``large``: busybox plus 5 layers of 100 MB (~500 MB, 10,000 files): the start-time scenario.

Example::

    info = push_generated(registry_host, "bench/multilayer", MULTILAYER)
    info.compressed, info.layers     # bytes, 6
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import tarfile
from dataclasses import dataclass

from minidocker import rootfs
from minidocker.core import digests
from minidocker.core.process import DEFAULT_PATH
from minidocker.images import distribution as registry
from minidocker.images import manifest

__all__ = ["LARGE", "MULTILAYER", "ImageInfo", "LayerSpec", "push_generated"]


@dataclass(frozen=True)
class LayerSpec:
    """One generated layer: about ``size`` bytes in files whose sizes are drawn from ``file_sizes``."""

    seed: int
    size: int
    file_sizes: tuple[int, ...] = (200, 2_000, 20_000, 200_000)
    weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    text_share: float = 0.3  # the share of files holding base64 text instead of random bytes
    compresslevel: int = 6


@dataclass(frozen=True)
class ImageSpec:
    layers: tuple[LayerSpec, ...]
    busybox_base: bool = False


@dataclass
class ImageInfo:
    reference: str
    layers: int
    compressed: int
    uncompressed: int
    files: int


MULTILAYER = ImageSpec(tuple(LayerSpec(seed=100 + i, size=11_000_000) for i in range(6)))
LARGE = ImageSpec(tuple(LayerSpec(seed=200 + i, size=100_000_000, file_sizes=(50_000,), weights=(1.0,),
                                  text_share=0.0, compresslevel=1) for i in range(5)), busybox_base=True)


def layer_tar(spec: LayerSpec) -> tuple[bytes, int]:
    """A reproducible tarball of generated files (fixed owners and times); returns it and its file count."""
    rng = random.Random(spec.seed)
    out = io.BytesIO()
    total = count = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        top = f"bench/layer{spec.seed}"
        for name in ("bench", top):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        directory = ""
        while total < spec.size:
            if count % 100 == 0:
                directory = f"{top}/d{count // 100:03}"
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            size = rng.choices(spec.file_sizes, spec.weights)[0]
            if rng.random() < spec.text_share:
                data = base64.encodebytes(rng.randbytes(size * 3 // 4))[:size]
            else:
                data = rng.randbytes(size)
            info = tarfile.TarInfo(f"{directory}/f{count:05}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
            count += 1
    return out.getvalue(), count


def push_generated(registry_host: str, repository: str, spec: ImageSpec, tag: str = "latest") -> ImageInfo:
    """Generate the image's layers one by one, push them and its config and manifest; describe it."""
    reg = registry.connect(registry_host)
    tars: list[tuple[bytes, int, int]] = []  # (uncompressed digest source, files, level)
    if spec.busybox_base:
        tars.append((rootfs.busybox_tar().read_bytes(), 0, 6))
    descriptors, diff_ids = [], []
    compressed = uncompressed = files = 0
    for item in [*tars, *spec.layers]:
        if isinstance(item, LayerSpec):
            raw, count = layer_tar(item)
            level = item.compresslevel
        else:
            raw, count, level = item
        blob = gzip.compress(raw, compresslevel=level, mtime=0)
        digest = digests.digest_of(blob)
        if not reg.has_blob(repository, digest):
            reg.upload_blob(repository, digest, len(blob), io.BytesIO(blob))
        descriptors.append({"mediaType": f"{manifest.OCI_LAYER}+gzip", "digest": digest, "size": len(blob)})
        diff_ids.append(digests.digest_of(raw))
        compressed += len(blob)
        uncompressed += len(raw)
        files += count
    config = json.dumps({
        "architecture": manifest.Platform.host().architecture, "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    config_digest = digests.digest_of(config)
    reg.upload_blob(repository, config_digest, len(config), io.BytesIO(config))
    document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                "config": {"mediaType": manifest.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": descriptors}
    reg.put_manifest(repository, tag, json.dumps(document, sort_keys=True).encode(), manifest.OCI_MANIFEST)
    return ImageInfo(f"{registry_host}/{repository}:{tag}", len(descriptors), compressed, uncompressed, files)
