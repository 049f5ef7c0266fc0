"""Chapter 08: ``COPY`` and ``ADD``: files from the context (or another stage) become a layer.

No container is needed to copy files into an image: a layer is a tar, so ``COPY`` *writes one*.
It works in two steps:

1. :func:`plan` decides every entry of the new layer: which source file goes where, with which
   owner and mode, plus the directories above it (with the image's own metadata when they exist,
   so the layer changes nothing else). It also computes the sources' *checksum* (content, mode,
   owner and name of every file, never the times): the build cache's key for this step.
2. :func:`write_layer` writes those entries as a tar, only if the cache had no layer for them.

Sources are looked up in an :class:`~minidocker.build.imagefs.ImageFS`: the unpacked context, or
another stage's layers. A source outside it (``../x``) is refused; a symlink among the sources
is copied as a symlink, and one named as a source is followed *inside* the context only.

``ADD`` is ``COPY`` that also unpacks a local tar archive (plain, gzip, bzip2, xz) into the
destination. ``ADD URL`` would need the network at build time: minidocker refuses it.

Example::

    >>> p = plan(context_fs, ["app/", "*.txt"], "/srv/", image_fs, chown="1000")
    >>> p.checksum, [e.name for e in p.entries][:3]
    ('sha256:9f2c...', ['srv', 'srv/main.py', 'srv/notes.txt'])
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.build.context import glob_regex
from minidocker.build.imagefs import ImageFS
from minidocker.core.process import EngineError
from minidocker.overlay import tar as _tar
from minidocker.overlay.tar import WHITEOUT_PREFIX

__all__ = ["CopyError", "Entry", "Plan", "is_archive", "make_dirs", "plan", "write_layer"]


class CopyError(EngineError):
    """A COPY or ADD that cannot be done: missing source, outside the context, bad destination."""


@dataclass
class Entry:
    """One member of the layer to write: a file from ``source``, or a directory made up here."""

    name: str  # inside the image, relative: "srv/main.py"
    source: Path | None = None  # the file on disk (context or layer) whose header and content to use
    uid: int | None = None  # None: the source's own (a directory of the image, kept as it is)
    gid: int | None = None
    mode: int | None = None
    archive: bool = False  # ADD: unpack the tar ``source`` below ``name``


@dataclass
class Plan:
    """Everything a COPY will write, and the checksum of its sources (the cache key's part)."""

    entries: list[Entry] = field(default_factory=list)
    checksum: str = ""
    kind: str = "file"  # what history shows: "file", "dir" (one directory) or "multi" (several)


def is_archive(path: Path) -> bool:
    """Whether ``ADD`` should unpack ``path``: a tar, maybe gzip, bzip2 or xz compressed."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _select(source_fs: ImageFS, pattern: str, *, context: bool,
            what: str) -> list[tuple[str, Path, os.stat_result]]:
    """The entries a source names: ``(path in source_fs, real path, lstat)``, wildcards expanded."""
    depth = 0
    for part in [p for p in pattern.split("/") if p not in ("", ".")]:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise CopyError(f"{what} failed: forbidden path outside the build context: {pattern}")
    clean = posixpath.normpath("/" + pattern)
    if any(ch in clean for ch in "*?["):
        regex = glob_regex(clean.lstrip("/"))
        found, skip = [], None
        for rel, real, st in source_fs.tree("/"):
            if skip and rel.startswith(skip):
                continue
            if regex.match(rel):
                found.append(("/" + rel, real, st))
                skip = rel + "/" if stat.S_ISDIR(st.st_mode) else None
        if not found:
            raise CopyError(f"{what} failed: no source files were specified (nothing matches {pattern!r})")
        return found
    path = source_fs.resolve(clean)
    entry = source_fs.find(path)
    if entry is None:
        where = "build context or excluded by .dockerignore" if context else "the stage's image"
        raise CopyError(f"{what} failed: file not found in {where}: stat {pattern.lstrip('/') or '.'}: "
                        "file does not exist")
    return [(path, *entry)]


# exercise 08.6: Plan the layer of a COPY or ADD
# hint: _select every source; several need a dest ending in /; target = dest below workdir; a directory:
#   its tree below directory(target); an archive (ADD): one archive Entry; a file: into target if it
#   is a directory, else as target; refuse .wh. names; sort the entries; _checksum them.
# --8<-- [start:plan]
# --8<-- [start:plan_part1]
def plan(source_fs: ImageFS, sources: list[str], dest: str, image_fs: ImageFS, *, workdir: str = "/",
         chown: str | None = None, chmod: str | None = None, context: bool = True,
         add: bool = False) -> Plan:
    # --8<-- [end:plan_part1]
    """Work out the layer a ``COPY sources... dest`` (or ``ADD``) writes onto the image ``image_fs``.

    Docker's rules: a relative ``dest`` is below WORKDIR; several sources need a ``dest/``; a
    directory's *contents* are copied; a file goes *into* ``dest`` when it ends with ``/`` or is a
    directory of the image; new files belong to root unless ``--chown``.
    """
    # --8<-- [start:plan_part2]
    what = "ADD" if add else "COPY"
    owner = image_fs.lookup_user(chown) if chown else (0, 0)
    mode = int(chmod, 8) if chmod else None
    selected = [s for pattern in sources for s in _select(source_fs, pattern, context=context, what=what)]
    as_dir = dest.endswith("/") or posixpath.basename(dest) in (".", "..")
    # --8<-- [end:plan_part2]
    if len(selected) > 1 and not as_dir:
        raise CopyError(f"When using {what} with more than one source file, the destination must be a "
                        f"directory and end with a / ({dest})")
    # --8<-- [start:plan_part3]
    target = posixpath.normpath(posixpath.join(workdir or "/", dest))
    one_dir = len(selected) == 1 and stat.S_ISDIR(selected[0][2].st_mode)
    result = Plan(kind="multi" if len(selected) > 1 else "dir" if one_dir else "file")
    entries: dict[str, Entry] = {}

    def directory(path: str, new_owner: tuple[int, int]) -> str:
        return _directory(entries, image_fs, path, new_owner, what)

    for path, real, st in selected:
        base = posixpath.basename(path)
        if stat.S_ISDIR(st.st_mode):
            root = directory(target, owner)
            for rel, sub_real, _ in source_fs.tree(path):
                name = f"{root}/{rel}".lstrip("/")
                entries[name] = Entry(name, sub_real, *owner, mode)
        elif add and stat.S_ISREG(st.st_mode) and is_archive(real):
            root = directory(target, owner)
            entries[root.lstrip("/") + "/\0archive"] = Entry(root.lstrip("/"), real, archive=True)
        else:
            into = as_dir or image_fs.is_dir(target)
            parent = directory(target if into else posixpath.dirname(target), owner)
            name = posixpath.join(parent, base if into else posixpath.basename(target)).lstrip("/")
            if not name:
                raise CopyError(f"{what} failed: cannot replace the image's root directory with a file")
            entries[name] = Entry(name, real, *owner, mode)
    # --8<-- [end:plan_part3]
    for entry in entries.values():
        if any(part.startswith(WHITEOUT_PREFIX) for part in entry.name.split("/")):
            raise CopyError(f"{what} failed: /{entry.name}: names starting with {WHITEOUT_PREFIX} are "
                            "reserved for deletions in image layers")
    # --8<-- [start:plan_part4]
    result.entries = sorted(entries.values(), key=lambda e: (e.name, e.archive))
    result.checksum = _checksum(result.entries)
    return result
# --8<-- [end:plan_part4]
# --8<-- [end:plan]


def _directory(entries: dict[str, Entry], image_fs: ImageFS, path: str, owner: tuple[int, int],
               what: str) -> str:
    """Put directory ``path`` and its parents in ``entries`` (resolved in the image); its real path.

    A directory the image has keeps its own metadata (its copy in the layer changes nothing);
    a new one is 0755, owned by ``owner``.
    """
    real = "/"
    for part in ImageFS.parts(path):
        real = image_fs.resolve(posixpath.join(real, part))
        name = real.lstrip("/")
        found = image_fs.find(real)
        if found and not stat.S_ISDIR(found[1].st_mode):
            raise CopyError(f"{what} failed: cannot make {path}: {real} is not a directory")
        if name not in entries:
            entries[name] = Entry(name, found[0]) if found else Entry(name, None, *owner, 0o755)
    return real


def make_dirs(image_fs: ImageFS, path: str) -> Plan | None:
    """``WORKDIR path``: the layer that creates the directory, or None if the image has it already."""
    if image_fs.is_dir(path):
        return None
    entries: dict[str, Entry] = {}
    _directory(entries, image_fs, path, (0, 0), "WORKDIR")
    result = Plan(sorted(entries.values(), key=lambda e: e.name))
    result.checksum = _checksum(result.entries)
    return result


def _checksum(entries: list[Entry]) -> str:
    """What the cache compares: every entry's name, type, mode, owner and content; never times."""
    sha = hashlib.sha256()
    for entry in entries:
        st = os.lstat(entry.source) if entry.source else None
        kind = "archive" if entry.archive else (stat.filemode(st.st_mode)[0] if st else "d")
        mode = entry.mode if entry.mode is not None else (stat.S_IMODE(st.st_mode) if st else 0o755)
        uid = entry.uid if entry.uid is not None else (st.st_uid if st else 0)
        gid = entry.gid if entry.gid is not None else (st.st_gid if st else 0)
        sha.update(f"{entry.name}\0{kind}\0{mode:o}\0{uid}:{gid}\0".encode())
        if st and stat.S_ISLNK(st.st_mode):
            sha.update(os.readlink(entry.source).encode(errors="surrogateescape"))  # type: ignore[arg-type]
        elif st and stat.S_ISREG(st.st_mode):
            with open(entry.source, "rb") as f:  # type: ignore[arg-type]
                while chunk := f.read(1 << 20):
                    sha.update(chunk)
        sha.update(b"\n")
    return "sha256:" + sha.hexdigest()


# exercise 08.7: Write the planned entries as a layer tar
# hint: tarfile 'w|' PAX over a _tar.HashingWriter; archive entries: _unpack_archive; new directories:
#   a DIRTYPE TarInfo; others: _tar.tar_info, then the entry's uid, gid and mode; content for regular
#   files.
# --8<-- [start:write_layer]
def write_layer(entries: list[Entry], path: str | os.PathLike) -> str:
    """Write the planned entries to ``path`` as an (uncompressed) layer tar; return its diff ID."""
    now = int(time.time())
    with open(path, "wb") as raw:
        out = _tar.HashingWriter(raw)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_tar.CHUNK) as tar:
            for entry in entries:
                if entry.archive:
                    _unpack_archive(tar, entry)
                    continue
                if entry.source is None:
                    info = tarfile.TarInfo(entry.name)
                    info.type, info.mtime = tarfile.DIRTYPE, now
                else:
                    info = _tar.tar_info(tar, entry.source, entry.name)
                    if info is None:
                        continue  # a socket
                for key in ("uid", "gid"):
                    if getattr(entry, key) is not None:
                        setattr(info, key, getattr(entry, key))
                if entry.mode is not None and not info.issym():
                    info.mode = entry.mode
                if info.isreg():
                    with open(entry.source, "rb") as f:  # type: ignore[arg-type]
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return out.digest()
# --8<-- [end:write_layer]


def _unpack_archive(tar: tarfile.TarFile, entry: Entry) -> None:
    """ADD's archive: each of its members, renamed below ``entry.name``, checked like a layer's."""
    prefix = entry.name
    with tarfile.open(entry.source, "r:*") as archive:  # type: ignore[arg-type]
        for member in archive:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise CopyError(f"ADD failed: {entry.source.name}: member {member.name!r} leaves the "  # type: ignore[union-attr]
                                "destination ('..')")
            if any(p.startswith(WHITEOUT_PREFIX) for p in parts):
                raise CopyError(f"ADD failed: member {member.name!r}: names starting with .wh. are reserved")
            if member.isdev():
                raise CopyError(f"ADD failed: member {member.name!r} is a device node")
            if not parts:
                continue
            member.name = "/".join([prefix, *parts]).lstrip("/")
            if member.islnk():
                target = [p for p in member.linkname.split("/") if p]
                member.linkname = "/".join([prefix, *target]).lstrip("/")
            tar.addfile(member, archive.extractfile(member) if member.isreg() else None)
