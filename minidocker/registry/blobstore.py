"""Chapter 09: content-addressed storage on disk: blobs named by their digest, published atomically.

A registry stores two things: *blobs* (layers, configs, manifests: bytes) and *names* (which
repository knows which blob, which tag points at which manifest). The blobs are named by the
sha256 of their content, so they are immutable and shared by every repository: pushing the same
layer to ten repositories stores it once.

Every write follows one rule, and that rule is what lets several server processes share one
directory: **nothing becomes visible until it is complete and verified**. An upload grows in its
own temporary file under ``uploads/``; when the client says "that was all, its digest is D", the
file is hashed, compared with D, fsynced and *renamed* into ``blobs/``. rename(2) is atomic: a
reader sees no blob or the whole blob, never part of one, even if the server is killed mid-upload.

Layout (``ROOT`` is ``--storage``)::

    blobs/sha256/ab/abcdef…          the content, immutable
    uploads/<uuid>/data              an upload in progress (one file per upload session)
    uploads/<uuid>/repository        the repository it belongs to
    repositories/…                   names: see registry/store.py

Example::

    >>> store = BlobStore(Path("/tmp/storage"))
    >>> upload = store.start_upload("library/busybox")
    >>> with store.append(upload, offset=0) as w:
    ...     w.write(b"hello")
    >>> store.finish_upload(upload, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    5
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from minidocker.core.atomic import atomic_write
from minidocker.core.digests import DigestError, check_digest, digest_of

__all__ = ["BlobStore", "UploadError", "Writer"]


class UploadError(Exception):
    """An upload that went wrong; ``kind`` says how: ``unknown`` (no such session), ``busy``
    (another request is writing it), ``offset`` (a chunk not starting where the upload ends; ``size``
    is where it does) or ``size`` (a chunk longer or shorter than announced)."""

    def __init__(self, message: str, kind: str, size: int = 0) -> None:
        super().__init__(message)
        self.kind, self.size = kind, size


@dataclass
class Writer:
    """Appends one request's bytes to an upload, hashing them on the way (see :meth:`BlobStore.append`)."""

    file: object
    offset: int
    hasher: object | None
    limit: int | None = None

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise UploadError if it goes past the length the client announced."""
        if self.limit is not None and self.offset + len(chunk) > self.limit:
            raise UploadError(f"the chunk is longer than announced ({self.limit} bytes)", "size")
        self.file.write(chunk)  # type: ignore[attr-defined]
        if self.hasher is not None:
            self.hasher.update(chunk)  # type: ignore[attr-defined]
        self.offset += len(chunk)


class BlobStore:
    """Blobs and upload sessions in one directory, safe to share between processes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        for sub in ("blobs", "uploads", "repositories", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # upload id -> (bytes hashed, sha256 so far): saves re-reading the file when the same
        # process sees the whole upload. Another process finishing it just hashes the file.
        self._hashers: dict[str, tuple[int, object]] = {}

    # -- blobs ------------------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        algorithm, hexdigest = check_digest(digest)
        return self.root / "blobs" / algorithm / hexdigest[:2] / hexdigest

    def size(self, digest: str) -> int | None:
        """The blob's size, or None if the store does not have it."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def touch(self, digest: str, older_than: float = 600) -> None:
        """Mark a blob as recently wanted, so that garbage collection's grace period spares it."""
        path = self.path(digest)
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < time.time() - older_than:
                os.utime(path)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store small content (a manifest) under its digest; return the digest."""
        algorithm = check_digest(expected)[0] if expected else "sha256"
        digest = digest_of(data, algorithm)
        if expected and digest != expected:
            raise DigestError(f"the content's digest is {digest}, not {expected}")
        path = self.path(digest)
        if path.exists():
            self.touch(digest)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        return digest

    def read(self, digest: str) -> bytes:
        """The content of a (small) blob; FileNotFoundError if missing."""
        return self.path(digest).read_bytes()

    # -- uploads ----------------------------------------------------------------------------------
    def _upload_dir(self, upload: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", upload):
            raise UploadError(f"unknown upload {upload[:40]!r}", "unknown")
        return self.root / "uploads" / upload

    def start_upload(self, repository: str) -> str:
        """Open a new upload session for ``repository``; return its id (a random uuid)."""
        upload = uuid.uuid4().hex
        directory = self.root / "uploads" / upload
        directory.mkdir()
        (directory / "data").touch()
        atomic_write(directory / "repository", repository.encode())
        return upload

    def upload_size(self, upload: str, repository: str) -> int:
        """Bytes received so far; UploadError ``unknown`` if the session is not ``repository``'s."""
        directory = self._upload_dir(upload)
        try:
            if (directory / "repository").read_text() != repository:
                raise UploadError(f"upload {upload} belongs to another repository", "unknown")
            return (directory / "data").stat().st_size
        except FileNotFoundError:
            raise UploadError(f"unknown upload {upload}", "unknown") from None

    # --8<-- [start:append]
    @contextlib.contextmanager
    def append(self, upload: str, offset: int | None = None, length: int | None = None) -> Iterator[Writer]:
        """Append bytes to an upload, at ``offset`` (the size so far) if the client said where.

        An exclusive flock on the data file serializes writers, across processes too. If the block
        fails (a chunk longer than announced) the file is cut back, so the session stays valid.
        A client that disconnects keeps what arrived: it can ask where it stopped and resume.
        """
        path = self._upload_dir(upload) / "data"
        try:
            f = open(path, "r+b")  # noqa: SIM115 (closed below, after the lock)
        except FileNotFoundError:
            raise UploadError(f"unknown upload {upload}", "unknown") from None
        with f:
            self._lock_upload(f, path, upload)
            size = f.seek(0, os.SEEK_END)
            if offset is not None and offset != size:
                raise UploadError(f"this chunk starts at {offset}, the upload has {size} bytes",
                                  "offset", size)
            hashed, hasher = self._hashers.pop(upload, (-1, None))
            if hashed != size:
                hasher = hashlib.sha256() if size == 0 else None
            writer = Writer(f, size, hasher, None if length is None else size + length)
            try:
                yield writer
            except UploadError:
                f.truncate(size)
                writer.hasher = None
                raise
            finally:
                f.flush()
                if writer.hasher is not None and f.tell() == writer.offset:
                    self._hashers[upload] = (writer.offset, writer.hasher)
                    while len(self._hashers) > 1000:  # abandoned uploads: forget the oldest
                        del self._hashers[next(iter(self._hashers))]
    # --8<-- [end:append]

    # --8<-- [start:finish_upload]
    def finish_upload(self, upload: str, digest: str) -> int:
        """Verify the upload against ``digest`` and publish it as a blob; return its size.

        The upload is consumed either way: on a mismatch it is deleted and DigestError raised,
        so a wrong digest stores nothing. If the blob already exists (another client pushed the
        same layer) the upload is simply dropped: same digest, same bytes.
        """
        algorithm, _ = check_digest(digest)
        directory = self._upload_dir(upload)
        data = directory / "data"
        try:
            with open(data, "rb") as f:
                self._lock_upload(f, data, upload)
                size = os.fstat(f.fileno()).st_size
                hashed, hasher = self._hashers.pop(upload, (-1, None))
                if hashed != size or algorithm != "sha256":  # another process wrote some of it
                    hasher = hashlib.new(algorithm)
                    while chunk := f.read(1 << 20):
                        hasher.update(chunk)
                actual = f"{algorithm}:{hasher.hexdigest()}"  # type: ignore[attr-defined]
                if actual != digest:
                    raise DigestError(f"the uploaded content's digest is {actual}, not {digest}")
                os.fsync(f.fileno())
                target = self.path(digest)
                if target.exists():
                    self.touch(digest, older_than=0)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(data, target)  # the moment the blob appears, whole
        except FileNotFoundError:
            raise UploadError(f"unknown upload {upload}", "unknown") from None
        except DigestError:
            self.cancel_upload(upload)
            raise
        self.cancel_upload(upload)
        return size
    # --8<-- [end:finish_upload]

    @staticmethod
    def _lock_upload(f: object, path: Path, upload: str) -> None:
        """Lock an upload's open data file; fail if another request holds it, or if it was
        published (renamed away) between our open and our lock: never append to a blob."""
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
        except BlockingIOError:
            raise UploadError(f"upload {upload} is being written by another request", "busy") from None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino  # type: ignore[attr-defined]
        except FileNotFoundError:
            same = False
        if not same:
            raise UploadError(f"unknown upload {upload}", "unknown")

    def cancel_upload(self, upload: str) -> bool:
        """Delete an upload session and its data; False if there was none."""
        directory = self._upload_dir(upload)
        found = False
        for name in ("data", "repository"):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
                found = True
        with contextlib.suppress(OSError):
            directory.rmdir()
        self._hashers.pop(upload, None)
        return found

    def stale_uploads(self, older_than: float) -> Iterator[str]:
        """Upload sessions nobody wrote to for ``older_than`` seconds (abandoned pushes)."""
        deadline = time.time() - older_than
        for directory in (self.root / "uploads").iterdir():
            try:
                if (directory / "data").stat().st_mtime < deadline:
                    yield directory.name
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    if directory.stat().st_mtime < deadline:
                        yield directory.name
            except OSError as e:
                if e.errno != errno.ENOTDIR:
                    raise

    def blobs(self) -> Iterator[tuple[str, float]]:
        """Every stored blob as ``(digest, mtime)``."""
        for algorithm_dir in (self.root / "blobs").iterdir():
            for shard in algorithm_dir.iterdir():
                for path in shard.iterdir():
                    if not path.name.startswith("."):
                        with contextlib.suppress(FileNotFoundError):
                            yield f"{algorithm_dir.name}:{path.name}", path.stat().st_mtime

    @contextlib.contextmanager
    def lock(self, name: str, *, shared: bool) -> Iterator[None]:
        """A lock all processes on this storage see (flock on ``locks/NAME``): shared or exclusive."""
        with open(self.root / "locks" / name, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
