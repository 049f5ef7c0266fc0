"""Chapter 10: ``docker import``: a tarball of a root filesystem becomes a one-layer image.

The other way round from ``docker export`` (:mod:`minidocker.daemon.export`), and the same as
chapter 04's :func:`~minidocker.overlay.layers.import_rootfs` with an image around it: the tar is
unpacked as a layer by chapter 04's safe untar (no member may leave the layer, whatever its name or
links say), packed again as the layer's gzip blob for a push, and given a config of its own: no
parent, no history but "Imported from -", and the ``--change`` lines (``CMD``, ``ENV``, ``EXPOSE``,
``WORKDIR``, ... :mod:`minidocker.daemon.commitchanges`) as its run settings.

What comes from outside is bounded: the body (or the URL's answer) is spooled to a temporary file
in the image store, root's alone, and refused past :data:`MAX_IMPORT`.

Example::

    $ docker export web | docker import -c 'CMD ["httpd", "-f"]' - web:flat
    sha256:4f2b...
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from minidocker.core import digests, errors
from minidocker.daemon import commitchanges
from minidocker.daemon.images import store_gzip_blob
from minidocker.images import manifest, reference
from minidocker.overlay.layers import import_rootfs
from minidocker.overlay.tar import LayerError, open_layer

__all__ = ["MAX_IMPORT", "import_image"]

MAX_IMPORT = 16 << 30  # 16 GiB, as docker cp's upload (routes/archive.py)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


# --8<-- [start:import_image]
def import_image(store: Any, tar: Path, repo_tag: str | None, changes: list[str], message: str = "",
                 source: str = "-") -> str:
    """Make the image of the root filesystem in ``tar`` (plain, gzip or zstd); return its ID."""
    config = commitchanges.apply({}, changes)  # a bad --change line: InvalidArgument, nothing stored
    tags = [str(reference.parse(repo_tag))] if repo_tag else []
    holder = f"load:{os.getpid()}-import-{os.urandom(4).hex()}"  # released below, or by clean_temp
    try:
        diff_id = import_rootfs(store.layers, tar, holder=holder)  # chapter 04: digest, then safe untar
    except LayerError as e:
        raise errors.InvalidArgument(f"cannot import the archive: {e}") from None
    try:
        with open_layer(tar) as plain:  # the layer's blob: the same tar, gzip-compressed
            blob, size = store_gzip_blob(store, plain)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        image_config = {
            "architecture": _ARCH.get(platform.machine(), platform.machine()), "os": "linux",
            "created": now, "config": config, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": "", "comment": message or f"Imported from {source}"}]}
        if message:
            image_config["comment"] = message
        raw_config = json.dumps(image_config, sort_keys=True).encode()
        document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                    "config": {"mediaType": manifest.OCI_CONFIG, "digest": digests.digest_of(raw_config),
                               "size": len(raw_config)},
                    "layers": [{"mediaType": f"{manifest.OCI_LAYER}+gzip", "digest": blob, "size": size}]}
        raw_manifest = json.dumps(document, sort_keys=True).encode()
        for data in (raw_config, raw_manifest):
            store.put_blob(data)
        return store.add_image(digests.digest_of(raw_config), digests.digest_of(raw_manifest), tags=tags).id
    finally:
        with contextlib.suppress(Exception):
            store.layers.unref(diff_id, holder)  # the image holds it now (or nothing does)
# --8<-- [end:import_image]
