"""Chapter 08: the build context: the files a build may read, sent as one tar, minus ``.dockerignore``.

``docker build PATH`` does not let the builder read your disk. The client packs ``PATH`` into a tar
(the *context*), leaving out what ``PATH/.dockerignore`` names, and sends it to the daemon, which
may be on another machine. ``COPY`` and ``ADD`` can only ever see those files: that is why
``COPY ../secret /`` is refused, and why a big forgotten directory (``node_modules``, ``.git``)
makes every build slow before its first step.

The daemon unpacks the context into a private directory, as carefully as a layer (it comes from
a client: no ``..``, no absolute names, nothing written through a symlink), and applies
``.dockerignore`` again, so a client that did not filter cannot leak ignored files into COPY.

``.dockerignore`` patterns are Docker's: Go's ``filepath.Match`` (``*``, ``?``, ``[a-z]``) plus
``**`` for any number of directories; ``!pattern`` re-includes; the last matching line wins; a
pattern matching a directory matches everything below it.

Example::

    >>> ignore = Ignore("*.log\\n!keep.log\\nbuild/\\n")
    >>> ignore.matches("debug.log"), ignore.matches("keep.log"), ignore.matches("build/out/x.o")
    (True, False, True)
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from minidocker.core.process import EngineError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: typing costs each build 3 ms
    from typing import BinaryIO

__all__ = ["ContextError", "Ignore", "extract", "glob_regex", "pack", "read_dockerfile", "read_ignore",
           "remove_ignored", "walk"]

DOCKERIGNORE = ".dockerignore"
MAX_DOCKERIGNORE = 1 << 20  # 1 MiB of patterns: far more than any real file, and a bound on what we read


class ContextError(EngineError):
    """A build context that cannot be used (a hostile member, a missing Dockerfile, a bad pattern)."""


# exercise 08.3: Turn a Go glob pattern into a regular expression
# hint: * -> [^/]*, ? -> [^/], [...] kept ([! becomes [^), \x escapes x; with double_star, ** (and **/)
#   -> (.*/)? or .* at the end; anchor with ^...$.
# --8<-- [start:glob_regex]
def glob_regex(pattern: str, *, double_star: bool = False) -> re.Pattern[str]:
    """A regular expression for a Go ``filepath.Match`` pattern: ``*`` and ``?`` never match ``/``.

    With ``double_star`` (``.dockerignore``), ``**`` matches any number of directories, even none.
    """
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*" and double_star and pattern[i + 1:i + 2] == "*":
            i += 2
            if pattern[i:i + 1] == "/":
                i += 1
            out.append(".*" if i >= len(pattern) else "(.*/)?")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("^", "!") else i + 1)
            if end < 0:
                raise ContextError(f"syntax error in pattern {pattern!r}: '[' without ']'")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body[:1] in ("^", "!") else body).replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + "$", re.S)
# --8<-- [end:glob_regex]


class Ignore:
    """The patterns of a ``.dockerignore`` file, and the question: is this path left out?"""

    def __init__(self, text: str = "") -> None:
        self.patterns: list[tuple[re.Pattern[str], bool, str]] = []
        for line in text.removeprefix("\ufeff").splitlines():
            if line.startswith("#"):
                continue
            line = line.strip()
            exclusion = line.startswith("!")
            line = line[1:].strip() if exclusion else line
            if not line:
                continue
            cleaned = posixpath.normpath(line)
            cleaned = cleaned.lstrip("/") or "/" if cleaned.startswith("/") else cleaned
            self.patterns.append((glob_regex(cleaned, double_star=True), exclusion, line))

    @property
    def has_exclusions(self) -> bool:
        """Whether some ``!pattern`` may re-include a file below an ignored directory."""
        return any(exclusion for _, exclusion, _ in self.patterns)

    # --8<-- [start:matches]
    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``a/b/c``) is ignored: the last match decides.

        A pattern also matches a path when it matches one of its parent directories, so
        ``build`` ignores ``build/out/x.o``.
        """
        parents = path.split("/")[:-1]
        ignored = False
        for regex, exclusion, _ in self.patterns:
            if exclusion != ignored:  # only a pattern that could change the answer is tried
                continue
            hit = bool(regex.match(path)) or any(regex.match("/".join(parents[:n + 1]))
                                                 for n in range(len(parents)))
            if hit:
                ignored = not exclusion
        return ignored
    # --8<-- [end:matches]


def walk(root: Path, ignore: Ignore | None = None, keep: tuple[str, ...] = ()) -> Iterator[str]:
    """Every path below ``root`` (relative, sorted, parents first) that ``ignore`` does not leave out.

    Symlinks are listed, never followed. ``keep`` names paths sent whatever the patterns say.
    """
    def visit(rel: str) -> Iterator[str]:
        with os.scandir(root / rel if rel else root) as entries:
            names = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
        for name, is_dir in names:
            path = f"{rel}/{name}" if rel else name
            ignored = ignore is not None and path not in keep and ignore.matches(path)
            if not ignored:
                yield path
            if is_dir and (not ignored or ignore.has_exclusions):  # type: ignore[union-attr]
                yield from visit(path)

    yield from visit("")


# exercise 08.4: Pack a context directory as `docker build` sends it
# hint: Ignore(.dockerignore); tarfile 'w|' over walk(root, ignore, keep=(dockerfile, .dockerignore));
#   gettarinfo, owners 0, no names; regular files with their content; then the extra files.
# --8<-- [start:pack]
def pack(directory: str | os.PathLike, out: BinaryIO, *, dockerfile: str = "Dockerfile",
         extra: dict[str, bytes] | None = None) -> None:
    """Write the context ``directory`` to ``out`` as a tar, as ``docker build`` sends it.

    What ``.dockerignore`` names is left out (the Dockerfile and ``.dockerignore`` are always
    sent: the builder needs them); owners become root, as Docker's client does; ``extra`` adds
    files by name (a Dockerfile from elsewhere).
    """
    root = Path(directory)
    if not root.is_dir():
        raise ContextError(f"unable to prepare context: path {str(directory)!r} not found")
    ignore = read_ignore(root)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in walk(root, ignore, keep=(dockerfile, DOCKERIGNORE)):
            full = root / path
            info = tar.gettarinfo(str(full), path)
            if info is None:  # a socket: nothing a tar can hold
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
# --8<-- [end:pack]


def _parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise ContextError(f"build context refused: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ContextError(f"build context refused: member {name!r} leaves the context ('..')")
    return parts


# exercise 08.5: Unpack a context tar without leaving the directory
# hint: tarfile 'r|*'; for each member: _parts (no .., no /), refuse devices, skip FIFOs; open the parent
#   with _untar.open_dir (never through a symlink) and _extract_member; directory times at the end;
#   LayerError and TarError become ContextError.
# --8<-- [start:extract]
def extract(source: str | os.PathLike | BinaryIO, dest: str | os.PathLike) -> None:
    """Unpack a context tar (plain, gzip, bzip2 or xz; a path or a stream) into the empty ``dest``.

    Like a layer: every directory is opened below the last, never through a symlink
    (``_untar.open_dir``), so a member can create only the one entry its name says. Device nodes
    are refused; FIFOs and sockets skipped. Symlinks are kept as they are: COPY decides later.
    """
    from minidocker.overlay import untar as _untar
    from minidocker.overlay.tar import LayerError

    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dir_times: list[tuple[list[str], int]] = []
    try:
        with contextlib.ExitStack() as stack:
            stream = source if hasattr(source, "read") else stack.enter_context(open(source, "rb"))
            tar = stack.enter_context(tarfile.open(fileobj=_decompressed(stream), mode="r|"))
            for member in tar:
                parts = _parts(member.name)
                if not parts or member.isfifo() or member.type == b"s":
                    continue
                if member.isdev():
                    raise ContextError(f"build context refused: member {member.name!r} is a device node")
                parent = _untar.open_dir(root_fd, parts[:-1], member.name)
                try:
                    _extract_member(tar, member, root_fd, parent, parts, dir_times)
                finally:
                    os.close(parent)
        for parts, mtime in reversed(dir_times):
            with contextlib.suppress(OSError, LayerError):
                fd = _untar.open_dir(root_fd, parts, "/".join(parts), create=False)
                os.utime(fd, ns=(mtime, mtime))
                os.close(fd)
    except LayerError as e:
        raise ContextError(str(e).replace("layer refused", "build context refused")) from None
    except tarfile.TarError as e:
        raise ContextError(f"the build context is not a valid tar archive: {e}") from None
    finally:
        os.close(root_fd)
# --8<-- [end:extract]


class _Stream(io.RawIOBase):
    """``head`` then the rest of ``stream``; with ``pad``, then the zeros that end a tar properly.

    When ``-f`` names a Dockerfile outside the context, the docker CLI appends it to the context
    tar without padding it to 512 bytes or writing the two zero blocks that end an archive.
    dockerd takes that; Python's tarfile wants the end, so we supply it. Zeros after a proper
    end are never read.
    """

    def __init__(self, head: bytes, stream: BinaryIO, pad: bool) -> None:
        self._head, self._stream, self._count = memoryview(head), stream, 0
        self._tail: memoryview | None = None if pad else memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            data, self._head = self._head[:len(buffer)], self._head[len(buffer):]
        else:
            data = self._stream.read(len(buffer))
        if data:
            buffer[:len(data)] = data
            self._count += len(data)
            return len(data)
        if self._tail is None:
            self._tail = memoryview(bytes(-self._count % 512 + 1024))
        n = min(len(buffer), len(self._tail))
        buffer[:n], self._tail = self._tail[:n], self._tail[n:]
        return n


def _decompressed(stream: BinaryIO) -> BinaryIO:
    """The context's tar stream, decompressed (gzip, bzip2, xz or none) and properly ended."""
    import bz2
    import gzip
    import lzma

    head = stream.read(6)
    raw = io.BufferedReader(_Stream(head, stream, pad=False))
    if head.startswith(b"\x1f\x8b"):
        inner: BinaryIO = gzip.GzipFile(fileobj=raw)
    elif head.startswith(b"BZh"):
        inner = bz2.BZ2File(raw)
    elif head.startswith(b"\xfd7zXZ\x00"):
        inner = lzma.LZMAFile(raw)  # noqa: SIM115 (closed with the stream)
    else:
        return io.BufferedReader(_Stream(head, stream, pad=True))  # type: ignore[return-value]
    return io.BufferedReader(_Stream(b"", inner, pad=True))  # type: ignore[return-value]


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, parent: int,
                    parts: list[str], dir_times: list[tuple[list[str], int]]) -> None:
    from minidocker.overlay import untar as _untar

    name, mtime = parts[-1], int(member.mtime) * 1_000_000_000
    try:
        existing = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
        if stat.S_ISDIR(existing.st_mode):
            import shutil

            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = _untar.open_dir(parent, [name], member.name)
        try:
            _untar.set_metadata(fd, member)
        finally:
            os.close(fd)
        dir_times.append((parts, mtime))
    elif member.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)
        try:
            data = tar.extractfile(member)
            while chunk := data.read(1 << 20):  # type: ignore[union-attr]
                os.write(fd, chunk)
            _untar.set_metadata(fd, member)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
    elif member.islnk():
        target = _parts(member.linkname)
        if not target:
            raise ContextError(f"build context refused: {member.name!r} is a hard link to the context root")
        where = _untar.open_dir(root_fd, target[:-1], member.name, create=False)
        try:
            os.link(target[-1], name, src_dir_fd=where, dst_dir_fd=parent, follow_symlinks=False)
        except OSError as e:
            raise ContextError(f"build context refused: {member.name!r} links to {member.linkname!r}: "
                               f"{e.strerror}") from None
        finally:
            os.close(where)


# --8<-- [start:read_ignore]
def read_ignore(root: Path) -> Ignore:
    """The patterns of ``root/.dockerignore`` (none if there is no such file), read with a bound.

    The file is the context's: a symlink out of it (to ``/dev/zero``, ``/proc/kcore``, a secret of the
    daemon's host) is refused, as is anything but a regular file of at most ``MAX_DOCKERIGNORE``
    bytes, before a byte is read. Opened with ``O_NOFOLLOW`` so that the check and the read see
    the same file.

        >>> read_ignore(Path("/tmp/app")).matches("debug.log")
        True
    """
    try:
        fd = os.open(root / DOCKERIGNORE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Ignore()
    except OSError as e:  # ELOOP: the last component is a symlink
        kind = "a symlink" if (root / DOCKERIGNORE).is_symlink() else e.strerror
        raise ContextError(f"{DOCKERIGNORE} may not be {kind}: it must be a file of the context") from None
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ContextError(f"{DOCKERIGNORE} must be a regular file of the context")
        data = f.read(MAX_DOCKERIGNORE + 1)
    if len(data) > MAX_DOCKERIGNORE:
        raise ContextError(f"{DOCKERIGNORE} is larger than {MAX_DOCKERIGNORE} bytes: not a list of patterns")
    return Ignore(data.decode(errors="replace"))
# --8<-- [end:read_ignore]


def remove_ignored(root: Path, ignore: Ignore, keep: tuple[str, ...] = ()) -> list[str]:
    """Delete what ``ignore`` leaves out of the unpacked context ``root``; return the paths deleted."""
    import shutil

    kept = set(walk(root, ignore, keep))
    removed = []
    for path in sorted(walk(root), key=lambda p: p.count("/"), reverse=True):  # children first
        if path in kept or any(k.startswith(path + "/") for k in kept):
            continue
        full = root / path
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
        else:
            full.unlink()
        removed.append(path)
    return removed


def read_dockerfile(root: Path, name: str) -> str:
    """The text of the Dockerfile ``name`` in the unpacked context (never through a symlink out)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ContextError(f"the Dockerfile ({name}) must be inside the build context")
    path = root.joinpath(*parts)
    try:
        if any(p.is_symlink() for p in [path, *path.parents] if root in p.parents or p == path):
            raise ContextError(f"the Dockerfile ({name}) may not be a symlink")
        return path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ContextError(f"Cannot locate specified Dockerfile: {name}") from None
