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
from collections.abc import Callable
from pathlib import Path

from minidocker.core import errors
from minidocker.core.atomic import read_json, rfc3339, write_json
from minidocker.core.paths import state_dir
from minidocker.core.rootpath import fd_path, mkdirs_in_root, open_in_root
from minidocker.core.syscalls import MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, mount

__all__ = ["check_driver", "create", "inspect", "list_volumes", "parse_binds", "parse_mounts", "remove",
           "volume_mounts"]

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


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
        if len(parts) not in (2, 3) or not parts[1].startswith("/") or ".." in parts[1].split("/"):
            raise errors.InvalidArgument(f"invalid volume specification {bind!r}: use SOURCE:/TARGET[:ro]")
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
        if not target.strip("/"):  # over the root, pivot_root would have nothing of the image left
            raise errors.InvalidArgument(f'invalid mount config for type "bind": invalid specification: '
                                         f"destination can't be '/' in {bind!r}")
        if mode not in ("", "ro", "rw"):
            raise errors.InvalidArgument(f"invalid mode {mode!r} in {bind!r}: use ro or rw")
        if source.startswith("/"):
            os.makedirs(source, exist_ok=True) if not os.path.exists(source) else None
            entry = {"Type": "bind", "Source": source}
        else:
            volume = create(source)
            entry = {"Type": "volume", "Name": source, "Source": volume["Mountpoint"], "Driver": "local"}
        mounts.append({**entry, "Destination": target, "Mode": mode, "RW": mode != "ro",
                       "Propagation": "rprivate"})
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
            if propagation not in ("", "rprivate", "private"):
                raise errors.InvalidArgument(f"invalid mount config: propagation {propagation} is not "
                                             "supported by this daemon (rprivate)")
            if kind == "bind" and not os.path.exists(source):  # as dockerd: --mount never creates it
                raise errors.InvalidArgument(f"invalid mount config for type \"bind\": bind source path does "
                                             f"not exist: {source}")
            source = source or os.urandom(32).hex()  # an anonymous volume
            binds.append(f"{source}:{target}:{'ro' if m.get('ReadOnly') else 'rw'}")
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
def volume_mounts(mounts: list[dict]) -> Callable[[str], None]:
    """A ``before_pivot`` hook: bind-mount each source at its target in the container's tree.

    The target is made and found inside the root as the container sees it (``core.rootpath``):
    ``-v /data:/link/x`` where the image's ``/link`` is a symlink to ``/etc`` makes ``root/etc/x``,
    never the host's ``/etc/x``; and the mount goes on the descriptor found, not on a path.
    """

    def hook(root: str) -> None:
        for m in mounts:
            destination = m["Destination"]
            if not destination.strip("/"):
                raise errors.InvalidArgument("invalid mount config: destination can't be '/'")
            if m["Type"] == "tmpfs":  # --tmpfs: a new one, nosuid and nodev as Docker's
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
                mount(m["Source"], fd_path(fd), None, MS_BIND | MS_REC)
            finally:
                os.close(fd)
            if not m["RW"]:  # read-only needs a second step: a bind mount starts with the source's flags
                fd = open_in_root(root, destination, os.O_PATH)  # now the new mount's root
                try:
                    mount(None, fd_path(fd), None, MS_REMOUNT | MS_BIND | MS_RDONLY)
                finally:
                    os.close(fd)

    return hook
# --8<-- [end:volume_mounts]
