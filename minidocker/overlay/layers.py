"""Chapter 04: the layer store: each image layer unpacked once, named by its content, shared by all.

An image is a stack of layers; many images share their lower layers (the same Debian base), and
every container of an image uses all of them. So a layer is unpacked exactly once, into a
directory named after its *diff ID*, the sha256 of its uncompressed tar, and is never changed
again: overlayfs (``overlay/stage.py``) stacks these directories read-only under each container.

Layout, under ``$MINIDOCKER_STATE/layers`` (``/var/lib/minidocker/layers``)::

    sha256/<hex>/diff/           the unpacked layer, whiteouts in overlayfs form
    sha256/<hex>/link            its short name: l/<link> -> ../sha256/<hex>/diff
    sha256/<hex>/size            bytes of file content
    sha256/<hex>/holders/<name>  who uses it: "image:...", "container:..."; none -> prunable
    l/                           short names, so that 100 layers fit in one page of mount options
    trees/<fingerprint>          the diff ID a directory with that fingerprint was imported as
    containers/<id>/             container filesystems (overlay/stage.py)
    .tmp/                        unpacks in progress: a crash or a bad tar leaves nothing else

Adding is atomic: the tar is unpacked into ``.tmp``, verified, then renamed into place.

Example::

    >>> store = LayerStore()
    >>> diff_id = store.add("busybox.tar", holder="image:demo")   # gzip/zstd/plain, path or stream
    >>> store.path(diff_id)
    PosixPath('/var/lib/minidocker/layers/sha256/4f2c.../diff')
    >>> store.unref(diff_id, "image:demo"); store.remove_unused()
    ['sha256:4f2c...']

Run it: ``python -m minidocker.overlay.layers [ls | import PATH... | prune]`` (a container's filesystem is
removed with ``python -m minidocker.overlay.changes rm CONTAINER``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

from minidocker.core import paths as _paths
from minidocker.overlay import tar as _tar
from minidocker.overlay.tar import LayerError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import BinaryIO

__all__ = ["LayerError", "LayerStore", "canonical", "import_rootfs"]

_DIFF_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


def canonical(diff_id: str) -> str:
    """``sha256:<64 hex>`` for a diff ID given with or without its ``sha256:`` prefix."""
    match = _DIFF_ID.fullmatch(diff_id.strip().lower())
    if not match:
        raise LayerError(f"invalid layer id {diff_id!r}: expected sha256:<64 hex digits>")
    return "sha256:" + match.group(1)


class LayerStore:
    """The content-addressed layer store at ``root`` (default: ``state_dir()/layers``).

    Several processes may use one store at once (a daemon, a stage, a pull): changes to what is
    stored and to who holds what happen under a lock file, unpacking happens outside it.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else _paths.state_dir() / "layers"
        for sub in ("", "sha256", "l", "trees", "containers", ".tmp"):  # root's alone (core.paths)
            _paths.private_dir(self.root / sub, parents=True)

    def __repr__(self) -> str:
        return f"LayerStore({str(self.root)!r})"

    # --- looking up ---

    def _dir(self, diff_id: str) -> Path:
        return self.root / "sha256" / canonical(diff_id)[7:]

    def has(self, diff_id: str) -> bool:
        """Whether the layer is in the store (unpacked and complete)."""
        return self._dir(diff_id).is_dir()

    def path(self, diff_id: str) -> Path:
        """The layer's unpacked tree: what overlayfs mounts as a lower directory. Never write to it."""
        path = self._dir(diff_id) / "diff"
        if not path.is_dir():
            raise LayerError(f"layer {canonical(diff_id)} is not in the store")
        return path

    def link(self, diff_id: str) -> str:
        """The layer's short name, relative to the store root: ``l/XXXXXXXXXXXX``."""
        self.path(diff_id)
        return "l/" + (self._dir(diff_id) / "link").read_text().strip()

    def size(self, diff_id: str) -> int:
        """Bytes of file content in the layer (what ``docker images`` adds up)."""
        self.path(diff_id)
        return int((self._dir(diff_id) / "size").read_text())

    def holders(self, diff_id: str) -> set[str]:
        """Who holds the layer (images, containers); an empty set means it may be removed."""
        self.path(diff_id)
        return {unquote(p.name) for p in (self._dir(diff_id) / "holders").iterdir()}

    def layers(self) -> list[str]:
        """Every diff ID in the store, sorted."""
        names = (p.name for p in (self.root / "sha256").iterdir())
        return sorted("sha256:" + name for name in names if _DIFF_ID.fullmatch(name))

    def remembered(self, fingerprint: str | None) -> str | None:
        """The diff ID of the layer a directory with this fingerprint was imported as, if still stored."""
        if fingerprint is None:
            return None
        try:
            diff_id = canonical((self.root / "trees" / fingerprint).read_text())
        except (OSError, LayerError):  # never imported, or its record torn by a crash
            return None
        return diff_id if self.has(diff_id) else None

    def remember(self, fingerprint: str, diff_id: str) -> None:
        """Record that a directory with this fingerprint (``_tar.tree_fingerprint``) is layer ``diff_id``.

        Written atomically (``core.atomic.atomic_write``): a reader sees the whole record or none.
        """
        from minidocker.core.atomic import atomic_write  # only here: a stage's start needs only reads

        atomic_write(self.root / "trees" / fingerprint, canonical(diff_id) + "\n")

    # --- changing ---

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private empty directory inside the store, removed on exit (or by a later prune if this
        process dies): where layers are unpacked and temporary tars written, on the same filesystem."""
        import tempfile  # only when a layer is unpacked or written

        path = Path(tempfile.mkdtemp(dir=self.root / ".tmp"))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "in use": prune leaves it alone
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    # --8<-- [start:add]
    # --8<-- [start:add_part1]
    def add(self, source: str | os.PathLike | BinaryIO, *, expected_diff_id: str | None = None,
            compression: str | None = None, holder: str | None = None, trusted: bool = False) -> str:
    # --8<-- [end:add_part1]
        """Unpack a layer tar (a path or a stream; gzip, zstd or plain) into the store; return its diff ID.

        The tar is read once, as a stream: unpacked into a scratch directory while its sha256 is
        computed. A layer that is already stored is kept as it is, the new copy thrown away. With
        ``expected_diff_id`` a mismatch is an error; with ``holder`` the layer is referenced before
        anyone can prune it. A layer already stored under ``expected_diff_id`` is not unpacked again,
        but the tar is still hashed: an ID is only a claim, and whoever can name a stored layer must
        not get it without its bytes. ``trusted=True`` skips that hash when the caller computed the
        ID from this very tar itself (``import_rootfs``, ``commit``).

            >>> store.add(layer_blob, expected_diff_id=diff_id)   # a pull: hashed even if stored
        """
        # --8<-- [start:add_part2]
        if expected_diff_id is not None:
            expected_diff_id = canonical(expected_diff_id)
            if self.has(expected_diff_id):
                if not trusted:
                    actual = _tar.tar_digest(source, compression)
                    if actual != expected_diff_id:
                        raise LayerError(f"layer content does not match its id: expected {expected_diff_id}, "
                                         f"got {actual}")
                if holder:
                    self.ref(expected_diff_id, holder)
                return expected_diff_id
        from minidocker.overlay import untar as _untar  # only when a layer is unpacked

        with self.scratch() as scratch:
            (scratch / "diff").mkdir(mode=0o755)
            (scratch / "holders").mkdir()
            with _tar.open_layer(source, compression) as stream:
                reader = _tar.HashingReader(stream)
                size = _untar.unpack(reader, scratch / "diff")
                reader.drain()
            diff_id = reader.diff_id()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise LayerError(f"layer content does not match its id: expected {expected_diff_id}, "
                                 f"got {diff_id}")
            (scratch / "size").write_text(f"{size}\n")
            with self._lock():
                if not self.has(diff_id):
                    (scratch / "link").write_text(self._new_link(diff_id) + "\n")
                    scratch.chmod(0o700)
                    os.rename(scratch, self._dir(diff_id))
                    scratch.mkdir()  # for scratch()'s clean-up to find
                if holder:
                    self._hold(diff_id, holder)
        return diff_id
        # --8<-- [end:add_part2]
    # --8<-- [end:add]

    def _new_link(self, diff_id: str) -> str:
        """Create ``l/<random>`` -> the layer's diff dir. Random (not a digest prefix), never reused."""
        import base64  # only for a new layer

        while True:
            short = base64.b32encode(os.urandom(10)).decode()[:12]
            with contextlib.suppress(FileExistsError):
                os.symlink(f"../sha256/{canonical(diff_id)[7:]}/diff", self.root / "l" / short)
                return short

    def _hold(self, diff_id: str, holder: str) -> None:
        if not holder or "\0" in holder:
            raise LayerError(f"invalid layer holder {holder!r}")
        (self._dir(diff_id) / "holders" / quote(holder, safe="")).touch()

    def ref(self, diff_id: str, holder: str) -> None:
        """Record that ``holder`` (e.g. ``"image:sha256:..."``, ``"container:ID"``) uses the layer."""
        with self._lock():
            self.path(diff_id)
            self._hold(diff_id, holder)

    def unref(self, diff_id: str, holder: str) -> None:
        """Forget that ``holder`` uses the layer (nothing happens if it did not). Removal is by
        :meth:`remove_unused`, so a layer unreferenced for a moment is not unpacked again."""
        with self._lock():
            (self._dir(diff_id) / "holders" / quote(holder, safe="")).unlink(missing_ok=True)

    def remove_unused(self, only: Iterable[str] | None = None) -> list[str]:
        """Remove every layer nobody holds (and what dead processes left in ``.tmp``); return their IDs.

        ``only``: consider just these layers (those an image or a cache let go of), so that removing one
        image never takes a layer some other tool stored and does not hold (``--layer``, a commit's).
        """
        import tempfile  # only when something is removed

        removed, doomed = [], []
        with self._lock():
            candidates = self.layers() if only is None else [d for d in dict.fromkeys(only) if self.has(d)]
            for diff_id in candidates:
                directory = self._dir(diff_id)
                if not any((directory / "holders").iterdir()):
                    link = (directory / "link").read_text().strip()
                    trash = Path(tempfile.mkdtemp(dir=self.root / ".tmp")) / "layer"
                    os.rename(directory, trash)  # gone from the store at once; deleted below
                    (self.root / "l" / link).unlink(missing_ok=True)
                    removed.append(diff_id)
                    doomed.append(trash.parent)
        for entry in (self.root / ".tmp").iterdir():
            with contextlib.suppress(OSError):
                fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its owner is alive
                    doomed.append(entry)
                finally:
                    os.close(fd)
        for entry in doomed:
            shutil.rmtree(entry, ignore_errors=True)
        for record in (self.root / "trees").iterdir():  # directories imported as a removed layer
            if not record.name.startswith(".") and self.remembered(record.name) is None:
                record.unlink(missing_ok=True)
        return removed


# exercise 04.6: Import a root filesystem (a tar or a directory) as one layer
# hint: a tar: as a directory below, with _tar.file_fingerprint, and store.add(path,
#   expected_diff_id=_tar.tar_digest(path)) when not remembered; a directory: if
#   store.remembered(_tar.tree_fingerprint(path)) names a layer, ref it and return it; else
#   _tar.pack_tree into a pipe, in a thread (import threading there: only this path needs it), twice
#   (digest first, then add), and store.remember(fingerprint, diff_id) if the fingerprint is the same
#   afterwards.
# --8<-- [start:import_rootfs]
def import_rootfs(store: LayerStore, source: str | os.PathLike, *, holder: str | None = None) -> str:
    """Import a root filesystem, a tarball (plain, gzip, zstd) or a directory, as one layer.

    This is ``docker import``: the busybox rootfs of chapter 00 becomes a one-layer image. The
    digest is computed first, so importing what is already stored reads but never writes.
    A directory is packed as a sorted tar on the fly (through a pipe), never as a file; and its
    diff ID is remembered under its fingerprint, so importing it again unchanged (each run of a
    stage on a ROOTFS directory) costs an lstat(2) per file instead of packing and hashing it all.
    A tar file is remembered the same way, by one stat(2).
    """
    # --8<-- [start:import_rootfs_part2]
    if not os.fspath(source):  # Path("") would be ".", the current directory
        raise LayerError("cannot import '': no path given")
    source = Path(source)
    if not source.exists():
        raise LayerError(f"cannot import {str(source)!r}: no such file or directory")
    if not source.is_dir():
        fingerprint = _tar.file_fingerprint(source)  # a tar given again unchanged is not read again
        known = store.remembered(fingerprint)
        if known is not None:
            if holder:
                store.ref(known, holder)
            return known
        diff_id = store.add(source, expected_diff_id=_tar.tar_digest(source), holder=holder, trusted=True)
        if fingerprint is not None and fingerprint == _tar.file_fingerprint(source):
            store.remember(fingerprint, diff_id)
        return diff_id
    fingerprint = _tar.tree_fingerprint(source)  # None if it changed a moment ago
    known = store.remembered(fingerprint)
    if known is not None:  # imported before, and not changed since
        if holder:
            store.ref(known, holder)
        return known
    # --8<-- [end:import_rootfs_part2]

    import threading  # only when a directory must be packed

    def packed(consume):  # run consume(stream of the tar of source), packing in a thread
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def pack() -> None:
            try:
                with open(write_fd, "wb") as out:
                    _tar.pack_tree(source, out)
            except BrokenPipeError:
                pass  # the reader stopped early: it reports why
            except BaseException as e:
                failure.append(e)

        thread = threading.Thread(target=pack, daemon=True)
        thread.start()
        try:
            with open(read_fd, "rb") as stream:
                result = consume(stream)
        finally:
            thread.join()
        if failure:
            raise LayerError(f"cannot pack {str(source)!r}: {failure[0]}")
        return result

    # --8<-- [start:import_rootfs_part3]
    digest = packed(lambda stream: _tar.tar_digest(stream, "none"))
    diff_id = packed(lambda stream: store.add(stream, expected_diff_id=digest, compression="none",
                                              holder=holder, trusted=True))
    if fingerprint is not None and _tar.tree_fingerprint(source) == fingerprint:  # unchanged meanwhile
        store.remember(fingerprint, diff_id)
    return diff_id
# --8<-- [end:import_rootfs]
# --8<-- [end:import_rootfs_part3]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.overlay.layers ls | import PATH... | prune``."""
    from minidocker.core import stage as _stage

    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m minidocker.overlay.layers ls | import PATH... | prune"

    def body() -> int:
        store = LayerStore()
        command, args = (argv[0], argv[1:]) if argv else ("", [])
        if command == "ls" and not args:
            print(f"{'LAYER':<19}  {'SIZE':>10}  {'LINK':<14}  HELD BY")
            for diff_id in store.layers():
                holders = " ".join(sorted(store.holders(diff_id))) or "-"
                print(f"{diff_id[:19]}  {store.size(diff_id):>10}  {store.link(diff_id):<14}  {holders}")
            for container in sorted(p.name for p in (store.root / "containers").iterdir()):
                print(f"container filesystem {container}")
        elif command == "import" and args:
            for path in args:
                print(import_rootfs(store, path))
        elif command == "prune" and not args:
            for diff_id in store.remove_unused():
                print(f"removed {diff_id}")
        else:
            print(usage, file=sys.stderr)
            return 2
        return 0

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
