"""Chapter 10: ``docker export``: a container's filesystem, flattened, as one tar.

An image is a stack of layers; a container adds its own on top. ``docker export`` forgets the
stack: it writes the tree the container sees at ``/`` (its overlay, merged), as ``docker import``
(:mod:`minidocker.daemon.imports`) reads it back into a one-layer image. What is *mounted* in the
container (volumes, binds, ``/proc``) is not its filesystem and is not exported, as with dockerd: we
read the overlay from the host's side, not ``/proc/PID/root``. A running container is paused
(its cgroup frozen) while the tree is read, so no process of it can swap a directory for a symlink
between our steps, nor change files half-way through the archive.

Example::

    with open("web.tar", "wb") as out:
        export(images, container, out)        # $ docker export web > web.tar
"""

from __future__ import annotations

from typing import Any, BinaryIO

from minidocker.core import errors
from minidocker.daemon.archive import pack
from minidocker.daemon.images import paused

__all__ = ["export"]


# --8<-- [start:export]
def export(images: Any, container: Any, out: BinaryIO) -> None:
    """Write ``container``'s merged root filesystem to ``out`` as a tar (paused meanwhile if it runs)."""
    try:
        fs = images.container_fs(container.id)
    except errors.EngineError:
        raise errors.NotFound(f"container {container.id[:12]} has no filesystem") from None
    mounted_here = not fs.mounted()  # a stopped container's overlay is mounted for the export only
    root = fs.mount()
    try:
        pid = int(container.state.get("Pid") or 0) if container.running else 0
        with paused(pid):
            pack(str(root), "/", out, container.id)  # each entry opened below the root, never followed
    finally:
        if mounted_here:
            fs.unmount()
# --8<-- [end:export]
