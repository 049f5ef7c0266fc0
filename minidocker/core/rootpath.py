"""Paths inside a container's root filesystem, resolved from the host as the container will see them.

Before pivot_root the engine works on the container's tree from the host: it creates
``/etc/hostname`` to bind a file over it, the target of a ``-v``, ``/proc``. A path of that tree
joined to the root as a string (``os.path.join(root, "etc/hostname")``) and given to open(2) or
mount(2) is resolved by the kernel as a *host* path: if the image made ``/etc/hostname`` a symlink
to ``/tmp/pwned``, the engine creates ``/tmp/pwned`` on the host, and mounts over it
(CVE-2014-9356's class). So every such path is resolved as if the root were ``/``: ``..`` stops
at the root, an absolute symlink starts again from the root.

openat2(2) with ``RESOLVE_IN_ROOT`` does exactly that in the kernel (Linux 5.6+). Older kernels
get a walk of our own, one component at a time: each opened ``O_NOFOLLOW`` relative to the
directory before it, each symlink read and resolved again from the root, ``..`` taken from our
own stack of open directories, never from the tree. What comes back is a file descriptor, not a
path, since a path would be resolved again after the tree may have changed; mount(2) is given the
descriptor as ``/proc/self/fd/N``, as runc does.

Example::

    >>> fd = open_in_root(root, "/etc/hostname", os.O_PATH)   # inside root, whatever the links say
    >>> mount(source, fd_path(fd), None, MS_BIND); os.close(fd)
"""

from __future__ import annotations

import errno
import os
import stat

from minidocker.core import syscalls as _syscalls

__all__ = ["MAX_SYMLINKS", "fd_path", "mkdirs_in_root", "open_in_root"]

MAX_SYMLINKS = 40  # what Linux follows in one lookup before ELOOP
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_kernel_resolves = True  # until openat2(2) says ENOSYS: then the walk of our own, for good


def fd_path(fd: int) -> str:
    """The name that reaches exactly the file ``fd`` is open on: for mount(2), which takes no descriptor."""
    return f"/proc/self/fd/{fd}"


def open_in_root(root: str | os.PathLike, path: str, flags: int = os.O_PATH, mode: int = 0o644) -> int:
    """Open ``path`` (absolute or not) of the tree at ``root`` as if ``root`` were ``/``; return the fd.

    ``flags`` are os.open's; with ``O_CREAT`` a missing last component is created, inside ``root``.
    Raises OSError like os.open (FileNotFoundError, ELOOP for too many links, ...).
    """
    root_fd = os.open(root, _DIR)
    try:
        return _open(root_fd, path, flags, mode)
    finally:
        os.close(root_fd)


def mkdirs_in_root(root: str | os.PathLike, path: str, mode: int = 0o755) -> int:
    """``mkdir -p path`` inside the tree at ``root``, each component resolved inside it; an O_PATH fd.

    A component that is a symlink is followed, inside ``root``; one that exists and is not a
    directory is an error (NotADirectoryError), as is a symlink pointing nowhere.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    root_fd = os.open(root, _DIR)
    try:
        for depth in range(1, len(parts) + 1):
            here = "/".join(parts[:depth])
            try:
                fd = _open(root_fd, here, _DIR)
            except FileNotFoundError:
                parent = _open(root_fd, "/".join(parts[:depth - 1]), _DIR)
                try:
                    os.mkdir(parts[depth - 1], mode, dir_fd=parent)
                except FileExistsError:  # a symlink to nothing: where it points is not ours to guess
                    raise OSError(errno.ENOENT, "a symlink to nowhere in the container's tree",
                                  "/" + here) from None
                finally:
                    os.close(parent)
                fd = _open(root_fd, here, _DIR)
            if depth == len(parts):
                return fd
            os.close(fd)
        return os.dup(root_fd)
    finally:
        os.close(root_fd)


def _open(root_fd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """:func:`open_in_root` on an open root: the kernel's resolution if it has one, else ours."""
    global _kernel_resolves
    relative = path.lstrip("/") or "."
    if _kernel_resolves:
        try:
            return _syscalls.openat2(root_fd, relative, flags | os.O_CLOEXEC,
                                     mode if flags & os.O_CREAT else 0,  # EINVAL otherwise
                                     _syscalls.RESOLVE_IN_ROOT | _syscalls.RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            _kernel_resolves = False
    return _walk(root_fd, relative, flags, mode)


def _walk(root_fd: int, path: str, flags: int, mode: int) -> int:
    """Resolve ``path`` below ``root_fd`` one component at a time, as RESOLVE_IN_ROOT would."""
    todo = [p for p in path.split("/") if p and p != "."]
    stack = [os.dup(root_fd)]  # the directories from the root down to where we are
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":  # from our stack: a directory moved meanwhile cannot take us out
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not todo
            try:
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=stack[-1])
                raise
            if stat.S_ISLNK(st.st_mode) and not (last and flags & os.O_NOFOLLOW):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):  # absolute: from the container's root, not the host's
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo[:0] = [p for p in target.split("/") if p and p != "."]
                continue
            if last:  # O_NOFOLLOW: a symlink swapped in since the stat is refused, not followed
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=stack[-1])
            stack.append(os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=stack[-1]))
        return os.open(".", (flags & ~os.O_CREAT) | os.O_CLOEXEC, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)
