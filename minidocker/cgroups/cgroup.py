"""Chapter 03: one container's cgroup, on whichever cgroup trees the host has: create, join, account, remove.

A cgroup is a directory in a special filesystem. Its files are the limits (write ``67108864`` to
the memory limit) and the accounting (read the CPU time used), and a process belongs to it once
its pid is written to the directory's ``cgroup.procs``. Hosts come in three kinds, told apart by
the mount table (:func:`cgroup_mode`, :func:`hierarchies`):

* **v1**: one tree per controller (``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/pids``, ...): a
  container is a directory in *each* tree (backend: ``cgroups_v1``);
* **v2**: one unified tree: a container is *one* directory (backend: ``cgroups_v2``);
* **hybrid**: v1 trees plus a v2 tree holding the few controllers no v1 tree took; a container
  goes in the v1 trees, where the controllers that matter are.

:class:`Cgroup` hides the difference: the same ``name`` (``minidocker/ID``) in each tree, created
from the tree's *root*, never below the engine's own cgroup, so that a container's limits do not
depend on where the engine happens to run.

Example (as root)::

    >>> cgroup = Cgroup.create("abc123", parse_limits(memory="64m"))
    >>> cgroup.add(pid)                  # pid and its future children are now limited
    >>> cgroup.stats().memory_peak       # bytes
    >>> cgroup.remove()                  # kill what is left, rmdir
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections import namedtuple
from collections.abc import Iterator, Sequence
from pathlib import Path

from minidocker.cgroups import v1 as cgroups_v1
from minidocker.cgroups import v2 as cgroups_v2
from minidocker.cgroups.files import pids_in, read_text, rmdir_tree, write
from minidocker.cgroups.resources import Limits, Stats
from minidocker.core import paths as _paths
from minidocker.core.process import EngineError
from minidocker.core.record import Record

__all__ = ["Cgroup", "Hierarchy", "cgroup_mode", "hierarchies"]

# Used when /proc/cgroups is missing: the v1 controllers a kernel may have.
_V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                   "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"}


def cgroup_mode(mountinfo: str = "/proc/self/mountinfo") -> str:
    """``"v2"`` (one unified tree), ``"v1"`` (one tree per controller) or ``"hybrid"`` (both).

    Read from the mount table, not guessed from paths: a cgroup2 mount that is the only cgroup
    mount means v2; v1 mounts plus a cgroup2 mount (usually at /sys/fs/cgroup/unified) is hybrid.
    """
    types = set()
    with open(mountinfo) as f:
        for line in f:
            fstype = line.split(" - ", 1)[1].split()[0]
            if fstype in ("cgroup", "cgroup2"):
                types.add(fstype)
    if types == {"cgroup2"}:
        return "v2"
    if types == {"cgroup"}:
        return "v1"
    return "hybrid" if types else "none"


class Hierarchy(namedtuple("Hierarchy", "version mountpoint controllers")):
    """One mounted cgroup tree: v1 or v2, where its root is mounted, and the controllers it holds."""

    __slots__ = ()
    version: int
    mountpoint: Path
    controllers: frozenset[str]


# exercise 03.1: Find every cgroup tree in the mount table
# hint: controller names are the enabled rows of /proc/cgroups (4th column "1"); in mountinfo the
#   fields after " - " are fstype, source, super options; skip a tree already seen (same major:minor,
#   3rd field); cgroup2: Hierarchy(2, point, controllers read from point/cgroup.controllers); cgroup:
#   Hierarchy(1, point, known controllers among the options), left out when there are none.
# --8<-- [start:hierarchies]
def hierarchies(mountinfo: str = "/proc/self/mountinfo",
                proc_cgroups: str = "/proc/cgroups") -> list[Hierarchy]:
    """Every cgroup tree mounted here, from the mount table; no path is assumed.

    A v1 mount's options name its controllers (``rw,memory``); ``/proc/cgroups`` tells controller
    names from other options. A v2 mount lists its controllers in its root's ``cgroup.controllers``.
    v1 trees without a controller (``name=systemd``) limit nothing and are left out.
    """
    try:
        with open(proc_cgroups) as f:
            known = {line.split()[0] for line in f if not line.startswith("#") and line.split()[3] == "1"}
    except OSError:
        known = _V1_CONTROLLERS
    found, seen = [], set()
    with open(mountinfo) as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields, (fstype, _source, options) = left.split(), right.split()[:3]
            if fstype not in ("cgroup", "cgroup2") or fields[2] in seen:
                continue  # not a cgroup, or a tree we already have (mounted twice)
            seen.add(fields[2])
            point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]))  # \040: " "
            if fstype == "cgroup2":
                found.append(Hierarchy(2, point, frozenset(read_text(point / "cgroup.controllers").split())))
            elif controllers := known & set(options.split(",")):
                found.append(Hierarchy(1, point, frozenset(controllers)))
    return found
# --8<-- [end:hierarchies]


def _layout(found: Sequence[Hierarchy]) -> tuple[int, list[Hierarchy]]:
    """Which trees a container goes in: every v1 tree if there is one (v1 and hybrid), else the v2 tree."""
    v1 = [h for h in found if h.version == 1]
    if v1:
        return 1, v1
    v2 = [h for h in found if h.version == 2]
    if v2:
        return 2, v2[:1]
    raise EngineError("no cgroup filesystem is mounted: mount cgroup2 at /sys/fs/cgroup "
                      "(see 'minidocker doctor')")


class Cgroup(Record):
    """A container's cgroup: the same relative ``name`` in each tree the host has (one tree on v2).

    Example (as root)::

        cgroup = Cgroup.create("abc123", parse_limits(memory="64m"))
        cgroup.add(pid)                 # pid and its future children are now limited
        cgroup.stats().memory_peak      # bytes
        cgroup.remove()                 # kill what is left, rmdir
    """

    _fields = ("name", "version", "hierarchies", "directories")
    __slots__ = _fields

    def __init__(self, name: str, version: int, hierarchies: list[Hierarchy] | None = None,
                 directories: list[Path] | None = None) -> None:
        self.name = name  # e.g. "minidocker/abc123"
        self.version = version  # 1 or 2
        self.hierarchies = [] if hierarchies is None else hierarchies
        self.directories = [] if directories is None else directories  # the container's directory in each

    @classmethod
    def create(cls, container_id: str, limits: Limits | None = None, *, parent: str | None = None,
               found: Sequence[Hierarchy] | None = None) -> Cgroup:
        """Make the directories under each tree's root (not under our own cgroup) and write ``limits``.

        ``found`` replaces the probed trees (tests use a fake one). On failure nothing is left.
        """
        limits = limits or Limits()
        trees = hierarchies() if found is None else found
        version, chosen = _layout(trees)
        missing = limits.controllers() - set().union(*(h.controllers for h in chosen))
        elsewhere = missing & set().union(*(h.controllers for h in trees if h not in chosen))
        if elsewhere:  # a hybrid host with the controller on v2 only: runc does not mix either
            raise EngineError(f"the {' and '.join(sorted(elsewhere))} cgroup controller is on this hybrid "
                              "host's v2 tree, and containers go in its v1 trees: boot with "
                              "systemd.unified_cgroup_hierarchy=1 (all v2) to use it")
        if missing:
            raise EngineError(f"this host has no {' or '.join(sorted(missing))} cgroup controller, "
                              "which the limits asked for need (see 'minidocker doctor')")
        parts = _parts(parent, container_id)
        cgroup = cls("/".join(parts), version)
        try:
            for hierarchy in chosen:
                try:
                    directory = _make_directory(hierarchy, parts)
                except OSError as e:
                    raise EngineError(f"cannot create cgroup {cgroup.name} in {hierarchy.mountpoint}: "
                                      f"{e.strerror}") from None
                cgroup.hierarchies.append(hierarchy)
                cgroup.directories.append(directory)
                if version == 1 and "cpuset" in hierarchy.controllers:
                    cgroups_v1.init_cpuset(directory)
            if version == 1:
                cgroups_v1.write_limits(cgroup.controllers(), limits)
            else:
                cgroups_v2.write_limits(cgroup.directories[0], limits)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def update(self, limits: Limits) -> None:
        """Write new ``limits`` into the live cgroup (``docker update``); its processes go on running.

        The same writes as at :meth:`create`: the kernel applies a lower CPU quota or pids limit at
        once, and reclaims memory down to a lower limit (the caller refuses one below what is in use:
        the kernel would OOM-kill to get there on v2, or refuse with EBUSY on v1).
        """
        missing = limits.controllers() - set(self.controllers())
        if self.version == 2:
            missing = {c for c in limits.controllers()
                       if c not in read_text(self.directories[0] / "cgroup.controllers").split()}
        if missing:
            raise EngineError(f"cgroup {self.name} has no {' or '.join(sorted(missing))} controller")
        try:
            if self.version == 1:
                cgroups_v1.write_limits(self.controllers(), limits)
            else:
                cgroups_v2.write_limits(self.directories[0], limits)
        except OSError as e:
            raise EngineError(f"cannot update cgroup {self.name}: {e.strerror}") from None

    @classmethod
    def open(cls, container_id: str, *, parent: str | None = None,
             found: Sequence[Hierarchy] | None = None) -> Cgroup:
        """The existing cgroup of a container (for a daemon that restarted); :class:`EngineError` if none."""
        version, chosen = _layout(hierarchies() if found is None else found)
        parts = _parts(parent, container_id)
        cgroup = cls("/".join(parts), version)
        for hierarchy in chosen:
            if (hierarchy.mountpoint / cgroup.name).is_dir():
                cgroup.hierarchies.append(hierarchy)
                cgroup.directories.append(hierarchy.mountpoint / cgroup.name)
        if not cgroup.directories:
            raise EngineError(f"no cgroup {cgroup.name}: the container is gone")
        return cgroup

    @classmethod
    def of_process(cls, pid: int, *, found: Sequence[Hierarchy] | None = None) -> Cgroup:
        """The cgroup process ``pid`` is in now, in the trees a container goes in (``docker exec``, stats).

        ``/proc/PID/cgroup`` has a line per tree, ``ID:CONTROLLERS:PATH`` (v2: ``0::PATH``), PATH
        from the tree's root (as our cgroup namespace sees it); the mount table says where that root
        is. Works whatever cgroup parent the container was created under. :class:`EngineError` if
        the process is gone or is in none of the trees.
        """
        version, chosen = _layout(hierarchies() if found is None else found)
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = [line.rstrip("\n").split(":", 2) for line in f]
        except OSError:
            raise EngineError(f"process {pid} is gone: no cgroup to read") from None
        cgroup = cls("", version)
        for hierarchy in chosen:
            for _, names, path in lines:  # v1 trees hold disjoint controllers: one line matches
                if (hierarchy.controllers & set(names.split(",")) if version == 1 else not names):
                    cgroup.name = cgroup.name if cgroup.directories else path.strip("/")
                    cgroup.hierarchies.append(hierarchy)
                    cgroup.directories.append(hierarchy.mountpoint / path.lstrip("/"))
                    break
        if not cgroup.directories:
            raise EngineError(f"process {pid} is in none of the cgroup trees mounted here")
        return cgroup

    def controllers(self) -> dict[str, Path]:
        """Controller name -> the container's directory for it."""
        return {c: d for h, d in zip(self.hierarchies, self.directories, strict=True) for c in h.controllers}

    def path(self, controller: str) -> Path:
        """The container's directory for ``controller`` (on v2, the one directory, whatever you ask)."""
        if self.version == 2:
            return self.directories[0]
        try:
            return self.controllers()[controller]
        except KeyError:
            raise EngineError(f"this host has no {controller} cgroup controller") from None

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads; its future children follow) into the cgroup."""
        for directory in self.directories:
            write(directory / "cgroup.procs", pid)

    def pids(self) -> set[int]:
        """The processes in the cgroup now (host pids)."""
        return set().union(*(pids_in(d) for d in self.directories))

    def stats(self) -> Stats:
        """Memory, CPU, pids, throttling and OOM kills, from the cgroup's own accounting."""
        if self.version == 2:
            return cgroups_v2.read_stats(self.directories[0])
        return cgroups_v1.read_stats(self.controllers())

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup."""
        return self.stats().oom_kills > 0

    # --8<-- [start:frozen]
    @contextlib.contextmanager
    def frozen(self, timeout: float = 5.0) -> Iterator[None]:
        """Stop every process of the cgroup for the ``with`` block (``docker pause``), then let them go.

        Why: reading a running container's files from the host races with the container, which may
        swap a directory for a symlink to the host's ``/etc`` between our listing and our reading
        (CVE-2018-15664's class); ``docker commit`` pauses by default. The freezer does it: v2's
        ``cgroup.freeze`` (done when ``cgroup.events`` says ``frozen 1``), v1's ``freezer.state``
        (``FROZEN``). A cgroup frozen already (paused) is left frozen afterwards.

        Example::

            >>> with Cgroup.of_process(pid).frozen():
            ...     commit(fs, store)
        """
        was_frozen = self.is_frozen()
        self.freeze(timeout)
        try:
            yield
        finally:
            if not was_frozen:
                self.thaw()
    # --8<-- [end:frozen]

    def _freezer(self) -> tuple[Path, str, str]:
        """The freezer's state file and its two words: v2's ``cgroup.freeze`` 1/0, v1's FROZEN/THAWED."""
        if self.version == 2:
            return self.directories[0] / "cgroup.freeze", "1", "0"
        return self.path("freezer") / "freezer.state", "FROZEN", "THAWED"

    def is_frozen(self) -> bool:
        """Whether the cgroup is frozen now (``docker pause``'s state: the kernel's, never a copy)."""
        state, freeze, _ = self._freezer()
        try:
            return read_text(state).strip() == freeze
        except OSError:
            return False

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process of the cgroup until :meth:`thaw`; return once the kernel says they are."""
        state, freeze, _ = self._freezer()
        if not state.exists():
            raise EngineError(f"cgroup {self.name} cannot be frozen (no {state.name}): pause=false to go on")
        if self.version == 2:
            events = self.directories[0] / "cgroup.events"

            def done() -> bool:
                return "frozen 1" in read_text(events).splitlines()
        else:
            def done() -> bool:
                return read_text(state).strip() == "FROZEN"
        write(state, freeze)
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                write(state, self._freezer()[2])
                raise EngineError(f"cgroup {self.name} did not freeze within {timeout:g} s")
            time.sleep(0.002)

    def thaw(self) -> None:
        """Let the processes of a frozen cgroup run again."""
        state, _, thaw = self._freezer()
        write(state, thaw)

    # --8<-- [start:kill_all]
    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup, also those forked meanwhile; return when it is empty."""
        deadline = time.monotonic() + timeout
        kill_file = self.directories[0] / "cgroup.kill" if self.directories else None
        while pids := self.pids():
            if self.version == 2 and kill_file and kill_file.exists():
                write(kill_file, 1)  # Linux 5.14+: the kernel kills the whole subtree, no race
            else:
                for pid in pids:  # a fork between reading and killing shows up next round
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise EngineError(f"cgroup {self.name}: processes {sorted(pids)} do not die")
            time.sleep(0.005)
    # --8<-- [end:kill_all]

    # --8<-- [start:remove]
    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, remove the directories, and the parent as well once it is empty.

        Safe to call twice. rmdir of a cgroup fails with EBUSY while a killed process is still
        exiting, so it is retried for a moment.
        """
        self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        for directory in self.directories:
            while True:
                try:
                    rmdir_tree(directory)
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise EngineError(f"cannot remove cgroup {directory}: {e.strerror}") from None
                    time.sleep(0.005)
            for ancestor in list(directory.parents)[:self.name.count("/")]:
                try:
                    ancestor.rmdir()
                except OSError:
                    break  # not empty: another container still uses it
    # --8<-- [end:remove]


def _parts(parent: str | None, container_id: str) -> list[str]:
    """``minidocker/ID`` as path parts; the parent may be nested (``a/b``) and is ``_paths``' by default."""
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise EngineError(f"invalid container id {container_id!r} for a cgroup name")
    return [p for p in (parent or _paths.cgroup_parent()).split("/") if p] + [container_id]


def _make_directory(hierarchy: Hierarchy, parts: list[str]) -> Path:
    """mkdir ``parts`` below the tree's root, preparing each new level (cpuset, subtree_control).

    Another container's clean-up may remove our (empty) parent while we work: then we start over.
    """
    for attempt in range(5):
        directory = hierarchy.mountpoint
        try:
            for part in parts[:-1]:
                if hierarchy.version == 2:
                    cgroups_v2.enable_controllers(directory, cgroups_v2.CONTROLLERS)
                directory = directory / part
                with contextlib.suppress(FileExistsError):
                    directory.mkdir()
                if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
                    cgroups_v1.init_cpuset(directory)
            if hierarchy.version == 2:
                cgroups_v2.enable_controllers(directory, cgroups_v2.CONTROLLERS)
            leaf = directory / parts[-1]
            leaf.mkdir()
            return leaf
        except FileExistsError:
            raise EngineError(f"cgroup {leaf} already exists: is container {parts[-1]} running?") from None
        except (OSError, EngineError):
            if attempt == 4 or directory.is_dir():
                raise
    raise AssertionError("unreachable")
