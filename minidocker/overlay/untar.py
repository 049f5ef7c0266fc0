"""Unpack a layer tar that nobody vouches for, so that nothing can land outside its directory.

Layers come from registries and from users' files: a hostile one may name ``../../etc/cron.d/x``,
``/etc/passwd``, plant a symlink ``evil -> /etc`` and then write ``evil/passwd``, or hard-link
``/etc/shadow`` into the layer to read it from a container. Python's ``tarfile`` filters check
member *names*, but then write through ordinary paths, which the kernel resolves by following
symlinks planted by earlier members.

Here no path is ever followed. Every directory is opened relative to its already verified parent,
one component at a time, with ``O_NOFOLLOW`` (the ``openat(2)`` discipline): a symlink on the way
is an error, not a detour. Each member is then created *in* that directory by name (``mkdirat``,
``mknodat``, ``linkat``...). Device nodes are refused; ownership, modes, times (to the nanosecond)
and extended attributes are kept. OCI whiteouts are converted to the form overlayfs reads in a
lower layer: ``.wh.NAME`` -> a character device 0/0 named NAME, ``.wh..wh..opq`` -> the xattr
``trusted.overlay.opaque=y`` on the directory.

Example::

    >>> with open_layer("layer.tar.gz") as stream:           # from minidocker.overlay.tar
    ...     unpack(stream, "/tmp/empty-dir")                  # LayerError if the tar is hostile
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile

from minidocker.overlay.tar import CHUNK, OPAQUE, OVERLAY_OPAQUE, WHITEOUT_PREFIX, HashingReader, LayerError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import BinaryIO

__all__ = ["Parents", "open_dir", "set_metadata", "split_name", "unpack", "unpack_member"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(member: str, why: str) -> LayerError:
    return LayerError(f"layer refused: member {member!r} {why}")


# exercise 04.1: Refuse member names that could leave the layer
# hint: refuse a name starting with '/'; drop '' and '.' components;
#   refuse any '..' among the rest (raise _refuse(name, why)).
# --8<-- [start:split_name]
def split_name(name: str) -> list[str]:
    """The components of a member name, refusing any that could point outside the layer.

    ``./etc/passwd`` -> ``["etc", "passwd"]``; ``.`` -> ``[]`` (the layer's root). An absolute
    name or a ``..`` anywhere is refused outright: no legitimate layer needs them.
    """
    if name.startswith("/"):
        raise _refuse(name, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "leaves the layer ('..' in its path)")
    return parts
# --8<-- [end:split_name]


# exercise 04.2: Open a directory of the layer without following a symlink
# hint: os.open(part, _DIR_FLAGS, dir_fd=parent) for each part; mkdir what is missing when create;
#   ELOOP/ENOTDIR: lstat says symlink (refuse) or whiteout (replace by an opaque dir).
# --8<-- [start:open_dir]
def open_dir(root_fd: int, parts: list[str], member: str, create: bool = True) -> int:
    """Open the directory ``parts`` below ``root_fd``, one component at a time, never following a link.

    Each step is ``openat(parent, name, O_DIRECTORY | O_NOFOLLOW)``: a symlink anywhere on the way
    makes it fail instead of being followed, so a link planted by an earlier member can never
    redirect a write. Missing directories are created (0755, root), as tar does.
    """
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            where = "/".join(parts[:i + 1])
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise _refuse(member, f"needs {where!r}, which is not in this layer") from None
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.lstat(part, dir_fd=fd)
                if stat.S_ISLNK(st.st_mode):
                    raise _refuse(member, f"goes through the symlink {where!r}") from None
                if not (create and _is_whiteout(st)):
                    raise _refuse(member, f"goes through {where!r}, which is not a directory") from None
                os.unlink(part, dir_fd=fd)  # deleted from the layers below, made again here:
                os.mkdir(part, 0o755, dir_fd=fd)  # a new, opaque directory
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.setxattr(next_fd, OVERLAY_OPAQUE, b"y")
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise
# --8<-- [end:open_dir]


class Parents:
    """The directories of one layer already opened below its root, by path: each walked once.

    ``open_dir`` opens every component of a member's directory, four ``open``s and ``close``s
    for ``usr/share/doc/x``: for a layer of small files, a third of the unpack. The descriptor
    of a directory stays the directory it was verified to be; the walk's result stays true as
    long as nothing on that path is replaced, and an unpack only ever replaces a directory by
    removing it (a member of another type with its name): :meth:`drop` forgets it and everything
    below. At most :attr:`LIMIT` are kept open.

    Example::

        parents = Parents(root_fd)
        fd = parents.open(["usr", "share"], "usr/share/x")    # opened and verified once
        parents.close()
    """

    LIMIT = 256

    def __init__(self, root_fd: int) -> None:
        self.root_fd, self.fds = root_fd, {}

    def open(self, parts: list[str], member: str) -> int:
        """``open_dir(root_fd, parts, member)``, or the descriptor it gave before (not to be closed)."""
        key = tuple(parts)
        fd = self.fds.get(key)
        if fd is None:
            if len(self.fds) >= self.LIMIT:
                self.close()
            fd = self.fds[key] = open_dir(self.root_fd, parts, member)
        return fd

    def drop(self, parts: list[str]) -> None:
        """The directory ``parts`` is about to be removed: forget it and every directory below it."""
        n = len(parts)
        for key in [k for k in self.fds if list(k[:n]) == parts]:
            os.close(self.fds.pop(key))

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in ns, exact when a PAX header carries a decimal fraction."""
    def ns(text: str | None, fallback: float) -> int:
        if text is None:
            return int(fallback) * 1_000_000_000
        whole, _, frac = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * 1_000_000_000 + sign * int((frac + "000000000")[:9])

    mtime = ns(member.pax_headers.get("mtime"), member.mtime)
    atime = ns(member.pax_headers["atime"], 0) if "atime" in member.pax_headers else mtime
    return atime, mtime


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes of a member (PAX ``SCHILY.xattr.*``), minus overlayfs' own: a layer must
    not forge ``trusted.overlay.*`` (redirects, opaque dirs) behind the whiteout conversion's back."""
    found = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted.overlay."):
            found[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
    return found


# exercise 04.3: Give an open file the tar's owner, xattrs and mode, in that order
# hint: os.chown(fd, uid, gid) first (it clears set-id bits and capabilities),
#   then os.setxattr for each of _xattrs(member), then os.chmod(fd, mode & 0o7777).
# --8<-- [start:set_metadata]
def set_metadata(fd: int, member: tarfile.TarInfo) -> None:
    """Give the open file ``fd`` the owner, extended attributes and mode recorded in the tar.

    The order matters: chown(2) clears set-user-ID bits and file capabilities, so it goes first;
    the capability (``security.capability``) comes next, and the mode last.
    """
    os.chown(fd, member.uid, member.gid)
    for name, value in _xattrs(member).items():
        os.setxattr(fd, name, value)
    os.chmod(fd, member.mode & 0o7777)
# --8<-- [end:set_metadata]


def _copy_data(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    """A regular file's content, from the tar to ``fd``.

    Written straight from the blocks our :class:`HashingReader` read (views, not copies) when the
    tar stands at the member's data (always, read in order): tarfile's file object would add three
    layers of calls and a copy per read. A sparse member goes through tarfile, which knows its map.
    """
    if member.size < 0:  # a forged header: the rest of the tar would go into this file
        raise _refuse(member.name, "has a negative size")
    reader = tar.fileobj
    if member.issparse() or not isinstance(reader, HashingReader) or reader.tell() != member.offset_data:
        source = tar.extractfile(member)
        assert source is not None
        read, left = source.read, -1
    else:
        read, left = reader.read_view, member.size
    while left:
        chunk = read(CHUNK if left < 0 else min(CHUNK, left))
        if not chunk:
            if left > 0:
                raise LayerError("layer is not a valid tar archive: unexpected end of data")
            return
        left -= len(chunk) if left > 0 else 0
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


def _remove(name: str, dir_fd: int, st: os.stat_result, parents: Parents | None = None,
            parts: list[str] | None = None) -> None:
    """Remove what ``st`` says ``name`` is; a directory: ``parents`` forgets it (``parts``) and all below."""
    if stat.S_ISDIR(st.st_mode):
        if parents and parts:
            parents.drop(parts)  # the directories walked below it are going
        import shutil  # only when a layer replaces a directory

        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: never follows a symlink inside
    else:
        os.unlink(name, dir_fd=dir_fd)


# exercise 04.4: Unpack one member, in overlayfs form
# hint: split_name, then open_dir on the parent (parents.open, if given: not closed, and parents.drop before
#   a directory is removed); .wh..wh..opq -> opaque xattr on the parent;
#   .wh.NAME -> mknod NAME as a 0/0 char device; dirs: mkdir, set_metadata, times later;
#   anything else: _create_leaf; if FileExistsError, remove what is there and _create_leaf again.
# --8<-- [start:unpack_member]
# --8<-- [start:unpack_member_part1]
def unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int,
                  dir_times: dict[tuple[str, ...], tuple[int, int]], parents: Parents | None = None) -> int:
    # --8<-- [end:unpack_member_part1]
    """Create one member below ``root_fd``, in overlayfs form; return the bytes of content written.

    Everything happens relative to the member's verified parent directory: a member can only
    ever create the one entry its name says, there. OCI whiteouts become what overlayfs reads:
    ``.wh.NAME`` a character device 0/0 named NAME, ``.wh..wh..opq`` an xattr on the directory.
    ``parents`` keeps the directories already walked open (see :class:`Parents`).
    """
    # --8<-- [start:unpack_member_part2]
    parts = split_name(member.name)
    if not parts:  # "./": the layer root's own metadata
        if member.isdir():
            set_metadata(root_fd, member)
            dir_times[()] = _times_ns(member)
        return 0
    parent = parents.open(parts[:-1], member.name) if parents else open_dir(root_fd, parts[:-1], member.name)
    try:
        name = parts[-1]
        if name == OPAQUE:
            os.setxattr(parent, OVERLAY_OPAQUE, b"y")
        elif name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            pass  # other ".wh..wh." names are AUFS bookkeeping: ignored, as Docker does
        elif name.startswith(WHITEOUT_PREFIX):
            hidden = name[len(WHITEOUT_PREFIX):]
            if split_name(hidden) != [hidden]:  # ".wh.." would name the parent
                raise _refuse(member.name, "is a whiteout of an invalid name")
            found = _lstat(hidden, parent)
            if found is None:
                os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            elif stat.S_ISDIR(found.st_mode):  # this layer re-creates it: hide only the old content
                fd = os.open(hidden, _DIR_FLAGS, dir_fd=parent)
                os.setxattr(fd, OVERLAY_OPAQUE, b"y")
                os.close(fd)
        elif member.isdir():
            # --8<-- [end:unpack_member_part2]
            existing = _lstat(name, parent)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                _remove(name, parent, existing)
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            try:
                set_metadata(fd, member)
                if existing is not None and _is_whiteout(existing):
                    os.setxattr(fd, OVERLAY_OPAQUE, b"y")
            finally:
                os.close(fd)
            dir_times[tuple(parts)] = _times_ns(member)  # set last: creating children changes them
        # --8<-- [start:unpack_member_part3]
        else:
            try:  # created first (O_EXCL), looked at only if the name is taken
                return _create_leaf(tar, member, root_fd, parent, name)
            except FileExistsError:
                _remove(name, parent, os.lstat(name, dir_fd=parent), parents, parts)
            return _create_leaf(tar, member, root_fd, parent, name)
        return 0
    finally:
        if not parents:
            os.close(parent)
# --8<-- [end:unpack_member_part3]
# --8<-- [end:unpack_member]


def _create_leaf(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, parent: int, name: str) -> int:
    """A file, symlink, hard link or FIFO named ``name`` in the directory ``parent``."""
    atime, mtime = _times_ns(member)
    if member.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)
        try:
            _copy_data(tar, member, fd)
            set_metadata(fd, member)
            os.utime(fd, ns=(atime, mtime))
        finally:
            os.close(fd)
        return member.size
    if member.issym():  # the target is only text, resolved later inside the container: any is fine
        os.symlink(member.linkname, name, dir_fd=parent)
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        for key, value in _xattrs(member).items():
            with contextlib.suppress(OSError):  # user.* xattrs are not allowed on symlinks
                os.setxattr(f"/proc/self/fd/{parent}/{name}", key, value, follow_symlinks=False)
        os.utime(name, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)
    elif member.islnk():  # the target must be a file this layer already holds
        target = split_name(member.linkname)
        if not target:
            raise _refuse(member.name, "is a hard link to the layer's root")
        target_dir = open_dir(root_fd, target[:-1], member.name, create=False)
        try:
            os.link(target[-1], name, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise _refuse(member.name, f"links to {member.linkname!r}, which is not in this layer") from None
        except PermissionError:
            raise _refuse(member.name, f"is a hard link to the directory {member.linkname!r}") from None
        finally:
            os.close(target_dir)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=parent)
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
        os.utime(name, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)
    elif member.ischr() and member.devmajor == 0 and member.devminor == 0:  # already overlayfs form
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
    elif member.isdev():
        raise _refuse(member.name, "is a device node: layers may not create devices")
    else:
        raise _refuse(member.name, f"has an unsupported type {member.type!r}")
    return 0


_PLAIN = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE))


def _number(field: bytes) -> int:
    """An octal header field, as tarfile's ``nti`` reads it; ValueError for anything else (base-256 too)."""
    end = field.find(b"\0")
    return int((field[:end] if end >= 0 else field) or b"0", 8)


def _text(field: bytes, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field[:end] if end >= 0 else field).decode(encoding, errors)


def _plain_header(buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo | None:
    """The member a plain ustar header describes (a file, directory or link), or None: tarfile's job.

    The same fields, checksum and name rules as ``TarInfo.frombuf`` (a directory's trailing ``/``
    dropped, the ``prefix`` field joined to the name), in a fifth of its time. Anything it would
    read otherwise (a base-256 number, a signed checksum, an odd space) is left to it.
    """
    if len(buf) != tarfile.BLOCKSIZE or buf[156:157] not in _PLAIN:
        return None
    try:
        chksum = _number(buf[148:156])
        if chksum != sum(buf) - sum(buf[148:156]) + 256:
            return None
        m = tarfile.TarInfo(_text(buf[0:100], encoding, errors))
        m.mode, m.uid, m.gid = _number(buf[100:108]), _number(buf[108:116]), _number(buf[116:124])
        m.size, m.mtime, m.chksum = _number(buf[124:136]), _number(buf[136:148]), chksum
        m.type, m.linkname = buf[156:157], _text(buf[157:257], encoding, errors)
        m.uname, m.gname = _text(buf[265:297], encoding, errors), _text(buf[297:329], encoding, errors)
        m.devmajor, m.devminor = _number(buf[329:337]), _number(buf[337:345])
        prefix = _text(buf[345:500], encoding, errors)
    except ValueError:
        return None
    if m.type == tarfile.AREGTYPE and m.name.endswith("/"):
        m.type = tarfile.DIRTYPE  # an old tar's directory
    if m.type == tarfile.DIRTYPE:
        m.name = m.name.rstrip("/")
    if prefix:
        m.name = prefix + "/" + m.name
    return m


def _next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    """The next member of ``tar``, as ``tar.next()``: a plain header read here, anything else by tarfile.

    tarfile spends about 25 µs of Python on each header (a call per field, PAX and GNU cases); a
    layer of small files is mostly headers. PAX and GNU extended headers, sparse files, global
    headers and the archive's end still go through ``tar.next()``, which reads on from where this
    left the tar: the offsets are kept as it keeps them. An archive that ends before its first
    member (a commit of a container that changed nothing) leaves ``tar.offset`` at 0 with the end's
    block read: ``tar.next()`` says None for it, where a seek back to the offset would fail.
    """
    reader = tar.fileobj
    if (tar.firstmember is not None or not tar.offset or tar.pax_headers
            or not isinstance(reader, HashingReader)):
        return tar.next()
    if tar.offset != reader.tell():  # past the data left unread, as tarfile does
        reader.seek(tar.offset - 1)
        if not reader.read(1):
            raise tarfile.ReadError("unexpected end of data")
    member = _plain_header(reader.peek(tarfile.BLOCKSIZE), tar.encoding, tar.errors)
    if member is None:
        return tar.next()
    reader.read(tarfile.BLOCKSIZE)
    member.offset, member.offset_data = tar.offset, tar.offset + tarfile.BLOCKSIZE
    tar.offset = member.offset_data + (-(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                                       if member.isreg() else 0)
    return member


# exercise 04.5: Unpack a whole layer tar, once and in order
# hint: wrap the stream in a HashingReader; tarfile.open(fileobj=..., mode='r:');
#   unpack_member for each _next_member(tar); directory times last; TarError/OSError -> LayerError.
# --8<-- [start:unpack]
def unpack(stream: BinaryIO, dest: str | os.PathLike) -> int:
    """Unpack an uncompressed layer tar from ``stream`` into the directory ``dest``, safely.

    The tar is read strictly in order, once: nothing is held in memory but the current member.
    Raises :class:`LayerError` at the first unsafe or broken member; the caller throws ``dest``
    away then. Returns the number of bytes of file content.
    """
    reader = stream if isinstance(stream, HashingReader) else HashingReader(stream)
    root_fd = os.open(dest, _DIR_FLAGS)
    parents = Parents(root_fd)
    size = 0
    dir_times: dict[tuple[str, ...], tuple[int, int]] = {}
    try:
        with tarfile.open(fileobj=reader, mode="r:") as tar:  # in order: forward "seeks" only
            while (member := _next_member(tar)) is not None:
                size += unpack_member(tar, member, root_fd, dir_times, parents)
                tar.members.clear()  # a stream has no index to keep: constant memory
        parents.close()
        for parts, times in dir_times.items():  # directory times last: children changed them
            with contextlib.suppress(LayerError):  # unless a later member replaced the directory
                fd = open_dir(root_fd, list(parts), "/".join(parts), create=False)
                os.utime(fd, ns=times)
                os.close(fd)
    except tarfile.TarError as e:
        raise LayerError(f"layer is not a valid tar archive: {e}") from None
    except OSError as e:
        raise LayerError(f"layer could not be unpacked: {e}") from None
    finally:
        parents.close()
        os.close(root_fd)
    return size
# --8<-- [end:unpack]
