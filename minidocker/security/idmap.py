"""Chapter 06: user namespaces that can use their files: an idmapped root filesystem, no chown storm.

With ``--userns`` (chapter 02) root in the container is an unprivileged user on the host (uid
100000): even a process that escapes is nobody out there. But the image's files belong to the
host's root (uid 0), which the container's id map does not cover: inside they show up as
``nobody``, and root in the container cannot write its own ``/etc``.

Two ways out:

* **chown storm** (Docker's ``--userns-remap``): copy every layer and ``chown`` each file by
  100000. It costs a full copy of the image per id range, a stat and a chown per file.
* **idmapped mount** (Linux 5.12+, on ext4, xfs, btrfs, tmpfs, overlayfs...): mount the root
  filesystem with an id map of its own: files owned by 0 on disk *appear* owned by 100000, which
  the container sees as its root, and files it creates land on disk as 0. No file is touched.

The engine (host root) makes the idmapped mount once the container's user namespace exists:
open_tree(2) clones the rootfs as a detached mount, mount_setattr(2) attaches the namespace's id
map to it, and a helper that has joined the container's mount namespace move_mount(2)s it over
the rootfs path there. Nothing appears in the host's mount table.

Example (the engine, in ``on_created``)::

    attach_idmapped(container_pid, ["/var/cache/minidocker/rootfs/busybox"])
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError, read_report
from minidocker.core.spec import ContainerSpec
from minidocker.core.syscalls import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    MOUNT_ATTR_IDMAP,
    MOVE_MOUNT_F_EMPTY_PATH,
    MS_PRIVATE,
    MS_REC,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
)
from minidocker.overlay import stage as overlay
from minidocker.overlay.layers import LayerStore

__all__ = ["attach_idmapped", "idmap_rootfs", "idmapped_tree"]

_AT_FDCWD = -100


# exercise 06.11: A detached, idmapped copy of a directory tree
# hint: open the user namespace (O_RDONLY | O_CLOEXEC); open_tree(AT_FDCWD, path, OPEN_TREE_CLONE |
#   OPEN_TREE_CLOEXEC | AT_RECURSIVE); mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE,
#   MOUNT_ATTR_IDMAP, userns_fd=ns); close the namespace, and the tree if anything failed.
# --8<-- [start:idmapped_tree]
def idmapped_tree(path: str, userns: str) -> int:
    """A file descriptor for a detached copy of the tree at ``path``, seen through ``userns``'s id map.

    ``userns`` is a user namespace file, e.g. ``/proc/PID/ns/user``. Only a process with
    ``CAP_SYS_ADMIN`` over the filesystem (host root, for a disk filesystem) may do this.
    """
    ns = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        tree = _syscalls.open_tree(_AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
        try:
            _syscalls.mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_IDMAP, userns_fd=ns)
        except BaseException:
            os.close(tree)
            raise
        return tree
    finally:
        os.close(ns)
# --8<-- [end:idmapped_tree]


# exercise 06.12: Attach idmapped trees in the container's mount namespace
# hint: idmapped_tree() each path through /proc/PID/ns/user; fork a helper that setns()es into
#   /proc/PID/ns/mnt, makes "/" MS_REC | MS_PRIVATE, move_mount()s each tree over its own path
#   (MOVE_MOUNT_F_EMPTY_PATH), calls then(); it reports a failure through a pipe; close the trees.
# --8<-- [start:attach_idmapped]
def attach_idmapped(pid: int, paths: Sequence[str], then: Callable[[], None] | None = None) -> None:
    """Mount each of ``paths`` over itself in ``pid``'s mount namespace, idmapped by its user namespace.

    A forked helper joins the container's mount namespace (the engine must stay where it is),
    makes its mounts private so that nothing propagates back to the host, attaches the trees,
    and runs ``then`` there (chapter 04's overlay is mounted again on the idmapped layers).
    """
    trees: list[int] = []
    why_r, why_w = os.pipe2(os.O_CLOEXEC)
    try:
        for path in paths:
            trees.append(idmapped_tree(path, f"/proc/{pid}/ns/user"))
        helper = os.fork()
        if helper == 0:
            try:
                with open(f"/proc/{pid}/ns/mnt") as mnt:
                    _syscalls.setns(mnt.fileno(), _syscalls.CLONE_NEWNS)
                _syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
                for path, tree in zip(paths, trees, strict=True):
                    _syscalls.move_mount(tree, "", _AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH)
                if then is not None:
                    then()
                os._exit(0)
            except BaseException as e:
                with contextlib.suppress(BaseException):
                    os.write(why_w, str(e).encode())
                os._exit(1)
        os.close(why_w)
        why_w = -1
        why = read_report(why_r)
        os.waitpid(helper, 0)
        if why:
            raise OSError(f"idmapping the container's files: {why}")
    finally:
        for fd in [*trees, why_w] if why_w >= 0 else trees:
            os.close(fd)
# --8<-- [end:attach_idmapped]


def _container_fs(spec: ContainerSpec) -> overlay.ContainerFS | None:
    """Chapter 04's filesystem of this container, if its root is one (else a plain directory)."""
    with contextlib.suppress(EngineError, OSError):
        fs = overlay.ContainerFS.open(LayerStore(), spec.id)
        if fs.merged == Path(spec.rootfs):
            return fs
    return None


# --8<-- [start:idmap_rootfs]
def idmap_rootfs(spec: ContainerSpec) -> None:
    """With a user namespace, let the container's root own its root filesystem (an ``on_created`` hook).

    A plain directory is idmapped as a whole. overlayfs cannot be idmapped itself, but its *layers*
    can: the image's read-only layers are idmapped (shared, untouched) and the overlay is mounted
    again on them, in the container's mount namespace. The upper layer, the container's own, holds
    its files with their host ids (100000...), as Docker's ``--userns-remap`` does.
    """
    id_map, rootfs, layers = spec.id_map, spec.rootfs, _container_fs(spec)
    if id_map is None:
        return

    def attach(pid: int) -> None:
        try:
            if layers is None:
                attach_idmapped(pid, [rootfs])
                return
            st = os.stat(layers.upper)  # the image root's owner, as chapter 04 made it: remap it
            if not id_map.outside <= st.st_uid < id_map.outside + id_map.count:  # (once: a restart keeps it)
                os.chown(layers.upper, id_map.outside + st.st_uid, id_map.outside + st.st_gid)
            lower = [str(p) for p in layers.lowerdirs()]
            attach_idmapped(pid, lower,
                            then=lambda: overlay.mount_overlay(rootfs, lower, layers.upper, layers.work))
        except OSError as e:
            print(f"minidocker: warning: --userns without idmapped files ({e}): the container's root "
                  "sees the image's files as nobody", file=sys.stderr)

    spec.add_hook("on_created", attach)
# --8<-- [end:idmap_rootfs]
