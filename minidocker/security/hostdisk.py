"""Chapter 06: a disk of the host for the disk attacks: a small ext4 image on a loop device.

Two attacks of the battery (:mod:`minidocker.security.attacks`) go for a block device of the host: make a
node for it with ``mknod``, then mount it or read it. The host's real disk is a poor target: some
hosts (virtual machines) forbid even their own root to open it, it may not exist (a tmpfs root),
and a battery had better not touch it anyway. So we make one: a 4 MiB ext4 filesystem in a file,
filled by ``mkfs.ext4 -d`` (no mount needed), attached *read-only* to a free loop device. To the
container it is a block device of the host like any other: same ``mknod``, same devices cgroup,
same ``mount(2)``; and nothing can write to it.

The loop device is attached with ``LO_FLAGS_AUTOCLEAR`` while we hold it open: the kernel detaches
it when the last user closes it, so even a killed Python leaves no loop device behind. On the
way out we detach it ourselves (``LOOP_CLR_FD``) and delete the image.

Example::

    >>> with loop_disk("/tmp/x", {"secret": b"host secret\\n"}) as (major, minor):
    ...     print(major, minor)  # 7 0: /dev/loop0, holding /secret
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator

__all__ = ["loop_disk"]

LOOP_SET_FD, LOOP_CLR_FD, LOOP_SET_STATUS64, LOOP_CTL_GET_FREE = 0x4C00, 0x4C01, 0x4C04, 0x4C82
LO_FLAGS_AUTOCLEAR = 4  # read-only it is anyway: the image is opened O_RDONLY
_LOOP_INFO64 = 232  # sizeof(struct loop_info64); lo_flags is the u32 at offset 52
_SIZE = 4 << 20


def _make_image(image: str, files: dict[str, bytes]) -> None:
    """An ext4 filesystem of :data:`_SIZE` bytes in ``image``, holding ``files`` at its root."""
    mkfs = shutil.which("mkfs.ext4", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if mkfs is None:
        raise OSError(errno.ENOENT, "no mkfs.ext4 here to make the disk's filesystem")
    content = image + ".d"
    os.mkdir(content)
    try:
        for name, data in files.items():
            with open(os.path.join(content, name), "wb") as f:
                f.write(data)
        with open(image, "wb") as f:
            f.truncate(_SIZE)
        result = subprocess.run([mkfs, "-q", "-d", content, image], capture_output=True, text=True)
        if result.returncode:
            raise OSError(errno.EIO, f"mkfs.ext4 failed: {result.stderr.strip()}")
    finally:
        shutil.rmtree(content)


def _attach(backing: int) -> int:
    """Attach the open file ``backing`` to a free loop device, with autoclear; the device's open fd."""
    try:
        control = os.open("/dev/loop-control", os.O_RDWR)
    except OSError as e:
        raise OSError(e.errno, f"no loop device to be had (/dev/loop-control: {e.strerror})") from None
    try:
        for _attempt in range(5):  # another process may take the free device before we do
            device = os.open(f"/dev/loop{fcntl.ioctl(control, LOOP_CTL_GET_FREE)}", os.O_RDONLY)
            try:
                fcntl.ioctl(device, LOOP_SET_FD, backing)
            except OSError as e:
                os.close(device)
                if e.errno == errno.EBUSY:
                    continue
                raise
            info = bytearray(_LOOP_INFO64)
            info[52:56] = LO_FLAGS_AUTOCLEAR.to_bytes(4, "little")
            try:
                fcntl.ioctl(device, LOOP_SET_STATUS64, bytes(info))
            except OSError:
                _detach(device)
                raise
            return device
        raise OSError(errno.EBUSY, "every free loop device was taken before we could attach ours")
    except OSError as e:
        raise OSError(e.errno, f"no loop device to be had ({e.strerror})") from None
    finally:
        os.close(control)


def _detach(device: int) -> None:
    """Detach the loop device (deferred by the kernel if someone still has it open) and close it."""
    try:
        with contextlib.suppress(OSError):  # ENXIO: already detached
            fcntl.ioctl(device, LOOP_CLR_FD)
    finally:
        os.close(device)


# --8<-- [start:loop_disk]
@contextlib.contextmanager
def loop_disk(directory: str, files: dict[str, bytes]) -> Iterator[tuple[int, int]]:
    """A read-only ext4 disk holding ``files``, on a free loop device: its ``(major, minor)``.

    The image is made in ``directory``; device and image are gone when the block ends. Raises
    ``OSError`` saying why if this host has no loop device or no ``mkfs.ext4``.
    """
    image = os.path.join(directory, "hostdisk.img")
    try:
        _make_image(image, files)
        backing = os.open(image, os.O_RDONLY)
        try:
            device = _attach(backing)
        finally:
            os.close(backing)  # the loop device holds the file itself
        try:
            rdev = os.fstat(device).st_rdev
            yield os.major(rdev), os.minor(rdev)
        finally:
            _detach(device)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)
# --8<-- [end:loop_disk]
