"""Chapter 04: looking a path up in a stack of read-only layers, the way overlayfs does.

A merged directory is not stored anywhere: overlayfs computes it at each lookup, from the
layers' directories. Those that need the stack's view *without* mounting it compute it the same
way: the init layer (``overlay``, which mount points does the image lack?), ``docker diff`` (was a
file added or changed? what did an opaque directory hide?) and chapter 08's ``COPY``. The layers
are given top first; a layer holds plain files, whiteouts (a 0/0 character device: "deleted") and
opaque directories (``trusted.overlay.opaque=y``: "nothing below shows through").

Example::

    >>> layers = [store.path(d) for d in reversed(fs.diff_ids)]   # a container's image, top first
    >>> oct(lower_entry(layers, "/etc/passwd").st_mode)           # None: deleted, or never there
    '0o100644'
    >>> sorted(lower_names(layers, "/"))[:3]
    ['bin', 'dev', 'etc']
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from minidocker.overlay.tar import OVERLAY_OPAQUE

__all__ = ["dir_layers", "lower_entry", "lower_names"]


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


# exercise 04.8: Find the layers that make up a merged directory
# hint: component by component: keep each layer that has a directory there, top first;
#   stop at a non-directory or after an opaque one (_is_opaque).
# --8<-- [start:dir_layers]
def dir_layers(lower: Sequence[Path], parts: Sequence[str]) -> list[Path]:
    """The layers (top first) whose copy of directory ``parts`` is part of the merged directory.

    overlayfs' lookup, step by step: at each component the topmost layer that has the name decides
    what it is. A file or a whiteout there hides the name in every layer below; a directory merges
    with the directories of the layers below, down to the first *opaque* one.
    """
    layers = list(lower)
    for depth in range(len(parts)):
        merged = []
        for layer in layers:
            path = layer.joinpath(*parts[:depth + 1])
            st = _lstat(path)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):  # a file, symlink or whiteout ends the merge
                break
            merged.append(layer)
            if _is_opaque(path):
                break
        layers = merged
    return layers
# --8<-- [end:dir_layers]


# exercise 04.9: Look a path up in the stack of lower layers
# hint: for each layer of dir_layers(lower, parent parts): the first lstat that succeeds decides;
#   a whiteout means None.
# --8<-- [start:lower_entry]
def lower_entry(lower: Sequence[Path], path: str) -> os.stat_result | None:
    """What the stack ``lower`` (top first) shows at ``path``: the lstat of its topmost copy, or None."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return _lstat(lower[0]) if lower else None
    for layer in dir_layers(lower, parts[:-1]):
        st = _lstat(layer.joinpath(*parts))
        if st is not None:
            return None if _is_whiteout(st) else st
    return None
# --8<-- [end:lower_entry]


def lower_names(lower: Sequence[Path], path: str) -> set[str]:
    """The names the stack ``lower`` shows in the directory ``path``."""
    seen: dict[str, bool] = {}
    for layer in dir_layers(lower, [p for p in path.split("/") if p]):
        for entry in os.scandir(layer.joinpath(path.strip("/"))):
            seen.setdefault(entry.name, _is_whiteout(entry.stat(follow_symlinks=False)))
    return {name for name, whiteout in seen.items() if not whiteout}
