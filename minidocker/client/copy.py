"""``minidocker cp``: files between this host and a container, as ``docker cp`` copies them.

The daemon speaks tar (``GET``/``PUT /containers/{id}/archive``, and ``HEAD`` for what is at a
path); the naming rules are the client's, as in docker's CLI:

* ``cp CONTAINER:SRC DEST``: into ``DEST`` if it is a directory, else *as* ``DEST``; ``-`` writes the
  tar to stdout;
* ``cp SRC CONTAINER:DEST``: into ``DEST`` if it is a directory there (or ends with ``/``), else
  as ``DEST``; ``-`` sends a tar read from stdin.

A tar from a daemon is input from outside like any other: each member is created inside the
destination with every path resolved below it (:func:`minidocker.core.rootpath.mkdirs_in_root`), so
a ``../`` name or a member going through a symlink of an earlier one cannot write elsewhere.

Example::

    $ minidocker cp web:/etc/nginx/nginx.conf .
    $ minidocker cp ./site web:/usr/share/nginx/html
"""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile

from minidocker.client.client import APIError, Client
from minidocker.core.console import parser
from minidocker.core.rootpath import mkdirs_in_root, open_in_root

__all__ = ["cp"]

_DIR_BIT = 1 << 31  # Go's os.ModeDir, in the daemon's stat header


def _split(arg: str) -> tuple[str | None, str]:
    """``"web:/etc"`` -> ``("web", "/etc")``; a local path (``./a:b``, ``/x``) -> ``(None, path)``."""
    if arg.startswith((".", "/")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def _stat(client: Client, container: str, path: str) -> dict | None:
    """What is at ``path`` in the container (the daemon's stat header), or None if nothing."""
    try:
        answer = client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError as e:
        if e.status == 404:  # no such path (or no such container: the PUT that follows says which)
            return None
        raise
    header = answer.headers.get("X-Docker-Container-Path-Stat") or ""
    return json.loads(base64.b64decode(header)) if header else None


def cp(client: Client, argv: list[str]) -> int:
    p = parser("cp", "CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH")
    p.add_argument("source")
    p.add_argument("destination")
    opts = p.parse_args(argv)
    (src_c, src), (dst_c, dst) = _split(opts.source), _split(opts.destination)
    if (src_c is None) == (dst_c is None):
        print("minidocker cp: copying between containers, or between two local paths, is not supported: "
              "name one CONTAINER:PATH and one local path", file=sys.stderr)
        return 1
    if src_c is not None:
        return _copy_out(client, src_c, src, dst)
    assert dst_c is not None
    return _copy_in(client, src, dst_c, dst)


def _copy_out(client: Client, container: str, src: str, dest: str) -> int:
    answer = client.request("GET", f"/containers/{container}/archive", {"path": src})
    if dest == "-":
        shutil.copyfileobj(answer, sys.stdout.buffer)
        return 0
    header = answer.headers.get("X-Docker-Container-Path-Stat") or ""
    name = json.loads(base64.b64decode(header))["name"] if header else posixpath.basename(src)
    if os.path.isdir(dest):
        target, rename = dest, None
    else:
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            print(f"minidocker cp: no such directory: {parent}", file=sys.stderr)
            return 1
        target, rename = parent, (name, os.path.basename(dest))
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(answer, spool)
        spool.seek(0)
        _extract(spool, target, rename)
    return 0


def _extract(stream: io.BufferedIOBase, dest: str, rename: tuple[str, str] | None) -> None:
    """Unpack the tar ``stream`` below ``dest``; the top entry ``rename[0]`` becomes ``rename[1]``."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            if ".." in parts:
                raise APIError(500, f"refusing the archive's member {member.name!r}: it leaves the "
                                    "destination")
            if rename and parts[0] == rename[0]:
                parts[0] = rename[1]
            parent = mkdirs_in_root(dest, "/".join(parts[:-1]) or ".")
            try:
                _create(tar, member, parent, parts[-1], dest, parts)
            finally:
                os.close(parent)


def _create(tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str, dest: str,
            parts: list[str]) -> None:
    """One member named ``name`` in the directory ``parent`` (an existing non-directory is replaced)."""
    try:
        existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
        if stat.S_ISDIR(existing.st_mode):
            shutil.rmtree(os.path.join(f"/proc/self/fd/{parent}", name))
        else:
            os.unlink(name, dir_fd=parent)
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
    elif member.islnk():
        target = open_in_root(dest, member.linkname, os.O_PATH | os.O_NOFOLLOW)
        try:
            os.link(f"/proc/self/fd/{target}", name, dst_dir_fd=parent, follow_symlinks=True)
        finally:
            os.close(target)
    elif member.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     member.mode & 0o777, dir_fd=parent)
        with open(fd, "wb") as out:
            source = tar.extractfile(member)
            if source is not None:
                shutil.copyfileobj(source, out)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
    else:
        return  # devices and FIFOs are not made on this host
    os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)


def _copy_in(client: Client, src: str, container: str, dest: str) -> int:
    if src == "-":
        client.request("PUT", f"/containers/{container}/archive",
                       {"path": dest, "noOverwriteDirNonDir": "true"}, body=sys.stdin.buffer,
                       headers={"Content-Type": "application/x-tar"}).read()
        return 0
    if not os.path.lexists(src):
        print(f"minidocker cp: no such file or directory: {src}", file=sys.stderr)
        return 1
    found = _stat(client, container, dest)
    if dest.endswith("/") or (found is not None and found["mode"] & _DIR_BIT):
        where, arcname = dest, os.path.basename(os.path.normpath(src))
    else:
        where, arcname = posixpath.dirname(dest.rstrip("/")) or "/", posixpath.basename(dest.rstrip("/"))
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(src, arcname=arcname)
        spool.seek(0)
        client.request("PUT", f"/containers/{container}/archive",
                       {"path": where, "noOverwriteDirNonDir": "true"}, body=spool,
                       headers={"Content-Type": "application/x-tar"}).read()
    return 0
