"""Chapter 00: the base root filesystem, busybox, built from Debian's package with no Docker Hub needed.

Every container needs files to run. Docker pulls them as an image; before we can pull (chapter 07)
we make our own: one static binary, ``busybox``, which is ``sh``, ``ls``, ``mount``, ``httpd`` and
~400 other commands at once, plus the few files a Unix userland expects (``/etc/passwd``, ``/tmp``).

The binary comes from Debian's ``busybox-static`` package, downloaded with ``apt-get download`` and
unpacked with ``dpkg-deb`` into minidocker's cache (the host's own packages are not touched). The
rootfs is built once per busybox build and shared by the tests, the notebooks and the demo.
:func:`busybox_tar` packs the same tree as a reproducible tarball: chapter 04 imports it as the
first layer of a real image.

Run it::

    python -m minidocker.rootfs          # prints the rootfs path, building it if needed
    python -m minidocker.rootfs --tar    # prints the path of the tarball
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from minidocker.core.paths import cache_dir
from minidocker.core.process import EngineError

__all__ = ["busybox_binary", "busybox_rootfs", "busybox_tar"]

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
LAYOUT = 2  # bump when build_rootfs changes, so caches rebuild
DIRECTORIES = {"bin": 0o755, "sbin": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "etc": 0o755,
               "root": 0o700, "tmp": 0o1777, "home": 0o755, "var": 0o755, "var/tmp": 0o1777,
               "proc": 0o555, "sys": 0o555, "dev": 0o755}


def busybox_binary() -> Path:
    """Return a static busybox binary from Debian's ``busybox-static``, downloading the package once."""
    pkg_dir = cache_dir() / "busybox-static"
    binary = pkg_dir / "bin" / "busybox"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        if not _apt_download("busybox-static", tmp):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            if not _apt_download("busybox-static", tmp):
                raise EngineError("could not download Debian's busybox-static package: "
                                  "check that 'apt-get download busybox-static' works")
        deb = glob.glob(os.path.join(tmp, "busybox-static_*.deb"))[0]
        unpacked = os.path.join(tmp, "unpacked")
        subprocess.run(["dpkg-deb", "-x", deb, unpacked], check=True, capture_output=True)
        if pkg_dir.exists():
            shutil.rmtree(pkg_dir)
        os.rename(unpacked, pkg_dir)  # atomic: a half-unpacked package is never seen
    return binary


def _apt_download(package: str, where: str) -> bool:
    try:
        done = subprocess.run(["apt-get", "download", "-q", package], cwd=where, capture_output=True)
    except FileNotFoundError:
        raise EngineError("apt-get not found: minidocker builds its base image from Debian's "
                          "busybox-static package on a Debian or Ubuntu host") from None
    return done.returncode == 0


# --8<-- [start:build_rootfs]
def build_rootfs(dest: Path, busybox: Path) -> None:
    """Lay out a minimal Unix tree in ``dest`` around one static busybox binary.

    Each command is a symlink to ``/bin/busybox``, which looks at the name it was called by
    (``argv[0]``) to know what to be. The links are absolute: they are resolved *inside* the
    container, where ``/`` is ``dest``.
    """
    for name, mode in DIRECTORIES.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        (dest / name).chmod(mode)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    (dest / "bin" / "busybox").chmod(0o755)
    applets = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True)
    for applet in applets.stdout.split():
        link = dest / applet
        if applet != "bin/busybox" and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    for name in ("hosts", "hostname", "resolv.conf"):  # mount points for chapter 05's files
        (dest / "etc" / name).write_text("")
# --8<-- [end:build_rootfs]


def busybox_rootfs() -> Path:
    """Return the path of the busybox root filesystem, building it on first use.

    The directory is named after the binary's sha256 and the layout's version, so a new busybox (or
    a new layout) gets a new rootfs, and it is
    built in a temporary directory and renamed into place, so a crash never leaves half a rootfs.
    """
    binary = busybox_binary()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    dest = cache_dir() / "rootfs" / f"busybox-{digest}-{LAYOUT}"
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.parent.chmod(0o755)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".building-"))
    try:
        tmp.chmod(0o755)
        build_rootfs(tmp, binary)
        os.rename(tmp, dest)
    except FileExistsError:
        shutil.rmtree(tmp)  # another process built it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def busybox_tar() -> Path:
    """Return a reproducible tarball of the busybox rootfs (sorted, owned by root, fixed times)."""
    root = busybox_rootfs()
    dest = root.with_suffix(".tar")
    if dest.exists():
        return dest
    tmp = dest.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    os.rename(tmp, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m minidocker.rootfs [--tar]``: print the rootfs (or tarball) path."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        print(busybox_tar() if "--tar" in argv else busybox_rootfs())
    except (EngineError, OSError, subprocess.CalledProcessError) as e:
        print(f"minidocker: building the busybox rootfs: {e}", file=sys.stderr)
        return 125
    return 0


if __name__ == "__main__":
    sys.exit(main())
