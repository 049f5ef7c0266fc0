"""Chapter 06: masked and read-only paths: the parts of /proc and /sys that reach the host, hidden or frozen.

A container's ``/proc`` and ``/sys`` are its own mounts, but many of their files are not about the
container: they are the *host's* kernel. ``/proc/sysrq-trigger`` reboots the machine, ``/proc/kcore``
is its memory, ``/proc/sys/kernel/core_pattern`` names a program the host runs as root on every
crash, ``/proc/timer_list`` lists the host's processes. Docker (and runc) handle them in two ways:

* **masked**: a file gets ``/dev/null`` bind-mounted over it, a directory an empty read-only
  tmpfs: it looks empty;
* **read-only**: bind-mounted onto itself and remounted read-only: readable, never writable.

Both happen before pivot_root, under the new root, on top of the fresh ``/proc`` and ``/sys``.
``--read-only`` freezes the root filesystem itself the same way.

Example (in the container, after /proc, /dev and /sys are mounted under ``root``)::

    mask_paths(root, MASKED_PATHS)
    make_read_only(root, READONLY_PATHS)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from minidocker.core.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
)

__all__ = ["MASKED_PATHS", "READONLY_PATHS", "add_host_devices", "make_read_only", "mask_paths",
           "remount_read_only", "writable_sys"]

# Docker 28's lists (moby oci/defaults.go).
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# statvfs(3) flags -> mount(2) flags that a remount must keep (in a user namespace it may not drop them).
_KEEP = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
         os.ST_NOATIME: 1024, os.ST_NODIRATIME: 2048, os.ST_RELATIME: 1 << 21}


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


# exercise 06.8: Mask paths: /dev/null over files, an empty read-only tmpfs over directories
# hint: skip paths that do not exist (os.lstat raises FileNotFoundError); a directory gets
#   mount("tmpfs", target, "tmpfs", MS_RDONLY); anything else a bind mount (MS_BIND) of root's
#   own /dev/null.
# --8<-- [start:mask_paths]
def mask_paths(root: str, paths: Iterable[str]) -> None:
    """Hide each of ``paths`` (container paths, under ``root``): empty file or empty directory.

    A path the kernel does not have (no ``/proc/kcore`` on this kernel, say) is skipped. ``/dev/null``
    is the container's own, mounted under ``root`` a moment ago.
    """
    null = _inside(root, "/dev/null")
    for path in paths:
        target = _inside(root, path)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            mount("tmpfs", target, "tmpfs", MS_RDONLY)
        else:
            mount(null, target, None, MS_BIND)
# --8<-- [end:mask_paths]


# exercise 06.9: Remount a mount point read-only, keeping its other flags
# hint: read os.statvfs(path).f_flag; collect the MS_ flags of _KEEP that are set; then
#   mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept).
# --8<-- [start:remount_read_only]
def remount_read_only(path: str) -> None:
    """Make the mount at ``path`` read-only, keeping its nosuid/nodev/noexec/atime flags.

    ``MS_REMOUNT | MS_BIND`` changes the flags of this one mount, not of the filesystem behind it
    (the host's ``/proc`` stays writable). Flags a remount leaves out are cleared, and in a user
    namespace clearing a flag set by the host is refused: so we keep what ``statvfs`` reports.
    """
    current = os.statvfs(path).f_flag
    kept = 0
    for st_flag, ms_flag in _KEEP.items():
        if current & st_flag:
            kept |= ms_flag
    mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
# --8<-- [end:remount_read_only]


# --8<-- [start:make_read_only]
def make_read_only(root: str, paths: Iterable[str]) -> None:
    """Make each of ``paths`` read-only: bind it onto itself, then remount that bind read-only."""
    for path in paths:
        target = _inside(root, path)
        if not os.path.lexists(target):
            continue
        mount(target, target, None, MS_BIND | MS_REC)
        remount_read_only(target)
# --8<-- [end:make_read_only]


def writable_sys(root: str) -> None:
    """``--privileged``: make chapter 02's read-only ``/sys`` writable, as Docker does.

    A full remount (not ``MS_BIND``): the sysfs of a new network namespace is a superblock of its
    own, mounted read-only. Mounts under it (chapter 03's ``/sys/fs/cgroup``) stay as they are.
    """
    mount(None, _inside(root, "/sys"), None, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def add_host_devices(root: str) -> None:
    """``--privileged``: every device node of the host's ``/dev`` (top level) in the container's too."""
    dev = _inside(root, "/dev")
    for entry in os.scandir("/dev"):
        info = entry.stat(follow_symlinks=False)
        target = os.path.join(dev, entry.name)
        if (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)) and not os.path.lexists(target):
            try:
                os.mknod(target, info.st_mode, info.st_rdev)
            except PermissionError:  # a user namespace: no device nodes at all
                return
