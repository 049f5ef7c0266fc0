"""Chapter 10: volumes: data that outlives its containers, bind-mounted into them before pivot_root.

A container's own files go away with it. A *volume* is a directory of the host (a named one that
the engine manages under ``STATE/volumes/NAME/_data``, or any host path with ``-v /host:/ctr``)
that is bind-mounted into the container's tree, so what is written there stays. The bind mount
happens inside the container's mount namespace, after /proc, /dev and /sys are mounted and before
pivot_root (the ``before_pivot`` hook): the host never sees it.

Example::

    mounts = parse_binds(["data:/var/lib/db", "/etc/hosts:/etc/hosts:ro"])   # creates "data"
    spec.add_hook("before_pivot", volume_mounts(mounts))
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from minidocker.core import errors
from minidocker.core.atomic import read_json, rfc3339, write_json
from minidocker.core.paths import state_dir
from minidocker.core.rootpath import fd_path, mkdirs_in_root, open_in_root
from minidocker.core.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    mount,
)

__all__ = ["ANONYMOUS", "PROPAGATION", "anonymous_volumes", "check_driver", "check_propagation", "create",
           "inspect", "list_volumes", "parse_binds", "parse_mounts", "remove", "remove_anonymous",
           "rootfs_propagation", "volume_mounts"]

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS = "com.docker.volume.anonymous"  # the label of a volume made for one container (dockerd's)
# A bind's propagation (``-v /src:/dst:rslave``, ``--mount ...,bind-propagation=rslave``): mount(2)'s flags.
PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_REC | MS_PRIVATE, "slave": MS_SLAVE,
               "rslave": MS_REC | MS_SLAVE, "shared": MS_SHARED, "rshared": MS_REC | MS_SHARED}


def _dir(name: str) -> Path:
    return state_dir() / "volumes" / name


def create(name: str | None = None, labels: dict | None = None) -> dict:
    """Create the named volume (a random name if none); creating an existing one returns it."""
    name = name or os.urandom(32).hex()
    if not NAME.match(name):
        raise errors.InvalidArgument(f"invalid volume name {name!r}: use letters, digits, '_', '.', '-'")
    if (found := read_json(_dir(name) / "volume.json")) is not None:
        return found
    (_dir(name) / "_data").mkdir(parents=True, exist_ok=True)
    info = {"Name": name, "Driver": "local", "Mountpoint": str(_dir(name) / "_data"),
            "CreatedAt": rfc3339(), "Labels": labels or {}, "Scope": "local", "Options": {}}
    write_json(_dir(name) / "volume.json", info)
    return info


def check_driver(name: str, driver: str | None, options: dict | None = None) -> None:
    """Only the ``local`` driver exists here, without options: any other is refused in dockerd's words.

    Example: ``docker volume create -d nfs data`` -> ``create data: error looking up volume plugin
    nfs: plugin "nfs" not found`` (a 404, as dockerd answers for a missing plug-in).
    """
    if driver not in (None, "", "local"):
        raise errors.NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" '
                              "not found")
    if options:
        raise errors.InvalidArgument(f"create {name}: the local driver of this daemon takes no options "
                                     f"(got {', '.join(sorted(map(str, options)))})")


def inspect(name: str) -> dict:
    """The volume's description; :class:`~minidocker.core.errors.NoSuchVolume` if there is none."""
    found = read_json(_dir(name) / "volume.json")
    if found is None:
        raise errors.NoSuchVolume(name)
    return found


def list_volumes() -> list[dict]:
    base = state_dir() / "volumes"
    return [v for d in sorted(base.iterdir()) if (v := read_json(d / "volume.json"))] if base.is_dir() else []


def remove(name: str) -> None:
    inspect(name)
    shutil.rmtree(_dir(name))


# --8<-- [start:parse_binds]
def parse_binds(binds: list[str]) -> list[dict]:
    """``-v`` values -> Docker's ``Mounts`` entries; named volumes are created on first use."""
    mounts = []
    for bind in binds:
        parts = bind.split(":")
        if len(parts) == 1:  # -v /data: an anonymous volume
            parts = ["", *parts]
        if len(parts) not in (2, 3) or not parts[1].startswith("/") or ".." in parts[1].split("/"):
            raise errors.InvalidArgument(f"invalid volume specification {bind!r}: use SOURCE:/TARGET[:ro]")
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
        if not target.strip("/"):  # over the root, pivot_root would have nothing of the image left
            raise errors.InvalidArgument(f'invalid mount config for type "bind": invalid specification: '
                                         f"destination can't be '/' in {bind!r}")
        options = [o for o in mode.split(",") if o]
        if any(o not in ("ro", "rw", "z", "Z", "nocopy", *PROPAGATION) for o in options) or \
                len([o for o in options if o in PROPAGATION]) > 1:
            raise errors.InvalidArgument(f"invalid mode: {mode} in {bind!r}: ro or rw, and one propagation "
                                         f"({', '.join(PROPAGATION)})")
        propagation = next((o for o in options if o in PROPAGATION), "rprivate")
        if source.startswith("/"):
            os.makedirs(source, exist_ok=True) if not os.path.exists(source) else None
            entry = {"Type": "bind", "Source": source}
        else:
            volume = create(source or None, {ANONYMOUS: ""} if not source else None)
            source = volume["Name"]
            entry = {"Type": "volume", "Name": source, "Source": volume["Mountpoint"], "Driver": "local"}
        mounts.append({**entry, "Destination": target, "Mode": mode, "RW": "ro" not in options,
                       "Propagation": propagation})
    return mounts
# --8<-- [end:parse_binds]


def parse_mounts(mounts: list, tmpfs: dict) -> list[dict]:
    """``--mount`` (``HostConfig.Mounts``) and ``--tmpfs`` (``HostConfig.Tmpfs``) as ``Mounts`` entries.

    A bind or a volume is what ``-v`` makes (:func:`parse_binds`); a tmpfs is a new, empty one in
    the container, gone with it. Example: ``parse_mounts([{"Type": "tmpfs", "Target": "/run"}], {})``.
    """
    binds, found = [], []
    for m in mounts or []:
        kind, source, target = m.get("Type"), m.get("Source") or "", m.get("Target") or ""
        if kind == "tmpfs":
            options = m.get("TmpfsOptions") or {}
            data = ",".join(x for x in (options.get("SizeBytes") and f"size={options['SizeBytes']}",
                                        options.get("Mode") and f"mode={options['Mode']:o}") if x)
            found.append(_tmpfs(target, data, not m.get("ReadOnly")))
        elif kind in ("bind", "volume"):
            propagation = (m.get("BindOptions") or {}).get("Propagation") or ""
            if propagation and propagation not in PROPAGATION:
                raise errors.InvalidArgument(f"invalid mount config: invalid propagation mode: {propagation}")
            if kind == "bind" and not os.path.exists(source):  # as dockerd: --mount never creates it
                raise errors.InvalidArgument(f"invalid mount config for type \"bind\": bind source path does "
                                             f"not exist: {source}")
            binds.append(f"{source}:{target}:{'ro' if m.get('ReadOnly') else 'rw'}"
                         f"{',' + propagation if propagation else ''}")
        else:
            raise errors.InvalidArgument(f"invalid mount config: mount type unknown: {kind!r}")
    for target, options in (tmpfs or {}).items():
        found.append(_tmpfs(target, str(options or ""), "ro" not in str(options or "").split(",")))
    return parse_binds(binds) + found


def _tmpfs(target: str, data: str, rw: bool) -> dict:
    if not target.startswith("/") or not target.strip("/") or ".." in target.split("/"):
        raise errors.InvalidArgument(f"invalid mount config for type \"tmpfs\": invalid target {target!r}")
    data = ",".join(o for o in data.split(",") if o and o not in ("ro", "rw"))
    return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": data, "RW": rw,
            "Propagation": ""}


# --8<-- [start:volume_mounts]
# --8<-- [start:volume_mounts_part1]
def volume_mounts(mounts: list[dict]) -> Callable[[str], None]:
    # --8<-- [end:volume_mounts_part1]
    """A ``before_pivot`` hook: bind-mount each source at its target in the container's tree.

    The target is made and found inside the root as the container sees it (``core.rootpath``):
    ``-v /data:/link/x`` where the image's ``/link`` is a symlink to ``/etc`` makes ``root/etc/x``,
    never the host's ``/etc/x``; and the mount goes on the descriptor found, not on a path.
    """

    # --8<-- [start:volume_mounts_part2]
    def hook(root: str) -> None:
        for m in mounts:
            destination = m["Destination"]
            if not destination.strip("/"):
                raise errors.InvalidArgument("invalid mount config: destination can't be '/'")
            if m.get("Type") == "tmpfs":  # --tmpfs: a new one, nosuid and nodev as Docker's
                fd = mkdirs_in_root(root, destination)
                try:
                    mount("tmpfs", fd_path(fd), "tmpfs", MS_NOSUID | MS_NODEV | (0 if m["RW"] else MS_RDONLY),
                          m["Mode"] or None)
                finally:
                    os.close(fd)
                continue
            if os.path.isdir(m["Source"]):
                fd = mkdirs_in_root(root, destination)
            else:
                try:
                    fd = open_in_root(root, destination, os.O_PATH)
                except FileNotFoundError:
                    parent = mkdirs_in_root(root, os.path.dirname(destination))
                    os.close(parent)
                    fd = open_in_root(root, destination, os.O_WRONLY | os.O_CREAT)  # a file over a file
            try:
                if m.get("Type") == "volume" and "nocopy" not in (m.get("Mode") or "").split(","):
                    copy_up(fd, m["Source"])
                mount(m["Source"], fd_path(fd), None, MS_BIND | MS_REC)
            finally:
                os.close(fd)
            if not m["RW"]:  # read-only needs a second step: a bind mount starts with the source's flags
                _change(root, destination, MS_REMOUNT | MS_BIND | MS_RDONLY)
            if m.get("Propagation") not in (None, "", "rprivate"):  # its propagation: a step of its own
                _change(root, destination, PROPAGATION[m["Propagation"]])

    return hook
# --8<-- [end:volume_mounts_part2]
# --8<-- [end:volume_mounts]


def _change(root: str, destination: str, flags: int) -> None:
    """mount(2) ``flags`` on the mount now at ``destination``, found inside ``root`` (its new root)."""
    fd = open_in_root(root, destination, os.O_PATH)
    try:
        mount(None, fd_path(fd), None, flags)
    finally:
        os.close(fd)


# --8<-- [start:rootfs_propagation]
def rootfs_propagation(mounts: list[dict]) -> str:
    """The container's whole tree: ``rslave`` if a bind wants the host's mounts, else ``rprivate``.

    As dockerd tells runc: a bind's propagation can only bring the host's new mounts in if the
    container's tree is still a slave of the host's (chapter 02 makes it private otherwise).
    Example: ``rootfs_propagation([{"Type": "bind", "Propagation": "rslave", ...}]) == "rslave"``.
    """
    wanted = {m.get("Propagation") for m in mounts if m.get("Type") == "bind"}
    return "rslave" if wanted & {"slave", "rslave", "shared", "rshared"} else "rprivate"
# --8<-- [end:rootfs_propagation]


def _mount_of(path: str) -> tuple[str, list[str]]:
    """The mount point holding ``path`` in the daemon's namespace, and its optional fields (shared:N ...)."""
    path, best = os.path.realpath(path), ("/", [])
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, fields[6:fields.index("-")])
    return best


def check_propagation(mounts: list[dict]) -> None:
    """A shared or slave bind needs its source on a mount that propagates, as dockerd checks.

    On a host whose ``/`` is private (no systemd), ``-v /mnt:/mnt:rslave`` could never see a new
    mount: refused in dockerd's words instead. ``mount --make-rshared /mnt`` on the host fixes it.
    """
    for m in mounts:
        wanted = m.get("Propagation") if m.get("Type") == "bind" else None
        if wanted not in ("shared", "rshared", "slave", "rslave"):
            continue
        point, optional = _mount_of(m["Source"])
        shared = any(o.startswith("shared:") for o in optional)
        slave = any(o.startswith("master:") for o in optional)
        if "shared" in wanted and not shared:
            raise errors.InvalidArgument(f"linux mounts: path {m['Source']} is mounted on {point} but it is "
                                         "not a shared mount")
        if "slave" in wanted and not (shared or slave):
            raise errors.InvalidArgument(f"linux mounts: path {m['Source']} is mounted on {point} but it is "
                                         "not a shared or slave mount")


# --8<-- [start:anonymous_volumes]
def anonymous_volumes(paths: dict | None, mounts: list[dict]) -> list[dict]:
    """An anonymous volume for each of the image's ``VOLUME`` paths (and ``-v /path``) nothing mounts.

    A ``VOLUME /var/lib/db`` in a Dockerfile promises that the path outlives the container's
    writable layer: each container gets a volume of its own there, with a random name and
    dockerd's label, removed with it by ``docker rm -v`` or ``run --rm``, kept by a plain ``rm``.
    Example: ``anonymous_volumes({"/data": {}}, [])[0]["Name"]`` is 64 hex digits.
    """
    taken = {m["Destination"].rstrip("/") for m in mounts}
    return parse_binds([path for path in paths or {} if path.rstrip("/") not in taken])
# --8<-- [end:anonymous_volumes]


# --8<-- [start:copy_up]
def copy_up(directory_fd: int, volume: str) -> None:
    """An empty volume gets what the image has at its path, as dockerd copies it: files, links, owners.

    ``directory_fd`` is the target found inside the container's root: nothing outside it is read,
    symbolic links are copied as links, never followed, and devices or FIFOs are left out.
    """
    if not os.path.isdir(volume) or os.listdir(volume) or not stat.S_ISDIR(os.fstat(directory_fd).st_mode):
        return
    source = fd_path(directory_fd)

    def special(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if not stat.S_ISREG(m := os.lstat(os.path.join(directory, n)).st_mode)
                and not stat.S_ISDIR(m) and not stat.S_ISLNK(m)]

    shutil.copytree(source, volume, symlinks=True, ignore=special, dirs_exist_ok=True)
    for directory, names, files in os.walk(source):
        for name in [".", *names, *files]:
            here = os.path.join(directory, name)
            there = os.path.normpath(os.path.join(volume, os.path.relpath(here, source)))
            if os.path.lexists(there):
                info = os.lstat(here)
                os.lchown(there, info.st_uid, info.st_gid)
                if name == "." and directory == source:
                    os.chmod(there, stat.S_IMODE(info.st_mode))
# --8<-- [end:copy_up]


def remove_anonymous(mounts: list[dict], in_use: set[str]) -> list[str]:
    """``docker rm -v``: the container's anonymous volumes that no other container uses, removed."""
    removed = []
    for m in mounts:
        name = m.get("Name") if m.get("Type") == "volume" else None
        if name and name not in in_use and ANONYMOUS in ((read_json(_dir(name) / "volume.json") or {})
                                                         .get("Labels") or {}):
            remove(name)
            removed.append(name)
    return removed
