"""Chapter 10: files in and out of a container (``docker cp``), resolved inside its root.

``docker cp`` asks three things of the daemon: what is at a path in the container (``HEAD``: a
stat in the ``X-Docker-Container-Path-Stat`` header), the path as a tar (``GET``), and a tar
unpacked into a directory (``PUT``). Each path is the *container's*: a symlink in the image that
says ``/etc -> /`` or ``x -> ../../../../host`` must not lead the daemon, which runs as root on the
host, out of the container's tree. So nothing here joins strings to a host path: the root is opened
once and every lookup below it is resolved as if it were ``/`` (:mod:`minidocker.core.rootpath`,
openat2's ``RESOLVE_IN_ROOT``), every entry of a copied tree is opened ``O_NOFOLLOW`` relative to its
parent (chapter 04's ``add_at``), and a tar coming in is unpacked member by member below the
verified directory (chapter 04's ``unpack_member``), as a hostile layer is.

Which root? A running container's is ``/proc/PID/root``: the kernel's view of the container's own
mount namespace, with its volumes and binds; it is paused (its cgroup frozen) while we copy, so that
no process of it can swap a directory we checked for a symlink between our steps (CVE-2018-15664).
A stopped one's overlay is mounted for the copy and unmounted after (its volumes are not there
then: dockerd mounts them too; we copy the container's own filesystem only).

Example::

    with container_root(images, c) as root:
        stat = path_stat(root, "/etc/hostname")     # {"name": "hostname", "size": 13, ...}
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from minidocker.core import errors
from minidocker.core.rootpath import open_in_root
from minidocker.daemon.images import paused
from minidocker.overlay.tar import WHITEOUT_PREFIX, LayerError, add_at
from minidocker.overlay.untar import open_dir, unpack_member

__all__ = ["container_root", "extract", "pack", "path_stat", "stat_header"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Go's os.FileMode bits, which the docker CLI reads from the stat header.
_GO_MODE = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
            (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26), (stat.S_ISCHR, (1 << 26) | (1 << 21)))


@contextlib.contextmanager
def container_root(images: Any, container: Any) -> Iterator[str]:
    """The directory that is the container's ``/``: its live root, or its overlay mounted for now."""
    pid = int(container.state.get("Pid") or 0) if container.running else 0
    if pid:
        with paused(pid):  # nothing in it can swap a directory for a symlink while we walk it
            yield f"/proc/{pid}/root"
        return
    try:
        fs = images.container_fs(container.id)
    except errors.EngineError:
        raise errors.NotFound(f"container {container.id[:12]} has no filesystem") from None
    mounted_here = not fs.mounted()
    root = fs.mount()
    try:
        yield str(root)
    finally:
        if mounted_here:
            fs.unmount()


def _missing(path: str, container: str) -> errors.NotFound:
    return errors.NotFound(f"Could not find the file {path} in container {container}")


def _absolute(path: str) -> str:
    """The container path ``path`` absolute, keeping a trailing ``/.`` or ``/`` (they mean "contents")."""
    if not path:
        raise errors.InvalidArgument("path is required (path=)")
    joined = posixpath.normpath(posixpath.join("/", path))
    if path.endswith("/.") and joined != "/":
        return joined + "/."
    if path.endswith("/") and joined != "/":
        return joined + "/"
    return joined


def path_stat(root: str, path: str, container: str = "") -> dict[str, Any]:
    """What ``path`` is in the container, not following a last symlink: Docker's ContainerPathStat."""
    absolute = _absolute(path)
    flags = os.O_PATH | os.O_CLOEXEC | (0 if absolute.endswith(("/", "/.")) else os.O_NOFOLLOW)
    try:
        fd = open_in_root(root, absolute.rstrip("/") or "/", flags)
    except OSError:
        raise _missing(path, container) from None
    try:
        st = os.fstat(fd)
        target = ""
        if stat.S_ISLNK(st.st_mode):  # where it points, as the container sees it (one level)
            parent = posixpath.dirname(absolute)
            target = posixpath.normpath(posixpath.join(parent, _readlink(root, absolute)))
    finally:
        os.close(fd)
    mode = stat.S_IMODE(st.st_mode) & 0o777
    for test, bit in _GO_MODE:
        if test(st.st_mode):
            mode |= bit
    mode |= (1 << 23 if st.st_mode & stat.S_ISUID else 0) | (1 << 22 if st.st_mode & stat.S_ISGID else 0) \
        | (1 << 20 if st.st_mode & stat.S_ISVTX else 0)
    seconds, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
    mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (f".{nanos:09d}".rstrip("0") if nanos
                                                                       else "") + "Z"
    name = posixpath.basename(absolute.rstrip("/").removesuffix("/.")) or "/"
    return {"name": name, "size": st.st_size, "mode": mode, "mtime": mtime, "linkTarget": target}


def _readlink(root: str, absolute: str) -> str:
    """The text of the symlink at ``absolute`` (its parent resolved inside ``root``)."""
    parent = open_in_root(root, posixpath.dirname(absolute), _DIR)
    try:
        return os.readlink(posixpath.basename(absolute), dir_fd=parent)
    finally:
        os.close(parent)


def stat_header(found: dict[str, Any]) -> str:
    """The ``X-Docker-Container-Path-Stat`` header: the stat as base64 of its JSON."""
    return base64.b64encode(json.dumps(found).encode()).decode()


def pack(root: str, path: str, out: BinaryIO, container: str = "") -> None:
    """Write ``path`` of the container to ``out`` as a tar: named by its base name, or ``.`` for ``dir/.``."""
    absolute = _absolute(path)
    found = path_stat(root, path, container)
    top = "." if absolute.endswith("/.") else found["name"]
    where = absolute.rstrip("/").removesuffix("/.") or "/"
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if where == "/":
            fd = open_in_root(root, "/", _DIR)
            _add_tree(tar, fd, "." if top in ("/", ".") else top)
            return
        parent = open_in_root(root, posixpath.dirname(where), _DIR)
        try:
            name = posixpath.basename(where)
            if absolute.endswith(("/", "/.")) and found["mode"] & (1 << 31):  # a link to a dir, followed
                fd = open_in_root(root, where, _DIR)
                _add_tree(tar, fd, top)
            else:
                _add(tar, parent, name, top)
        finally:
            os.close(parent)


def _add(tar: tarfile.TarFile, parent: int, name: str, arcname: str) -> None:
    """One entry of ``parent`` (not followed), and all below it if it is a directory."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        _add_tree(tar, os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent), arcname)
    elif not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):  # device nodes stay where they are
        add_at(tar, parent, name, arcname)


def _add_tree(tar: tarfile.TarFile, fd: int, arcname: str) -> None:
    """The open directory ``fd`` (closed here) and everything below it, in name order."""
    try:
        add_at(tar, fd, ".", arcname, fd=fd)
        for name in sorted(os.listdir(fd)):
            _add(tar, fd, name, f"{arcname}/{name}" if arcname != "." else name)
    finally:
        os.close(fd)


def extract(root: str, path: str, stream: BinaryIO, *, no_overwrite_dir_non_dir: bool = False,
            container: str = "") -> None:
    """Unpack the tar ``stream`` into the directory ``path`` of the container, nothing outside it.

    ``no_overwrite_dir_non_dir`` (the docker CLI always sets it): a directory is never replaced by a
    file, nor a file by a directory.
    """
    absolute = _absolute(path).rstrip("/").removesuffix("/.") or "/"
    try:
        dest = open_in_root(root, absolute, _DIR)
    except NotADirectoryError:
        raise errors.InvalidArgument(f"extraction point is not a directory: {path}") from None
    except OSError:
        raise _missing(path, container) from None
    times: dict[tuple[str, ...], tuple[int, int]] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if any(p.startswith(WHITEOUT_PREFIX) for p in parts):
                    raise errors.InvalidArgument(f"refusing {member.name!r}: a whiteout name")
                if no_overwrite_dir_non_dir and parts:
                    _check_overwrite(dest, parts, member)
                unpack_member(tar, member, dest, times)
                tar.members.clear()
    except (tarfile.TarError, LayerError) as e:
        raise errors.InvalidArgument(f"cannot extract the archive: {e}") from None
    except OSError as e:
        if e.errno == 30:  # EROFS
            raise errors.Forbidden("container rootfs is marked read-only") from None
        raise errors.InvalidArgument(f"cannot extract the archive: {e.strerror}") from None
    finally:
        os.close(dest)


def _check_overwrite(dest: int, parts: list[str], member: tarfile.TarInfo) -> None:
    try:  # each component opened O_NOFOLLOW below the last (chapter 04's discipline)
        parent = open_dir(dest, parts[:-1], member.name, create=False)
    except (LayerError, OSError):
        return  # its parent does not exist yet (or is not a directory): unpack_member decides
    try:
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except OSError:
        return
    finally:
        os.close(parent)
    if stat.S_ISDIR(st.st_mode) and not member.isdir():
        raise errors.InvalidArgument(f"cannot overwrite directory {'/'.join(parts)!r} with non-directory")
    if not stat.S_ISDIR(st.st_mode) and member.isdir():
        raise errors.InvalidArgument(f"cannot overwrite non-directory {'/'.join(parts)!r} with directory")
