"""Layer tars: decompress and hash them as a stream, unpack them safely, write them back.

A layer is a tar archive, often gzip- or zstd-compressed, that comes from somewhere we do not trust
(a registry, a file a user passed). Its *diff ID* is the sha256 of the uncompressed tar. This module:

* opens a layer as a stream of uncompressed bytes, whatever the compression, without ever holding
  the whole archive in memory (:func:`open_layer`, :class:`HashingReader`, :func:`tar_digest`);
* writes trees back as tars with the metadata a layer needs: numeric owners, nanosecond times,
  extended attributes (:func:`tar_info`, :func:`add_path`, :func:`pack_tree`), hashing what it
  writes on the way (:class:`HashingWriter`: a layer's diff ID or a blob's digest without a second pass);
* tells, from metadata alone, whether a tree would pack to the same tar as before
  (:func:`tree_fingerprint`).

Unpacking an untrusted tar safely is the job of :mod:`minidocker.overlay.untar`.

Example::

    >>> with open_layer("layer.tar.gz") as stream:           # gzip, zstd or plain: by magic bytes
    ...     reader = HashingReader(stream)
    ...     reader.drain(); reader.diff_id()                  # the sha256 of the *uncompressed* tar
    'sha256:4f2c...'
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import time

from minidocker.core.process import EngineError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    import tarfile  # imported where a tar is written: a stage's start needs only the fingerprints
    import threading
    from collections.abc import Iterator
    from typing import BinaryIO

__all__ = ["OPAQUE", "OVERLAY_OPAQUE", "WHITEOUT_PREFIX", "HashingReader", "HashingWriter", "LayerError",
           "add_at", "add_path", "open_layer", "pack_tree", "tar_digest", "tar_info", "tree_fingerprint"]

WHITEOUT_PREFIX = ".wh."  # OCI: "dir/.wh.NAME" deletes NAME of the layers below
OPAQUE = ".wh..wh..opq"  # OCI: "dir/.wh..wh..opq" hides everything below dir in the layers below
OVERLAY_OPAQUE = "trusted.overlay.opaque"  # overlayfs: xattr "y" on a directory of a lower layer
CHUNK = 1 << 20
_THREADED = 256 << 10  # HashingReader: a block this big is hashed in a thread, beside the unpack
_QUEUED = 16  # HashingReader: blocks read ahead of the hash at most (16 MiB with CHUNK)
_LINGER = 0.2  # HashingReader: seconds its hashing thread waits for another block before it ends
SETTLED_SECONDS = 2.0  # tree_fingerprint: younger changes may hide in one tick of a filesystem's clock


class LayerError(EngineError):
    """A layer that cannot be used: hostile or corrupt tar, unknown compression, wrong digest."""


# --- reading: decompression and digests -------------------------------------------------------

class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to look at the magic number) and put back."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@contextlib.contextmanager
def open_layer(source: str | os.PathLike | BinaryIO, compression: str | None = None) -> Iterator[BinaryIO]:
    """Yield the *uncompressed* bytes of a layer given as a path or a binary stream.

    ``compression`` is ``"gzip"``, ``"zstd"``, ``"none"``, or None to decide by the magic bytes
    (``1f 8b`` gzip, ``28 b5 2f fd`` zstd), as registries' media types are not always right.
    """
    with contextlib.ExitStack() as stack:
        raw = source if hasattr(source, "read") else stack.enter_context(open(source, "rb"))
        if compression is None:
            head = raw.read(4)
            compression = ("gzip" if head[:2] == b"\x1f\x8b" else
                           "zstd" if head == b"\x28\xb5\x2f\xfd" else "none")
            raw = io.BufferedReader(_Prefixed(head, raw), CHUNK)
        if compression == "gzip":
            import gzip  # only for a gzip layer

            yield gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == "zstd":
            import zstandard  # only when needed: it is not free to import

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK, read_across_frames=True)
            yield io.BufferedReader(reader, CHUNK)
        elif compression in ("none", "", "tar"):
            yield raw
        else:
            raise LayerError(f"unknown layer compression {compression!r}: use gzip, zstd or none")


class HashingReader:
    """Wrap a stream: everything read through it goes into a sha256, so the diff ID costs one pass.

    It also counts its position and can seek *forward* (by reading), which is all ``tarfile``'s
    random-access mode needs from a stream read in order; its stream mode (``r|``) would copy its
    whole buffer at every 512-byte header.

    It reads the stream a block (:data:`CHUNK`) at a time and hands out the block's bytes: one
    system call and one hash update per megabyte, not per 512-byte header. Big blocks are hashed
    in a thread beside the caller (``hashlib`` lets go of the GIL), which takes them in order from
    a queue of at most :data:`_QUEUED` blocks: the caller waits for the hash only when it is that
    far ahead, so on a machine with two cores the hash costs an unpack almost nothing. The thread
    ends when the queue stays empty for :data:`_LINGER` seconds (or at once when the digest is
    asked for): nothing is left running for long if the reader is dropped halfway.
    """

    def __init__(self, stream: BinaryIO) -> None:
        import hashlib  # OpenSSL's sha256, the quickest per byte: only where a layer's content is hashed

        self._stream, self._sha, self.size = stream, hashlib.sha256(), 0
        self._block, self._at = b"", 0  # read from the stream, hashed (or queued), not yet handed out
        self._queue: collections.deque[bytes] = collections.deque()  # blocks for the hashing thread, in order
        self._hashing: threading.Condition | None = None  # made with the first big block
        self._running = False  # a hashing thread is working through the queue
        self._ending = False  # the hash is wanted now: no more blocks will come

    def _fill(self, n: int) -> bytes:
        """The next block of the stream (at least ``n`` bytes unless it ends), sent to the hash."""
        try:
            data = self._stream.read(max(n, CHUNK))
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; zstd's too
            raise LayerError(f"layer is not valid compressed data: {e}") from None
        except Exception as e:
            if type(e).__name__ == "ZstdError":
                raise LayerError(f"layer is not valid zstd data: {e}") from None
            raise
        if len(data) >= _THREADED or self._running:
            self._hash_later(data)
        else:
            self._sha.update(data)
        return data

    def _hash_later(self, data: bytes) -> None:
        """Queue ``data`` for the hashing thread (started if none runs); wait while the queue is full."""
        if self._hashing is None:
            import threading  # only for big blocks: a stage that only checks a small layer needs none

            self._hashing = threading.Condition()
        with self._hashing:
            while len(self._queue) >= _QUEUED:
                self._hashing.wait()
            self._queue.append(data)
            self._hashing.notify_all()
            if not self._running:
                self._running = True
                import threading

                threading.Thread(target=self._hash_queue, daemon=True).start()

    def _hash_queue(self) -> None:
        """The hashing thread: hash the queued blocks in order; end when none came for :data:`_LINGER` s."""
        assert self._hashing is not None
        while True:
            with self._hashing:
                if not self._queue and not self._ending:
                    self._hashing.wait(_LINGER)  # a thread's start costs more than a block's hash
                if not self._queue:
                    self._running = False
                    self._hashing.notify_all()
                    return
                data = self._queue[0]
            self._sha.update(data)
            with self._hashing:
                self._queue.popleft()
                self._hashing.notify_all()

    def _wait(self) -> None:
        if self._hashing is not None:
            with self._hashing:
                self._ending = True  # the hashing thread: end as soon as the queue is empty
                self._hashing.notify_all()
                while self._running:
                    self._hashing.wait()

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes (fewer only at the stream's end), or all that is left."""
        if n is None or n < 0:
            parts = [self._block[self._at:]]
            while part := self._fill(CHUNK):
                parts.append(part)
            data, self._block, self._at = b"".join(parts), b"", 0
        elif self._at + n <= len(self._block):
            data = self._block[self._at:self._at + n]
            self._at += n
        else:
            parts = [self._block[self._at:]]
            missing = n - len(parts[0])
            self._block, self._at = b"", 0
            while missing > 0 and (block := self._fill(missing)):
                parts.append(block[:missing])
                self._block, self._at = block, min(missing, len(block))
                missing -= self._at
            data = b"".join(parts)
        self.size += len(data)
        return data

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer only at the stream's end), left to be read: a header to look at."""
        if self._at + n > len(self._block):
            rest = self._block[self._at:]
            self._block, self._at = rest + self._fill(n - len(rest)), 0
            while len(self._block) < n and (more := self._fill(n - len(self._block))):
                self._block += more
        return self._block[self._at:self._at + n]

    def read_view(self, n: int) -> memoryview:
        """Up to ``n`` bytes, as a view of the block read (empty only at the stream's end): no copy."""
        if self._at >= len(self._block):
            self._block, self._at = self._fill(n), 0
        view = memoryview(self._block)[self._at:self._at + n]
        self._at += len(view)
        self.size += len(view)
        return view

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.size
        if whence == io.SEEK_END or offset < self.size:
            raise io.UnsupportedOperation("a layer stream only moves forward")
        while self.size < offset and self.read(min(CHUNK, offset - self.size)):
            pass
        return self.size

    def drain(self) -> None:
        """Read (and hash) the rest: the tar's end-of-archive padding counts in its digest."""
        while self.read(CHUNK):
            pass

    def diff_id(self) -> str:
        """``sha256:`` of what was read from the stream (call :meth:`drain` first for the whole tar)."""
        self._wait()
        return "sha256:" + self._sha.hexdigest()


def tar_digest(source: str | os.PathLike | BinaryIO, compression: str | None = None) -> str:
    """The diff ID (``sha256:`` of the uncompressed tar) of a layer, without unpacking it."""
    with open_layer(source, compression) as stream:
        reader = HashingReader(stream)
        reader.drain()
        return reader.diff_id()


# --- writing -----------------------------------------------------------------------------------

class HashingWriter:
    """Pass writes on to ``out`` and hash them: the digest of what we write costs no second pass.

    Give it to ``tarfile.open(fileobj=..., mode="w|")`` and :meth:`digest` is the new layer's diff
    ID; to ``gzip.GzipFile(fileobj=...)``, the compressed blob's digest. The one writer every chapter
    that writes a layer uses (a commit, a build step, a compressed blob).

    Example::

        >>> writer = HashingWriter(open("layer.tar", "wb"))
        >>> with tarfile.open(fileobj=writer, mode="w|") as tar: ...
        >>> writer.digest()
        'sha256:...'
    """

    def __init__(self, out: BinaryIO) -> None:
        import hashlib  # as HashingReader's

        self.out, self._sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    def digest(self) -> str:
        """``sha256:`` and the hash of everything written so far."""
        return "sha256:" + self._sha.hexdigest()


def tar_info(tar: tarfile.TarFile, path: str | os.PathLike, arcname: str) -> tarfile.TarInfo | None:
    """A tar header for the file at ``path`` (not followed): numeric owner, exact time, xattrs.

    Hard links to a file already added become link members (``tarfile`` tracks inodes). Returns
    None for sockets, which tar cannot hold.
    """
    info = tar.gettarinfo(os.fspath(path), arcname)
    if info is None:
        return None
    st = os.lstat(path)
    info.uname = info.gname = ""  # ids only: names mean nothing on another machine
    seconds, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
    info.mtime = seconds
    if nanos:
        info.pax_headers["mtime"] = f"{seconds}.{nanos:09d}".rstrip("0")
    with contextlib.suppress(OSError):
        for name in os.listxattr(path, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                value = os.getxattr(path, name, follow_symlinks=False)
                info.pax_headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return info


def add_path(tar: tarfile.TarFile, path: str | os.PathLike, arcname: str) -> None:
    """Append the file at ``path`` under ``arcname`` (content included for regular files)."""
    info = tar_info(tar, path, arcname)
    if info is None:
        return
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def add_at(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str, *, fd: int | None = None) -> None:
    """Append the entry ``name`` of the open directory ``dir_fd``, never following a symlink on the way.

    :func:`add_path` takes a path, which the kernel resolves again at each call (lstat, open,
    listxattr): a directory swapped for a symlink between two calls sends it outside the tree. Here
    the entry is opened once, ``O_NOFOLLOW``, relative to its parent's descriptor, and its header
    and content come from that one open file (``fd``: a directory already open). An entry that
    became something else since it was listed is a :class:`LayerError`, not a host file in the layer.

    Example::

        >>> add_at(tar, upper_fd, "hello", "hello")      # upper_fd: os.open(upper, O_DIRECTORY)
    """
    import stat as _stat
    import tarfile  # only when a tar is written

    own = fd is None
    if own:
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise LayerError(f"/{arcname} went away while it was read: stop (pause) the container first") \
                from None
    try:
        st = os.fstat(fd)
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid, info.uname, info.gname = _stat.S_IMODE(st.st_mode), st.st_uid, \
            st.st_gid, "", ""
        seconds, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
        info.mtime = seconds
        if nanos:
            info.pax_headers["mtime"] = f"{seconds}.{nanos:09d}".rstrip("0")
        if _stat.S_ISSOCK(st.st_mode):
            return  # tar cannot hold a socket
        key = (st.st_ino, st.st_dev)
        if not _stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in tar.inodes:
            info.type, info.linkname = tarfile.LNKTYPE, tar.inodes[key]  # a hard link to one added before
        elif _stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif _stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        elif _stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        elif _stat.S_ISREG(st.st_mode):
            info.type, info.size = tarfile.REGTYPE, st.st_size
        else:
            raise LayerError(f"/{arcname}: a device node cannot go in a layer")
        if not _stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key not in tar.inodes:
            tar.inodes[key] = arcname
        with contextlib.suppress(OSError):  # through the open file: the same inode, wherever it is now
            where = f"/proc/self/fd/{fd}"  # a symlink's own xattrs are left out: only labels go there
            for xattr in os.listxattr(where) if not _stat.S_ISLNK(st.st_mode) else []:
                if not xattr.startswith("trusted.overlay."):
                    value = os.getxattr(where, xattr)
                    info.pax_headers["SCHILY.xattr." + xattr] = value.decode("utf-8", "surrogateescape")
        if info.type != tarfile.REGTYPE:
            tar.addfile(info)
            return
        try:
            content = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)  # the inode we stat'ed
        except OSError as e:
            raise LayerError(f"cannot read /{arcname}: {e.strerror}") from None
        with open(content, "rb") as f:
            tar.addfile(info, f)
    finally:
        if own:
            os.close(fd)


def pack_tree(root: str | os.PathLike, out: BinaryIO) -> None:
    """Write the tree under ``root`` to ``out`` as a tar, sorted, so the same tree gives the same bytes."""
    import tarfile  # only when a tree is packed: a stage's start needs only its fingerprint
    from pathlib import Path  # only here: it imports urllib, 3 ms of every unpack's start

    root = Path(root)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs + files):
                path = Path(directory, name)
                add_path(tar, path, str(path.relative_to(root)))


def _short_sha256(text: str) -> str:
    """The sha256 (hex) of a fingerprint's few kilobytes of text, without loading OpenSSL for it.

    ``hashlib`` loads OpenSSL (``_hashlib``), about 4 ms of every start of a stage; Python's own
    ``_sha256`` gives the same digest, as quickly for so little. A layer's megabytes still go
    through ``hashlib``, quicker per byte.
    """
    try:
        from _sha256 import sha256
    except ImportError:  # a Python built without its own sha256
        from hashlib import sha256
    return sha256(text.encode(errors="surrogateescape")).hexdigest()


# --8<-- [start:tree_fingerprint]
def tree_fingerprint(root: str | os.PathLike) -> str | None:
    """A digest of the metadata of every entry :func:`pack_tree` would pack; None if one just changed.

    For each entry, in pack_tree's order: its path, inode and device, type and permissions, owner,
    link count, size, device number, mtime and ctime. Whatever changes a file (its content, mode,
    owner, xattrs, links, even its mtime set back by hand) sets its ctime to the current time, which
    only a clock set back could undo; a new file or a rename changes the paths or the inodes. So the same
    fingerprint means the same tar, and costs one lstat(2) per entry instead of reading every byte.

    A timestamp is only as fine as its filesystem's clock tick (up to 2 s on FAT): a file changed,
    fingerprinted and changed again within one tick would keep its times. So a tree with a change
    younger than ``SETTLED_SECONDS`` gets no fingerprint (git calls such entries "racily clean").
    """
    started, root = time.time_ns(), os.fspath(root)
    lines, newest = ["minidocker tree fingerprint 1\n"], 0
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            newest = max(newest, st.st_ctime_ns)
            lines.append(f"{path[len(root):]}\0{st.st_ino} {st.st_dev} {st.st_mode} {st.st_uid} {st.st_gid} "
                         f"{st.st_nlink} {st.st_size} {st.st_rdev} {st.st_mtime_ns} {st.st_ctime_ns}\n")
    if newest > started - SETTLED_SECONDS * 1e9:
        return None
    return _short_sha256("".join(lines))
# --8<-- [end:tree_fingerprint]


def file_fingerprint(path: str | os.PathLike) -> str | None:
    """:func:`tree_fingerprint` for one file (a layer tar): its identity, size and times.

    The same fingerprint means the same bytes, for the reasons given there, so a tar given again
    unchanged (``--layer big.tar`` on every start) need not be read and hashed again.
    """
    started, st = time.time_ns(), os.stat(path)
    if st.st_ctime_ns > started - SETTLED_SECONDS * 1e9:
        return None
    line = (f"minidocker file fingerprint 1\n{os.path.realpath(path)}\0{st.st_ino} {st.st_dev} {st.st_mode} "
            f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n")
    return _short_sha256(line)
