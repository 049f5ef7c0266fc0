"""Chapter 04: what a container changed, as ``docker diff`` shows it and as a new layer (``docker commit``).

With overlayfs a container's changes are not something to compute: they *are* its upper
directory. A file there was added or changed (changed if the layers below have it too); a
character device 0/0 there is a deleted file (a whiteout); a directory with the xattr
``trusted.overlay.opaque=y`` was deleted and made again, hiding everything below it.

The reverse of unpacking a layer is then a walk of the upper directory, writing each entry to a
tar and turning overlayfs' markers back into OCI's: a whiteout becomes an empty ``.wh.NAME``, an
opaque directory gets a ``.wh..wh..opq`` entry. Stack that tar on the image's layers and you get
the container's view back, which is how ``docker commit`` and each ``RUN`` of ``docker build`` work.

Example::

    >>> diff(fs)                      # fs: an overlay.ContainerFS
    [('C', '/etc'), ('D', '/etc/group'), ('A', '/hello')]
    >>> commit(fs, store).diff_id     # a new layer in the store; stack it on fs.diff_ids
    'sha256:9b1e...'

Run it: ``python -m minidocker.overlay.changes diff CONTAINER``, ``commit CONTAINER [-o LAYER.tar]`` or
``rm CONTAINER...``, for a filesystem kept with ``python -m minidocker.overlay --keep``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from minidocker.overlay import tar as _tar
from minidocker.overlay.layers import LayerStore
from minidocker.overlay.lookup import lower_entry, lower_names
from minidocker.overlay.stage import ContainerFS
from minidocker.overlay.tar import OPAQUE, WHITEOUT_PREFIX, LayerError

__all__ = ["Committed", "commit", "diff", "export_changes"]


class _Entry(NamedTuple):
    """One entry of the upper directory, as the walk found it."""

    path: str  # relative to the upper directory
    st: os.stat_result  # not followed
    parent: int  # the open directory holding it
    name: str
    fd: int | None  # a directory: its own descriptor, open while its children are walked


def _entries(dir_fd: int) -> list[str]:
    """The names in the open directory ``dir_fd``, sorted."""
    with os.scandir(dir_fd) as listing:
        return sorted(entry.name for entry in listing)


def _walk(dir_fd: int, rel: str = "") -> Iterator[_Entry]:
    """Every entry below the open directory ``dir_fd``, sorted, parents before children.

    Descends by descriptors, each directory opened ``O_NOFOLLOW`` relative to its parent: a path
    would be resolved again at each step, and a running container may have swapped a directory
    for a symlink to the host's ``/etc`` since it was listed (CVE-2018-15664's class). Such a swap
    is an error here, never a walk of the host's files.
    """
    for name in _entries(dir_fd):
        path = f"{rel}/{name}" if rel else name
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            yield _Entry(path, st, dir_fd, name, None)
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                raise
            raise LayerError(f"/{path} changed while it was read: pause the container first") from None
        try:
            yield _Entry(path, os.fstat(fd), dir_fd, name, fd)
            yield from _walk(fd, path)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _upper(fs: ContainerFS) -> Iterator[int]:
    """The container's upper directory, open: the walk starts from this descriptor."""
    fd = os.open(fs.upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(fd: int) -> bool:
    """Whether the open directory ``fd`` is opaque (overlayfs' xattr, read through the descriptor)."""
    try:
        return os.getxattr(fd, _tar.OVERLAY_OPAQUE) == b"y"
    except OSError:
        return False


# exercise 04.11: List a container's changes like docker diff
# hint: _walk(fd of fs.upper) (_upper): whiteout -> D; else C if lower_entry(lower, path) else A;
#   an opaque directory (_is_opaque(fd)) that existed below also hides lower_names(...) it lacks: D.
# --8<-- [start:diff]
def diff(fs: ContainerFS) -> list[tuple[str, str]]:
    """The container's changes as ``docker diff`` lists them: ``("A"|"C"|"D", "/path")``, sorted.

    Read straight from the upper directory; the layers below only tell "added" from "changed",
    and which names an opaque directory hides. Mounted or not, running or not, it is the same.
    """
    lower = fs.lowerdirs()
    changes = []
    with _upper(fs) as upper:
        for path, st, _parent, _name, fd in _walk(upper):
            if _is_whiteout(st):
                changes.append(("D", "/" + path))
                continue
            below = lower_entry(lower, path)
            changes.append(("C" if below is not None else "A", "/" + path))
            if fd is not None and below is not None and _is_opaque(fd):
                hidden = lower_names(lower, path) - set(_entries(fd))
                changes += [("D", f"/{path}/{name}") for name in hidden]
    return sorted(changes, key=lambda change: change[1])
# --8<-- [end:diff]


# exercise 04.12: Write a container's changes as an OCI layer tar
# hint: tarfile 'w|' (PAX) over a _tar.HashingWriter; whiteout -> empty DIR/.wh.NAME; devices refused;
#   else _tar.add_at(tar, parent, name, path, fd=fd) (never a path: the container may swap it), plus
#   DIR/.wh..wh..opq after an opaque directory.
# --8<-- [start:export_changes]
def export_changes(fs: ContainerFS, out: BinaryIO) -> str:
    """Write the container's changes to ``out`` as an OCI layer tar; return its diff ID.

    Entries come sorted, parents first. overlayfs' whiteouts become OCI whiteout files, opaque
    directories get their ``.wh..wh..opq`` marker; overlayfs' own xattrs are left out.
    """
    writer = _tar.HashingWriter(out)
    with (_upper(fs) as upper,
          tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_tar.CHUNK) as tar):
        for path, st, parent, name, fd in _walk(upper):
            if _is_whiteout(st):
                parent, _, name = path.rpartition("/")
                marker = tarfile.TarInfo(os.path.join(parent, WHITEOUT_PREFIX + name))
                marker.mode, marker.mtime = 0o644, int(st.st_mtime)
                tar.addfile(marker)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise LayerError(f"the container made a device node, /{path}: a layer may not hold "
                                 "one (minidocker refuses them when unpacking); remove it first")
            else:
                _tar.add_at(tar, parent, name, path, fd=fd)
                if fd is not None and _is_opaque(fd):
                    marker = tarfile.TarInfo(f"{path}/{OPAQUE}")
                    marker.mode, marker.mtime = 0o644, int(st.st_mtime)
                    tar.addfile(marker)
    return writer.digest()
# --8<-- [end:export_changes]


class Committed(NamedTuple):
    """What :func:`commit` made: the new layer's diff ID, and its tar if one was asked for."""

    diff_id: str
    tar: Path | None


# exercise 04.13: Commit the changes as a new layer of the store
# hint: export_changes into tar_path (or a file in store.scratch()), then
#   store.add(tar, expected_diff_id=..., compression='none', holder=holder).
# --8<-- [start:commit]
def commit(fs: ContainerFS, store: LayerStore, *, tar_path: str | os.PathLike | None = None,
           holder: str | None = None) -> Committed:
    """Make the container's changes a new layer in ``store`` (held by ``holder`` if given).

    The tar is written first (to ``tar_path``, kept for the caller to compress or push, or to a
    scratch file) and then added like any other layer, digest checked: the stored layer is
    exactly what the tar says. Stack it on ``fs.diff_ids`` for the container's view.
    """
    with store.scratch() as scratch:
        target = Path(tar_path) if tar_path is not None else scratch / "layer.tar"
        with open(target, "wb") as out:
            diff_id = export_changes(fs, out)
        store.add(target, expected_diff_id=diff_id, compression="none", holder=holder, trusted=True)
    return Committed(diff_id, Path(tar_path) if tar_path is not None else None)
# --8<-- [end:commit]


@contextlib.contextmanager
def _paused(container_id: str) -> Iterator[None]:
    """Freeze the container's cgroup (chapter 03) while its files are read, if it is running."""
    from minidocker.cgroups.cgroup import Cgroup
    from minidocker.core.process import EngineError

    try:
        cgroup = Cgroup.open(container_id)
    except EngineError:  # no cgroup: not running, nothing to race with
        yield
        return
    with cgroup.frozen():
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.overlay.changes diff ID | commit ID [-o LAYER.tar] | rm ID...``."""
    from minidocker.core import stage as _stage

    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        if len(argv) == 2 and argv[0] == "diff":
            with _paused(argv[1]):
                found = diff(ContainerFS.open(LayerStore(), argv[1]))
            for kind, path in found:
                print(kind, path)
            return 0
        if len(argv) in (2, 4) and argv[0] == "commit" and (len(argv) == 2 or argv[2] == "-o"):
            store = LayerStore()
            fs = ContainerFS.open(store, argv[1])
            with _paused(argv[1]):
                print(commit(fs, store, tar_path=argv[3] if len(argv) == 4 else None).diff_id)
            return 0
        if len(argv) >= 2 and argv[0] == "rm":
            for container in argv[1:]:
                ContainerFS.open(LayerStore(), container).remove()
            return 0
        print("usage: python -m minidocker.overlay.changes diff CONTAINER | commit CONTAINER "
              "[-o LAYER.tar] | rm CONTAINER...", file=sys.stderr)
        return 2

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
