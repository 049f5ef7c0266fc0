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
import struct

__all__ = [
    "CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID",
    "CLONE_NEWUSER", "CLONE_NEWUTS", "MNT_DETACH", "MS_BIND", "MS_NODEV", "MS_NOEXEC",
    "MS_NOSUID", "MS_PRIVATE", "MS_RDONLY", "MS_REC", "MS_REMOUNT", "MS_SHARED", "MS_SLAVE",
    "RESOLVE_IN_ROOT", "RESOLVE_NO_MAGICLINKS",
    "bpf", "capget", "capset", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
    "openat2", "pivot_root", "prctl",
    "seccomp", "sethostname", "setns", "umount2", "unshare",
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
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2  # umount2(2): detach now, free when no longer busy

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4  # 0: no core dump, and no ptrace, /proc/PID/fd, mem... but root's
PR_SET_CHILD_SUBREAPER = 36
PR_SET_KEEPCAPS = 8  # keep the permitted capabilities across setuid() away from root
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24  # remove a capability from the bounding set, for good
PR_SET_NO_NEW_PRIVS = 38  # execve() can never grant privileges again (setuid bits, file caps)
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_CLEAR_ALL = 1, 2, 3, 4

# <linux/capability.h>: capget(2)/capset(2) use two 32-bit words per set since version 3.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# <linux/seccomp.h>
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1, 2, 4

# <linux/mount.h>: the new mount API (open_tree, move_mount, mount_setattr), Linux 5.2+ / 5.12+.
OPEN_TREE_CLONE = 1  # a detached copy of the tree, not attached anywhere yet
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x00100000  # show the files' owners through a user namespace's id map

# <linux/openat2.h>: struct open_how's resolve flags (Linux 5.6+).
RESOLVE_NO_MAGICLINKS = 0x02  # no /proc/PID/fd/N style jumps
RESOLVE_IN_ROOT = 0x10  # resolve as if dirfd were "/": "..", absolute symlinks stay below it

# Syscalls glibc has no wrapper for, by machine.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "ppc64le": 358, "s390x": 348}
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_OPENAT2, _SYS_MOUNT_SETATTR = 428, 429, 437, 442  # on every machine

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.capget.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_libc.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_libc.syscall.restype = ctypes.c_long
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_int]


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
    _check(_libc.syscall(_syscall_number(_SYS_PIVOT_ROOT, "pivot_root"), _b(new_root), _b(put_old)), new_root)


def sethostname(name: str) -> None:
    """sethostname(2): set the hostname of the calling process's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2): per-process settings such as ``PR_SET_CHILD_SUBREAPER`` and ``PR_SET_PDEATHSIG``."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5))


def _syscall_number(table: dict[str, int], name: str) -> int:
    machine = os.uname().machine  # what platform.machine() says, without importing platform (2 ms)
    number = table.get(machine)
    if number is None:
        raise OSError(38, f"{name}: unknown syscall number on {machine}")
    return number


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): the ``(effective, permitted, inheritable)`` sets of ``pid`` (0: us), as bitmasks."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (ctypes.c_uint32 * 6)()  # two struct __user_cap_data_struct {effective, permitted, inheritable}
    _check(_libc.capget(header, data))
    return tuple(data[i] | data[i + 3] << 32 for i in range(3))  # type: ignore[return-value]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2): set this thread's effective, permitted and inheritable capability sets (bitmasks)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    low, high = 0xFFFFFFFF, 32
    data = (ctypes.c_uint32 * 6)(effective & low, permitted & low, inheritable & low,
                                 effective >> high, permitted >> high, inheritable >> high)
    _check(_libc.capset(header, data))


def seccomp(operation: int, flags: int, program: bytes) -> None:
    """seccomp(2) with ``SECCOMP_SET_MODE_FILTER``: install ``program``, classic BPF, 8 bytes an instruction.

    The wrapper builds the ``struct sock_fprog`` (length + pointer) the kernel expects from the bytes.
    """
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(code))
    _check(_libc.syscall(_syscall_number(_SYS_SECCOMP, "seccomp"), operation, flags,
                         ctypes.create_string_buffer(fprog, len(fprog))))


def bpf(cmd: int, attr: bytes) -> int:
    """bpf(2): run ``cmd`` (``BPF_PROG_LOAD``, ``BPF_PROG_ATTACH``...) on ``attr``, a packed ``bpf_attr``."""
    buffer = ctypes.create_string_buffer(attr, len(attr))
    return _check(_libc.syscall(_syscall_number(_SYS_BPF, "bpf"), cmd, buffer, len(attr)))


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): a file descriptor for the mount at ``path``, or (``OPEN_TREE_CLONE``) a detached copy."""
    return _check(_libc.syscall(_SYS_OPEN_TREE, dirfd, _b(path), flags), path)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    """move_mount(2): attach a mount (e.g. a detached one from :func:`open_tree`) at ``to_path``."""
    _check(_libc.syscall(_SYS_MOVE_MOUNT, from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags),
           to_path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    """mount_setattr(2): change a mount's attributes, e.g. ``MOUNT_ATTR_IDMAP`` with a user namespace."""
    attr = struct.pack("QQQQ", attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, dirfd, _b(path), flags,
                         ctypes.create_string_buffer(attr, len(attr)), len(attr)), path)


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open(2) relative to ``dirfd`` with rules for resolving ``path`` (``RESOLVE_*``).

    With ``RESOLVE_IN_ROOT`` every ``..`` and absolute symlink stays below ``dirfd``: a path of a
    container's tree, resolved from the host, as the container will see it. ENOSYS before Linux 5.6.
    """
    how = struct.pack("QQQ", flags, mode, resolve)  # struct open_how
    return _check(_libc.syscall(_SYS_OPENAT2, dirfd, _b(path), ctypes.create_string_buffer(how, len(how)),
                                len(how)), path)


def name_to_handle_at(dirfd: int, path: str, flags: int = 0) -> bytes:
    """name_to_handle_at(2): the ``struct file_handle`` that names ``path`` on its filesystem, packed.

    ``open_by_handle_at(2)`` turns those bytes back into an open file, on any mount of the same
    filesystem, *without a path*: why ``CAP_DAC_READ_SEARCH``, which it needs, is never a container's.
    """
    size = 128  # MAX_HANDLE_SZ
    handle = ctypes.create_string_buffer(struct.pack("Ii", size, 0), 8 + size)
    mount_id = ctypes.c_int()
    _check(_libc.name_to_handle_at(dirfd, _b(path), handle, ctypes.byref(mount_id), flags), path)
    length = struct.unpack_from("I", handle.raw)[0]
    return handle.raw[:8 + length]
