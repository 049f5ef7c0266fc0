"""Chapter 03: cgroups: how much memory, CPU and how many processes a container may use.

Namespaces decide what a container can *see*; control groups decide how much it can *use*. This
is the chapter's stage: every container gets a cgroup named after its id under the cgroup parent
(``minidocker``), with the limits asked for (``resources``), on v1, v2 or hybrid hosts alike
(``cgroup``, ``cgroups_v1``, ``cgroups_v2``). The container's PID 1 joins it from outside before
it runs anything; inside, a cgroup namespace makes it ``/`` and ``/sys/fs/cgroup`` is mounted
read-only; when the container ends, what is left is killed and the directories are removed, also
if the engine itself is killed. An OOM kill is reported (exit 137 and one line).

Run it (as root)::

    python -m minidocker.cgroups --memory 32m "$(python -m minidocker.rootfs)" -- \\
        /bin/sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1'     # exit 137: out of memory

Options: ``-m/--memory``, ``--memory-swap``, ``--cpus``, ``-c/--cpu-shares``, ``--pids-limit``,
``--cpuset-cpus`` (Docker's syntax), and chapter 02's.

The public API other chapters use is re-exported here: :class:`Cgroup`, :class:`Limits`,
:class:`Stats`, :func:`parse_limits`, :func:`parse_size`, :func:`cgroup_mode`, :func:`apply`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from minidocker.cgroups.cgroup import Cgroup, Hierarchy, cgroup_mode, hierarchies
from minidocker.cgroups.resources import Limits, Stats, parse_limits, parse_size
from minidocker.core import stage as _stage
from minidocker.core import watchdog as _watchdog
from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec
from minidocker.core.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REMOUNT, mount
from minidocker.namespaces import stage as namespaces

__all__ = ["STAGES", "Cgroup", "Hierarchy", "Limits", "Stats", "apply", "cgroup_mode", "hierarchies",
           "main", "mount_cgroupfs", "parse_limits", "parse_size", "remove_on_exit"]


# exercise 03.9: Mount the container's cgroups read-only inside it
# hint: target is root/sys/fs/cgroup, flags MS_NOSUID | MS_NODEV | MS_NOEXEC. v2: one "cgroup2"
#   mount, MS_RDONLY. v1: a tmpfs ("mode=755"), then for each tree a directory named like its host
#   mount point holding a "cgroup" mount whose data is its controllers joined by ",", read-only,
#   plus symlinks for controllers sharing a tree; finally remount the tmpfs MS_REMOUNT | MS_RDONLY.
# --8<-- [start:mount_cgroupfs]
def mount_cgroupfs(root: str, cgroup: Cgroup) -> None:
    """Mount the container's cgroups read-only at ``root/sys/fs/cgroup``, as Docker does.

    Runs in the container, after it unshared its cgroup namespace: a cgroup filesystem mounted
    there has the container's own cgroup as its root. The container can read its limits and usage
    (as the JVM and ``free`` in some images do) but not raise them, and sees nothing of the host.
    v2: one cgroup2 mount. v1: a tmpfs holding one mount per tree, like runc.
    """
    target = os.path.join(root, "sys/fs/cgroup")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if cgroup.version == 2:
        mount("cgroup2", target, "cgroup2", flags | MS_RDONLY)
        return
    mount("tmpfs", target, "tmpfs", flags, "mode=755")
    for hierarchy in cgroup.hierarchies:
        name = hierarchy.mountpoint.name  # "memory", or "cpu,cpuacct" when they share a tree
        os.mkdir(os.path.join(target, name))
        mount("cgroup", os.path.join(target, name), "cgroup", flags | MS_RDONLY,
              ",".join(sorted(hierarchy.controllers)))
        for controller in hierarchy.controllers - {name}:
            os.symlink(name, os.path.join(target, controller))  # cpu -> cpu,cpuacct
    mount(None, target, None, MS_REMOUNT | MS_RDONLY | flags)
# --8<-- [end:mount_cgroupfs]


# exercise 03.8: Put the container in its cgroup before it runs anything
# hint: Cgroup.create(spec.id, limits); spec.add_hook("on_created", cgroup.add) (the engine runs it
#   before "go"); with a cgroup namespace, a before_pivot hook that mount_cgroupfs()s. Return it.
# --8<-- [start:apply]
def apply(spec: ContainerSpec, limits: Limits) -> Cgroup:
    """Create the container's cgroup and hook it into ``spec``; the caller removes it afterwards.

    PID 1 joins from outside in ``on_created``, *before* it is told to go: the command can never
    run unlimited, and the cgroup namespace PID 1 unshares next has this cgroup as its root.
    """
    cgroup = Cgroup.create(spec.id, limits)
    spec.add_hook("on_created", cgroup.add)
    if "cgroup" in spec.namespaces:
        spec.add_hook("before_pivot", lambda root: mount_cgroupfs(root, cgroup))
    return cgroup
# --8<-- [end:apply]


def _mib(size: int | None) -> str:
    return "none" if size is None else f"{size / (1 << 20):g} MiB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 03, spelled as in ``docker run``."""
    group = parser.add_argument_group("cgroups (chapter 03)")
    group.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 64m or 1g")
    group.add_argument("--memory-swap", metavar="SIZE",
                       help="memory + swap limit (-1: unlimited swap; default: twice --memory)")
    group.add_argument("--cpus", metavar="N", help="CPUs' worth of time it may use, e.g. 0.5")
    group.add_argument("-c", "--cpu-shares", metavar="N", help="relative CPU weight (default 1024)")
    group.add_argument("--pids-limit", metavar="N", help="most processes at once (0 or -1: no limit)")
    group.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs it may run on, e.g. 0 or 0-1")


# exercise 03.10: Configure the stage, and say when the OOM killer struck
# hint: parse_limits() from the options (before anything exists), apply(), remove_on_exit(); an
#   on_exit hook: functools.partial(report_oom, cgroup, limits.memory) (one line if the OOM killer struck).
# --8<-- [start:configure]
def configure(args: argparse.Namespace, spec: ContainerSpec,
              cleanup: contextlib.ExitStack) -> None:
    """Check the limits (before anything exists), create the cgroup, report an OOM kill, clean up."""
    limits = parse_limits(args.memory, args.memory_swap, args.cpus, args.cpu_shares, args.pids_limit,
                          args.cpuset_cpus)
    cgroup = apply(spec, limits)
    remove_on_exit(cgroup, cleanup)
    spec.add_hook("on_exit", functools.partial(report_oom, cgroup, limits.memory))
# --8<-- [end:configure]


def report_oom(cgroup: Cgroup, memory: int | None, _status: int) -> None:
    """After the container: one line on stderr if the kernel's OOM killer struck in ``cgroup``."""
    kills = cgroup.stats().oom_kills
    if kills:
        print(f"minidocker: the container ran out of memory (limit {_mib(memory)}): "
              f"the kernel's OOM killer killed {kills} of its processes", file=sys.stderr)


# --8<-- [start:remove_on_exit]
def remove_on_exit(cgroup: Cgroup, cleanup: contextlib.ExitStack) -> None:
    """Remove ``cgroup`` when the engine is done with it, even if the engine is killed or crashes.

    Normally the engine removes it on its way out (``cleanup``), then disarms the watchdog. For
    when it never gets there (SIGKILL, a crash), the watchdog runs a fresh Python that removes it.
    """
    try:
        disarm = _watchdog.start(_remover_argv(cgroup), "minidocker-cgroup-watchdog")
    except BaseException:
        cgroup.remove()
        raise
    cleanup.callback(_remove_and_disarm, cgroup, disarm)  # data, not a closure: see core.watchdog.Disarm
# --8<-- [end:remove_on_exit]


def _remove_and_disarm(cgroup: Cgroup, disarm: _watchdog.Disarm) -> None:
    try:
        _remove(cgroup)
    finally:
        disarm()


def _remove(cgroup: Cgroup) -> None:
    try:
        cgroup.remove()
    except EngineError as e:  # keep the container's exit status; say what is left
        print(f"minidocker: warning: {e}", file=sys.stderr)


def _remover_argv(cgroup: Cgroup) -> list[str]:
    """A command that removes ``cgroup``: a fresh Python running :func:`_remove_left`, for the watchdog."""
    return _watchdog.python_argv("from minidocker.cgroups import stage; stage._remove_left()", cgroup.name,
                                 str(cgroup.version), *map(str, cgroup.directories))


def _remove_left() -> None:
    """``-c CODE PATH NAME VERSION DIRECTORY...``: remove what a dead engine left, then exit at once."""
    name, version, *directories = sys.argv[2:]
    _remove(Cgroup(name, int(version), directories=[Path(d) for d in directories]))
    sys.stderr.flush()
    os._exit(0)


STAGES = (*namespaces.STAGES, _stage.Stage("cgroups", add_arguments, configure))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.cgroups [OPTIONS] ROOTFS -- CMD [ARG...]``."""
    return _stage.main(argv, prog="python -m minidocker.cgroups", doc=__doc__, stages=STAGES,
                       run=namespaces.run)


if __name__ == "__main__":
    _stage.exit_now(main())
