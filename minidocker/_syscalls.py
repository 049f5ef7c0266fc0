"""The one narrow seam between minidocker and the kernel: ctypes wrappers named after the syscalls.

Python 3.11 has no ``os.unshare``, ``os.setns`` or ``mount``, so minidocker calls libc directly.
Every wrapper is named after its syscall, takes the syscall's arguments in the same order, and
raises ``OSError`` with the real ``errno`` (and the path involved, when there is one) on failure,
exactly like the functions of the ``os`` module do. Nothing else in the package uses ctypes for
syscalls; reading this file tells you every privileged thing the engine asks of the kernel.

Example (as root)::

    >>> from minidocker import _syscalls as sc
    >>> pid = os.fork()
    >>> if pid == 0:
    ...     sc.unshare(sc.CLONE_NEWUTS)
    ...     sc.sethostname("box")        # only this child sees the new name
    ...     os._exit(0)
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = [
    "CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID",
    "CLONE_NEWUSER", "CLONE_NEWUTS", "MNT_DETACH", "MS_BIND", "MS_NODEV", "MS_NOEXEC",
    "MS_NOSUID", "MS_PRIVATE", "MS_RDONLY", "MS_REC", "MS_REMOUNT", "MS_SLAVE",
    "mount", "pivot_root", "prctl", "sethostname", "setns", "umount2", "unshare",
]

# <linux/sched.h>: one flag per namespace type, shared by clone(2), unshare(2) and setns(2).
CLONE_NEWNS = 0x00020000  # mount
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000  # hostname and domain name
CLONE_NEWIPC = 0x08000000  # System V IPC, POSIX message queues
CLONE_NEWUSER = 0x10000000  # user and group ids, capabilities
CLONE_NEWPID = 0x20000000  # process ids (for the children of the caller)
CLONE_NEWNET = 0x40000000  # network devices, addresses, routes, firewall

# <linux/mount.h>: mount(2) flags.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2  # umount2(2): detach now, free when no longer busy

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# Syscalls glibc has no wrapper for, by machine.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(result: int, *paths: str | None) -> int:
    """Turn libc's ``-1`` + errno into an ``OSError`` that keeps errno and names the path."""
    if result == -1:
        err = ctypes.get_errno()
        named = [p for p in paths if p]
        raise OSError(err, os.strerror(err), *named[:2])
    return result


def _b(value: str | bytes | None) -> bytes | None:
    return os.fsencode(value) if isinstance(value, str) else value


# --8<-- [start:unshare]
def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces of the given ``CLONE_NEW*`` kinds."""
    _check(_libc.unshare(flags))
# --8<-- [end:unshare]


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace that ``fd`` (an open ``/proc/PID/ns/*`` file) refers to."""
    _check(_libc.setns(fd, nstype))


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2): attach a filesystem (or bind, move, remount, change propagation) at ``target``."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2): detach the filesystem mounted at ``target``."""
    _check(_libc.umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make ``new_root`` the root of this mount namespace; the old root goes to ``put_old``."""
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), new_root)


def sethostname(name: str) -> None:
    """sethostname(2): set the hostname of the calling process's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2): per-process settings such as ``PR_SET_CHILD_SUBREAPER`` and ``PR_SET_PDEATHSIG``."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5))
