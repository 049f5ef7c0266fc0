"""Chapter 04: a container's filesystem: shared read-only layers + its own copy-on-write layer.

overlayfs stacks directories: any number of read-only *lower* layers and one writable *upper*
layer appear merged at a mount point. Reading finds the topmost copy of a file; writing a lower
file first copies it up; deleting one leaves a *whiteout* in the upper layer. So a container
starts without copying anything: its image's layers (``overlay/layers.py``) are shared by every container,
and all it owns is an empty upper directory, which is also exactly its diff (``overlay/changes.py``).

A container filesystem lives in ``LAYERS/containers/<id>/``::

    layers   the image's diff IDs, bottom first      init/    Docker's "init layer": mount points
    upper/   the container's changes                 work/    overlayfs' scratch space
    merged/  the mount point: the container's root

Run it (the engine as of this chapter; each ``--layer`` is a tar, a directory or a stored
``sha256:`` id, bottom first; ROOTFS, if given, is the bottom layer)::

    python -m minidocker.overlay --layer "$(python -m minidocker.rootfs --tar)" -- \\
        /bin/sh -c 'echo hi > /hello; cat /hello'

Every option of the earlier stages works too (``--hostname``, ``--userns``, ``--memory``...). ``--keep``
keeps the container's filesystem afterwards, for ``python -m minidocker.overlay.changes diff ID``.

Example (the API)::

    >>> store = LayerStore()
    >>> fs = ContainerFS.create(store, "c1", [import_rootfs(store, rootfs.busybox_tar())])
    >>> root = fs.mount()        # give it to namespaces.run as spec.rootfs
    >>> fs.remove()              # unmount, delete upper/work, release the layers
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from minidocker.cgroups import stage as cgroups
from minidocker.core import paths as _paths
from minidocker.core import stage as _stage
from minidocker.core import watchdog as _watchdog
from minidocker.core.jsonscan import dumps, loads
from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec
from minidocker.core.syscalls import MNT_DETACH, mount, umount2
from minidocker.namespaces import stage as namespaces
from minidocker.overlay.layers import LayerError, LayerStore, canonical, import_rootfs
from minidocker.overlay.lookup import lower_entry

__all__ = ["STAGES", "ContainerFS", "lower_entry", "main", "mount_overlay", "remove_on_exit"]

PAGE = 4096  # mount(2) copies at most one page of options
# Mount points and files the engine covers at start (chapter 02's /proc /sys /dev, chapter 05's
# /etc files): if the image lacks them, they are made in the init layer, not in the container's diff.
INIT_DIRS = ("proc", "sys", "dev")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


# exercise 04.7: Mount a stack of layers, with short lower directory names
# hint: lowerdir=a:b:c (top first, relative ones prefixed /proc/self/fd/N/ of an O_PATH fd on base),
#   upperdir=, workdir=, X=off for redirect_dir/metacopy/index if the kernel has them; one page at most.
# --8<-- [start:mount_overlay]
def mount_overlay(target: str | os.PathLike, lower: Sequence[str], upper: str | os.PathLike,
                  work: str | os.PathLike, *, base: str | os.PathLike | None = None) -> None:
    """Mount an overlay at ``target``: ``lower`` directories top first, then ``upper`` and ``work``.

    mount(2) takes at most one page of options, and 60 absolute layer paths do not fit. So, like
    Docker, layers have short names (``l/XXXXXXXXXXXX``) relative to ``base``; instead of chdir(2)
    into ``base`` (which would move every thread of the process) we name it through an open file
    descriptor, ``/proc/self/fd/N``. Redirects, metacopy and the inode index are turned off, so
    the upper directory holds plain files, whiteouts and opaque directories: what a layer can say.
    """
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if base is not None else None
    try:
        prefix = f"/proc/self/fd/{fd}/" if fd is not None else ""
        lowerdir = ":".join(d if d.startswith("/") else prefix + d for d in lower)
        options = f"lowerdir={lowerdir},upperdir={upper},workdir={work}"
        for feature in ("redirect_dir", "metacopy", "index"):  # only those this kernel knows
            if os.path.exists(f"/sys/module/overlay/parameters/{feature}"):
                options += f",{feature}=off"
        if len(options.encode()) >= PAGE:
            raise EngineError(f"too many layers ({len(lower)}) for one overlay mount: the options "
                              f"take {len(options)} bytes, more than a page ({PAGE})")
        mount("overlay", os.fspath(target), "overlay", 0, options)
    finally:
        if fd is not None:
            os.close(fd)
# --8<-- [end:mount_overlay]


class ContainerFS:
    """One container's filesystem in a :class:`LayerStore`: image layers + init layer + upper layer."""

    def __init__(self, store: LayerStore, container_id: str, diff_ids: Sequence[str]) -> None:
        self.store, self.id, self.diff_ids = store, container_id, [canonical(d) for d in diff_ids]
        self.dir = store.root / "containers" / container_id
        self.upper, self.work = self.dir / "upper", self.dir / "work"
        self.merged, self.init = self.dir / "merged", self.dir / "init"

    def __repr__(self) -> str:
        return f"ContainerFS({self.id!r}, {len(self.diff_ids)} layers)"

    @property
    def holder(self) -> str:
        return f"container:{self.id}"

    @classmethod
    def open(cls, store: LayerStore, container_id: str) -> ContainerFS:
        """The existing filesystem of container ``container_id``."""
        path = store.root / "containers" / _check_id(container_id) / "layers"
        try:
            return cls(store, container_id, loads(path.read_text()))
        except FileNotFoundError:
            raise EngineError(f"no filesystem for container {container_id!r}") from None

    # --8<-- [start:create]
    @classmethod
    def create(cls, store: LayerStore, container_id: str, diff_ids: Sequence[str]) -> ContainerFS:
        """Make a container's filesystem on the layers ``diff_ids`` (bottom first); copies nothing.

        The layers are held by ``container:<id>`` until :meth:`remove`. The upper directory starts
        empty; its root gets the image root's owner and mode, which is what ``/`` shows.
        """
        if not diff_ids:
            raise EngineError("an image needs at least one layer")
        fs = cls(store, _check_id(container_id), diff_ids)
        try:
            fs.dir.mkdir(mode=0o700)  # merged/ is below: a container's files are not the host's
        except FileExistsError:
            raise EngineError(f"a filesystem for container {container_id!r} already exists") from None
        try:
            for diff_id in fs.diff_ids:
                store.ref(diff_id, fs.holder)
            for directory in (fs.upper, fs.work, fs.merged, fs.init):
                directory.mkdir(mode=0o755)
            image_root = os.stat(store.path(fs.diff_ids[-1]))
            for directory in (fs.upper, fs.init):
                os.chown(directory, image_root.st_uid, image_root.st_gid)
                os.chmod(directory, stat.S_IMODE(image_root.st_mode))
            fs._make_init_layer()
            (fs.dir / "layers").write_text(dumps(fs.diff_ids) + "\n")
        except BaseException:
            fs.remove()
            raise
        return fs
    # --8<-- [end:create]

    def _make_init_layer(self) -> None:
        """Create in ``init/`` the mount points the image lacks, with its own parents' metadata."""
        image = [self.store.path(d) for d in reversed(self.diff_ids)]
        mirrored = []
        for path, is_dir in [(d, True) for d in INIT_DIRS] + [(f, False) for f in INIT_FILES]:
            if lower_entry(image, path) is not None:
                continue
            parts = path.split("/")
            for depth in range(1, len(parts)):  # parents: mirror the image's, or skip if not dirs
                parent = "/".join(parts[:depth])
                st = lower_entry(image, parent)
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    break
                target = self.init / parent
                if not target.exists():
                    target.mkdir()
                    if st is not None:
                        os.chown(target, st.st_uid, st.st_gid)
                        os.chmod(target, stat.S_IMODE(st.st_mode))
                        mirrored.append((target, st))
            else:
                if is_dir:
                    (self.init / path).mkdir(mode=0o755)
                else:
                    (self.init / path).touch(mode=0o644)
                os.utime(self.init / path, ns=(0, 0))  # fixed: every container of an image alike
        for target, st in mirrored:  # last: creating their children changed their times
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def lowerdirs(self) -> list[Path]:
        """The read-only stack, top first: the init layer, then the image's layers."""
        return [self.init] + [self.store.path(d) for d in _topmost_first(self.diff_ids)]

    # --8<-- [start:mount]
    def mount(self) -> Path:
        """Mount the container's root filesystem at ``merged`` (if it is not already); return it."""
        if not self.mounted():
            links = [self.store.link(d) for d in _topmost_first(self.diff_ids)]
            for path in (self.upper, self.work, self.init):
                if re.search(r"[,:\\]", str(path)):
                    raise EngineError(f"the state directory {str(self.store.root)!r} has a ',', ':' or "
                                      "'\\' in its path, which overlayfs options cannot hold")
            mount_overlay(self.merged, [str(self.init), *links], self.upper, self.work, base=self.store.root)
        return self.merged
    # --8<-- [end:mount]

    def mounted(self) -> bool:
        """Whether the overlay is mounted at ``merged`` (in this mount namespace)."""
        return os.path.ismount(self.merged)

    def unmount(self) -> None:
        """Detach the overlay from ``merged`` (it lives on in a container still using it)."""
        if self.mounted():
            try:
                umount2(str(self.merged), MNT_DETACH)
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: someone else unmounted it first
                    raise

    def claim(self, container_pid: int | None = None) -> None:
        """Mark the filesystem as this process's to remove, and its container's once it runs: if
        they are all dead, :meth:`remove_abandoned` removes it. ``--keep`` never claims it."""
        owners = [_identity(os.getpid())] + ([_identity(container_pid)] if container_pid else [])
        (self.dir / ".engine").write_text("".join(f"{owner}\n" for owner in owners))
        os.replace(self.dir / ".engine", self.dir / "engine")  # a reader sees all of it or nothing

    @classmethod
    def remove_abandoned(cls, store: LayerStore, container_id: str = "*") -> list[str]:
        """Remove the claimed filesystems (or this one) whose engine was killed before it could clean
        up, once their container is gone too (it dies with its engine)."""
        removed = []
        for claim in sorted((store.root / "containers").glob(f"{container_id}/engine")):
            with contextlib.suppress(OSError, ValueError, EngineError):
                owners = claim.read_text().splitlines()
                if owners and all(_identity(int(owner.split()[0])) != owner for owner in owners):
                    cls.open(store, claim.parent.name).remove()
                    removed.append(claim.parent.name)
        return removed

    def remove(self) -> None:
        """Unmount, delete the container's own directories, and release its layers."""
        self.unmount()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for diff_id in set(self.diff_ids):
            with contextlib.suppress(LayerError, FileNotFoundError):
                self.store.unref(diff_id, self.holder)


def _identity(pid: int) -> str:
    """``"PID STARTTIME"``: a process, told apart from a later one that reuses its pid (proc(5)); a
    dead one (or a zombie: only its exit status is left) is ``"PID gone"``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, *fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        state = "X"
    return f"{pid} gone" if state in "ZX" else f"{pid} {fields[18]}"


def _check_id(container_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", container_id):
        raise EngineError(f"invalid container id {container_id!r}")
    return container_id


def _topmost_first(diff_ids: Sequence[str]) -> list[str]:
    """The layers top first, each once: overlayfs refuses a directory twice (ELOOP), and the upper
    copy of a repeated layer alone shows the same files."""
    seen: set[str] = set()
    return [d for d in reversed(diff_ids) if not (d in seen or seen.add(d))]


# --- the stage -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 04."""
    group = parser.add_argument_group("overlay (chapter 04)")
    group.add_argument("--layer", action="append", default=[], metavar="PATH",
                       help="an image layer: a tar (plain, gzip, zstd), a directory, or sha256:ID of "
                            "a stored layer; repeat it, bottom layer first (ROOTFS goes below them all)")
    group.add_argument("--keep", action="store_true",
                       help="keep the container's filesystem when it exits "
                       "(python -m minidocker.overlay.changes)")


# exercise 04.10: Configure the stage: import the layers, make and mount the filesystem
# hint: sources: spec.rootfs, spec.layers, then --layer; sha256: ids are ref'd, paths go through
#   import_rootfs; ContainerFS.create, unmount on cleanup with --keep, else remove_on_exit();
#   spec.rootfs = fs.mount().
# --8<-- [start:configure]
def configure(args: argparse.Namespace, spec: ContainerSpec,
              cleanup: contextlib.ExitStack) -> None:
    """Import the layers, make the container's filesystem, mount it and make it the container's root.

    The layers, bottom first: ROOTFS, those an earlier stage put in ``spec.layers`` (an image's),
    then each ``--layer``.
    """
    sources = ([spec.rootfs] if spec.rootfs else []) + spec.layers + list(args.layer)
    if not sources:
        raise EngineError("no image: give a ROOTFS or at least one --layer PATH")
    store = LayerStore()
    ContainerFS.remove_abandoned(store)  # what engines killed before their clean-up left behind
    holder = f"container:{spec.id}"
    diff_ids: list[str] = []
    try:
        for source in sources:
            if source.startswith("sha256:"):
                store.ref(source, holder)  # an error if it is not stored
                diff_ids.append(canonical(source))
            else:
                diff_ids.append(import_rootfs(store, source, holder=holder))
        fs = ContainerFS.create(store, spec.id, diff_ids)
    except BaseException:
        for diff_id in diff_ids:
            store.unref(diff_id, holder)
        raise
    if spec.id_map:  # its root, an unprivileged host user, walks down to merged/ (core.paths)
        _paths.let_in(fs.dir, spec.id_map.outside)
    if args.keep:
        cleanup.callback(_say_kept, spec.id)
        cleanup.callback(fs.unmount)
    else:
        remove_on_exit(fs, spec, cleanup)
    spec.rootfs = str(fs.mount())
# --8<-- [end:configure]


# --8<-- [start:remove_on_exit]
def remove_on_exit(fs: ContainerFS, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Remove ``fs`` when the engine is done with it; if the engine is killed, chapter 03's watchdog
    does, once the container (which dies with its engine, ``PR_SET_PDEATHSIG``) is gone too."""
    fs.claim()
    command = _watchdog.python_argv("from minidocker.overlay import stage; stage._remove_left()",
                                    str(fs.store.root), fs.id)
    try:
        disarm = _watchdog.start(command, "minidocker-overlay-watchdog")
    except BaseException:
        fs.remove()
        raise
    spec.add_hook("on_created", fs.claim)  # the container's PID 1 too: unmount only once it is gone
    cleanup.callback(_remove_and_disarm, fs, disarm)
# --8<-- [end:remove_on_exit]


def _remove_and_disarm(fs: ContainerFS, disarm: _watchdog.Disarm) -> None:
    try:
        fs.remove()
    finally:
        disarm()


def _say_kept(container_id: str) -> None:
    print(f"minidocker: kept the container's filesystem: {container_id}", file=sys.stderr)


def _remove_left() -> None:
    """``-c CODE PATH STORE ID``: remove a dead engine's filesystem as soon as its container is gone."""
    store, container_id = LayerStore(sys.argv[2]), sys.argv[3]
    claim, deadline = store.root / "containers" / container_id / "engine", time.monotonic() + 10
    while claim.exists() and not ContainerFS.remove_abandoned(store, container_id):
        if time.monotonic() > deadline:  # the container lives on: the next start removes it
            break
        time.sleep(0.01)
    sys.stderr.flush()
    os._exit(0)


STAGES = (*cgroups.STAGES, _stage.Stage("overlay", add_arguments, configure))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.overlay [--layer PATH]... [OPTIONS] [ROOTFS] -- CMD [ARG...]``."""
    return _stage.main(argv, prog="python -m minidocker.overlay", doc=__doc__, stages=STAGES,
                       run=namespaces.run, rootfs_required=False)


if __name__ == "__main__":
    _stage.exit_now(main())
