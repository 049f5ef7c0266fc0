"""Images as plain directories: the stand-in image store until chapter 06's lands.

``docker import TAR NAME`` in its simplest form: the tarball is unpacked into a directory named
after its sha256, and a name points at it. A container gets a copy of that directory as its root
filesystem (chapter 04's overlayfs makes that copy unnecessary).

Example::

    image_id = import_tar(open(rootfs.busybox_tar(), "rb"), "busybox:latest")
    find("busybox")["Id"] == image_id
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from minidocker._atomic import read_json, rfc3339, write_json
from minidocker._paths import state_dir
from minidocker._process import DEFAULT_PATH

__all__ = ["DirImages", "copy_rootfs", "find", "import_tar", "list_images", "normalize", "remove", "rootfs",
           "tag"]


def _root() -> Path:
    path = state_dir() / "dirimages"
    path.mkdir(exist_ok=True)
    return path


def _index() -> dict[str, Any]:
    return read_json(_root() / "index.json", {})


def normalize(ref: str) -> str:
    """``busybox`` and ``docker.io/library/busybox`` -> ``busybox:latest``."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
    return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"


def find(ref: str) -> dict[str, Any] | None:
    """The image a name, an id or an id prefix refers to."""
    index = _index()
    name = normalize(ref)
    bare = ref.removeprefix("sha256:")
    for image in index.values():
        if name in image["RepoTags"] or (len(bare) >= 4 and image["Id"][7:].startswith(bare)):
            return image
    return None


def list_images() -> list[dict[str, Any]]:
    return list(_index().values())


def import_tar(stream: IO[bytes], repo_tag: str | None, config: dict | None = None) -> str:
    """Unpack a root filesystem tarball into a new image; return its id (``sha256:`` of the tar)."""
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=_root(), suffix=".tar") as tmp:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            tmp.write(chunk)
        tmp.flush()
        image_id = f"sha256:{digest.hexdigest()}"
        target = _root() / image_id[7:19]
        if not target.exists():
            unpack = Path(tempfile.mkdtemp(dir=_root()))
            try:
                with tarfile.open(tmp.name) as tar:
                    tar.extractall(unpack / "rootfs", numeric_owner=True)
                os.chmod(unpack / "rootfs", 0o755)
                os.rename(unpack, target)
            except BaseException:
                shutil.rmtree(unpack, ignore_errors=True)
                raise
        size = tmp.tell()
    index = _index()
    image = index.get(image_id) or {"Id": image_id, "RepoTags": [], "Created": int(time.time()),
                                   "CreatedAt": rfc3339(), "Size": size, "Config": config or {
                                       "Cmd": ["sh"], "Env": [f"PATH={DEFAULT_PATH}"]}}
    index[image_id] = image
    write_json(_root() / "index.json", index)
    if repo_tag:
        tag(image_id, repo_tag)
    return image_id


def tag(ref: str, new: str) -> None:
    """Point the name ``new`` at the image ``ref`` (moving it from any other image)."""
    image = find(ref)
    if image is None:
        raise KeyError(ref)
    index, new = _index(), normalize(new)
    for other in index.values():
        if new in other["RepoTags"]:
            other["RepoTags"].remove(new)
    index[image["Id"]]["RepoTags"].append(new)
    write_json(_root() / "index.json", index)


def remove(ref: str) -> list[dict[str, str]]:
    """Untag ``ref``; delete the image once no name is left. Returns Docker's list of what happened."""
    image = find(ref)
    if image is None:
        raise KeyError(ref)
    index, name, done = _index(), normalize(ref), []
    entry = index[image["Id"]]
    if name in entry["RepoTags"]:
        entry["RepoTags"].remove(name)
        done.append({"Untagged": name})
    if not entry["RepoTags"] or not done:
        del index[image["Id"]]
        shutil.rmtree(_root() / image["Id"][7:19], ignore_errors=True)
        done.append({"Deleted": image["Id"]})
    write_json(_root() / "index.json", index)
    return done


def rootfs(image_id: str) -> Path:
    return _root() / image_id[7:19] / "rootfs"


def copy_rootfs(image_id: str, dest: Path) -> None:
    """A container's own copy of the image's files (what overlayfs does for free, chapter 04)."""
    subprocess.run(["cp", "-a", str(rootfs(image_id)), str(dest)], check=True, capture_output=True)


class DirImages:
    """This module as the daemon's image store (see ``engine.images``)."""

    driver = "dir"
    find = staticmethod(find)
    list_images = staticmethod(list_images)
    import_tar = staticmethod(import_tar)
    tag = staticmethod(tag)
    remove = staticmethod(remove)
    normalize = staticmethod(normalize)

    @staticmethod
    def create_rootfs(image: dict, container_dir: Path) -> str:
        copy_rootfs(image["Id"], container_dir / "rootfs")
        return str(container_dir / "rootfs")

    @staticmethod
    def release_rootfs(config: dict) -> None:
        """Nothing to undo: the copy goes with the container's directory."""
