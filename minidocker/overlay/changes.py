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


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``root`` as (relative path, lstat), sorted, parents before children."""
    for entry in sorted(os.scandir(root / rel), key=lambda e: e.name):
        path = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, path)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _tar.OVERLAY_OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


# exercise 04.11: List a container's changes like docker diff
# hint: walk fs.upper: whiteout -> D; else C if lower_entry(lower, path) else A;
#   an opaque directory that existed below also hides lower_names(...) it does not hold: D.
# --8<-- [start:diff]
def diff(fs: ContainerFS) -> list[tuple[str, str]]:
    """The container's changes as ``docker diff`` lists them: ``("A"|"C"|"D", "/path")``, sorted.

    Read straight from the upper directory; the layers below only tell "added" from "changed",
    and which names an opaque directory hides. Mounted or not, running or not, it is the same.
    """
    lower = fs.lowerdirs()
    changes = []
    for path, st in _walk(fs.upper):
        if _is_whiteout(st):
            changes.append(("D", "/" + path))
            continue
        below = lower_entry(lower, path)
        changes.append(("C" if below is not None else "A", "/" + path))
        if stat.S_ISDIR(st.st_mode) and below is not None and _is_opaque(fs.upper / path):
            hidden = lower_names(lower, path) - set(os.listdir(fs.upper / path))
            changes += [("D", f"/{path}/{name}") for name in hidden]
    return sorted(changes, key=lambda change: change[1])
# --8<-- [end:diff]


# exercise 04.12: Write a container's changes as an OCI layer tar
# hint: tarfile 'w|' (PAX) over a _tar.HashingWriter; whiteout -> empty DIR/.wh.NAME; devices refused;
#   else _tar.add_path, plus DIR/.wh..wh..opq after an opaque directory.
# --8<-- [start:export_changes]
def export_changes(fs: ContainerFS, out: BinaryIO) -> str:
    """Write the container's changes to ``out`` as an OCI layer tar; return its diff ID.

    Entries come sorted, parents first. overlayfs' whiteouts become OCI whiteout files, opaque
    directories get their ``.wh..wh..opq`` marker; overlayfs' own xattrs are left out.
    """
    writer = _tar.HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_tar.CHUNK) as tar:
        for path, st in _walk(fs.upper):
            full = fs.upper / path
            if _is_whiteout(st):
                parent, _, name = path.rpartition("/")
                marker = tarfile.TarInfo(os.path.join(parent, WHITEOUT_PREFIX + name))
                marker.mode, marker.mtime = 0o644, int(st.st_mtime)
                tar.addfile(marker)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise LayerError(f"the container made a device node, /{path}: a layer may not hold "
                                 "one (minidocker refuses them when unpacking); remove it first")
            else:
                _tar.add_path(tar, full, path)
                if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
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
        store.add(target, expected_diff_id=diff_id, compression="none", holder=holder)
    return Committed(diff_id, Path(tar_path) if tar_path is not None else None)
# --8<-- [end:commit]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.overlay.changes diff ID | commit ID [-o LAYER.tar] | rm ID...``."""
    from minidocker.core import stage as _stage

    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        if len(argv) == 2 and argv[0] == "diff":
            for kind, path in diff(ContainerFS.open(LayerStore(), argv[1])):
                print(kind, path)
            return 0
        if len(argv) in (2, 4) and argv[0] == "commit" and (len(argv) == 2 or argv[2] == "-o"):
            store = LayerStore()
            fs = ContainerFS.open(store, argv[1])
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
