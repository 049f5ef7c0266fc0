"""Chapter 02: the container's own filesystem tree: private propagation, /proc, /dev, /sys, pivot_root.

A new mount namespace starts as a *copy* of the host's mount table. To give the container a tree of
its own, the container's first process (inside the new namespaces) does, in order:

1. make every mount private, so nothing it mounts propagates back to the host;
2. bind-mount the rootfs onto itself, because pivot_root(2) wants a mount point;
3. mount a fresh ``/proc`` (this PID namespace's processes), a minimal ``/dev`` and a read-only ``/sys``;
4. pivot_root into it and detach the old root, so no path leads back to the host's files.

Unlike chroot, step 4 leaves nothing of the host reachable: ``..`` at the new root is the root.

Example (in a child that has already unshared ``CLONE_NEWNS|CLONE_NEWPID`` and forked)::

    make_mounts_private()
    prepare_root("/var/cache/minidocker/rootfs/busybox")
    pivot_into("/var/cache/minidocker/rootfs/busybox")
"""

from __future__ import annotations

import os
import stat

from minidocker.core.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    mount,
    pivot_root,
    umount2,
)

__all__ = ["DEVICES", "make_mounts_private", "make_mounts_slave", "mount_dev", "mount_proc", "mount_sys",
           "pivot_into", "prepare_root"]

# The device nodes every container gets, as Docker and runc create them: name -> (major, minor).
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
           "tty": (5, 0)}


# exercise 02.4: Stop mount propagation between the container and the host
# hint: one mount() call: no source, target "/", no type, flags MS_REC | MS_PRIVATE.
# --8<-- [start:make_mounts_private]
def make_mounts_private() -> None:
    """Stop mount events from propagating between this mount namespace and the host's.

    On systemd hosts ``/`` is a *shared* mount: without this, our /proc or /dev mounts would appear
    on the host too, and the host's new mounts inside the container.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
# --8<-- [end:make_mounts_private]


# --8<-- [start:make_mounts_slave]
def make_mounts_slave() -> None:
    """Let mount events flow one way only: from the host into this mount namespace, never back.

    What runc does for ``rootfsPropagation: rslave``: a bind mount that asks for ``rslave``
    propagation (``-v /mnt:/mnt:rslave``) sees what the host mounts under its source later, and
    that needs the whole tree to be a slave of the host's, not cut off from it.
    """
    mount(None, "/", None, MS_REC | MS_SLAVE)
# --8<-- [end:make_mounts_slave]


# exercise 02.6: Mount a /proc that shows only this PID namespace
# hint: create root/proc if needed and mount a "proc" filesystem on it, MS_NOSUID | MS_NOEXEC | MS_NODEV.
# --8<-- [start:mount_proc]
def mount_proc(root: str) -> None:
    """Mount a procfs showing only this PID namespace's processes at ``root/proc``."""
    target = os.path.join(root, "proc")
    os.makedirs(target, exist_ok=True)
    mount("proc", target, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
# --8<-- [end:mount_proc]


# exercise 02.7: Give the container a minimal /dev
# hint: a tmpfs on root/dev (MS_NOSUID, "mode=755,size=65536k"); mknod the DEVICES (0o666, and chmod:
#   the umask applies) or, where mknod is refused (user namespace), bind-mount the host's node
#   over an empty file; a devpts with newinstance on dev/pts and a ptmx symlink to pts/ptmx; tmpfs
#   dev/shm; mqueue dev/mqueue; fd, stdin, stdout, stderr: symlinks into /proc/self/fd.
# --8<-- [start:mount_dev]
def mount_dev(root: str) -> None:
    """Give the container a minimal ``/dev``: a few harmless devices, its own ptys, shm and mqueue.

    The host's ``/dev`` holds disks and memory; the container gets a fresh tmpfs with only the
    devices Docker allows. Inside a user namespace mknod(2) is forbidden, so there we bind-mount
    the host's node over an empty file instead (what rootless runc does).
    """
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(dev, name)
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, 0o666)  # mknod applies the umask
        except PermissionError:
            open(path, "w").close()
            mount(f"/dev/{name}", path, None, MS_BIND)
    os.makedirs(os.path.join(dev, "pts"))
    mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.makedirs(os.path.join(dev, "shm"))
    mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    os.makedirs(os.path.join(dev, "mqueue"))
    mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))
# --8<-- [end:mount_dev]


# exercise 02.8: Mount /sys read-only
# hint: mount sysfs on root/sys with MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC; on PermissionError
#   (a user namespace without its own network) bind the host's /sys recursively, then remount
#   the bind with the same flags plus MS_REMOUNT | MS_BIND.
# --8<-- [start:mount_sys]
def mount_sys(root: str) -> None:
    """Mount ``/sys`` read-only: a container may look at the kernel's objects, never change them.

    A sysfs mount shows the network devices of the *current* network namespace, which is why it
    comes after unshare(CLONE_NEWNET). Where a fresh sysfs is not allowed (a user namespace sharing
    the host's network) we bind the host's ``/sys`` read-only instead.
    """
    target = os.path.join(root, "sys")
    os.makedirs(target, exist_ok=True)
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        mount("sysfs", target, "sysfs", flags)
    except PermissionError:
        mount("/sys", target, None, MS_BIND | MS_REC)
        mount(None, target, None, MS_REMOUNT | MS_BIND | flags)
# --8<-- [end:mount_sys]


# exercise 02.5: Turn the rootfs into a mount point holding /proc, /dev and /sys
# hint: bind-mount root onto itself (MS_BIND | MS_REC: pivot_root wants a mount point), then
#   mount_proc, mount_dev and mount_sys under it.
# --8<-- [start:prepare_root]
def prepare_root(root: str) -> None:
    """Turn the directory ``root`` into a mount point holding /proc, /dev and /sys.

    pivot_root(2) refuses a plain directory: the new root must be a mount point, so the rootfs is
    first bind-mounted onto itself.
    """
    mount(root, root, None, MS_BIND | MS_REC)
    mount_proc(root)
    mount_dev(root)
    mount_sys(root)
# --8<-- [end:prepare_root]


# exercise 02.9: Pivot into the new root and detach the old one
# hint: chdir into root; pivot_root(".", ".") stacks the old root over the new one at "/";
#   umount2(".", MNT_DETACH) detaches it; then chdir("/").
# --8<-- [start:pivot_into]
def pivot_into(root: str) -> None:
    """Make ``root`` the root of this mount namespace and detach the old one completely.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one at ``/``; detaching the top
    of that stack leaves only the container's tree. (This is runc's trick: no ``put_old`` directory
    is needed, so a read-only rootfs works too.)
    """
    os.chdir(root)
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")
# --8<-- [end:pivot_into]

