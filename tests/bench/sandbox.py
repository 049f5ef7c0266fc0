"""The benchmark's own corner of the machine: private network and mount namespaces, private cgroups.

Docker, podman and minidocker all make bridges, firewall rules, ``ip_forward`` switches, mounts,
lock files under ``/run`` and state under ``/var/lib``. On a shared machine none of that may reach
the host, so before it starts anything the harness moves *itself* into a new network namespace
(only ``lo``, up) and a new mount namespace (every mount private), and puts fresh tmpfs mounts
over the places the peers write to without asking (``/run``, ``/dev/shm``, ``/etc/docker`` where
dockerd 20.10 writes ``key.json``, and the ``/var`` directories podman and CNI use). Everything it
starts inherits that; when it exits, the namespaces and their mounts are gone.

Cgroups are the exception (there is one cgroupfs per host): every engine gets a cgroup parent
named after this run (:attr:`Sandbox.cgroup_prefix`), and :meth:`Sandbox.close` removes them all.

crun 1.8 refuses this host's hybrid cgroups (a cgroup2 mount at ``/sys/fs/cgroup/unified`` holding
only hugetlb). Moving hugetlb to v1 would change the whole host; instead :meth:`Sandbox.legacy_cgroups`
keeps a mount namespace where a private tmpfs covers ``/sys/fs/cgroup/unified``: crun (and podman,
which runs crun) see plain cgroup v1, as runc and dockerd use anyway here, and run inside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from minidocker.core import syscalls as _syscalls
from minidocker.namespaces import mounts
from minidocker.namespaces.stage import loopback_up

__all__ = ["Sandbox", "descendants"]

# Where the peers write outside the paths we give them (found with `find -newer` after a run).
PRIVATE_TMPFS = ("/run", "/dev/shm", "/etc/docker", "/var/lib/cni", "/var/cache/containers",
                 "/var/lib/containers")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def descendants(root: int) -> list[int]:
    """Every live descendant of process ``root`` (not ``root`` itself), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                state, ppid = stat.rsplit(")", 1)[1].split()[:2]
                if state != "Z":
                    children.setdefault(int(ppid), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


class Sandbox:
    """Enter private namespaces (:meth:`enter`), and undo everything at the end (:meth:`close`)."""

    def __init__(self, base: Path, cgroup_prefix: str) -> None:
        self.base = base
        self.cgroup_prefix = cgroup_prefix
        self.created: list[str] = []  # mount points we had to create on the host (removed at the end)
        self.mounted: list[str] = []
        self.holder: subprocess.Popen | None = None

    def enter(self) -> None:
        """Move this process into new network and mount namespaces, with private tmpfs mounts."""
        _syscalls.unshare(_syscalls.CLONE_NEWNS | _syscalls.CLONE_NEWNET)
        mounts.make_mounts_private()
        loopback_up()
        for path in PRIVATE_TMPFS:
            if not os.path.isdir(path):
                os.makedirs(path)  # an empty directory on the host until close() removes it
                self.created.append(path)
            _syscalls.mount("mdbench", path, "tmpfs", 0, "mode=0755")
            self.mounted.append(path)
        for path in ("/run/lock", "/run/user"):
            os.makedirs(path, exist_ok=True)
        # Orphans (containerd shims, conmon, minidocker monitors) come to us, so we can find them all.
        _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)

    def reap(self, keep: set[int]) -> None:
        """Collect the exit status of orphans handed to us (we are their subreaper), except ``keep``.

        ``keep`` are the pids of the long-lived processes we started (daemons, the registry) whose
        ``Popen`` objects will wait for them themselves.
        """
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in keep:
                with contextlib.suppress(OSError):
                    state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
                    if state == "Z" and ppid == me:
                        os.waitpid(int(entry), os.WNOHANG)

    def legacy_cgroups(self) -> list[str]:
        """A command prefix that runs a program where ``/sys/fs/cgroup`` looks like plain cgroup v1."""
        if self.holder is None:
            script = ("mount -t tmpfs mdbench-no-unified /sys/fs/cgroup/unified 2>/dev/null || true; "
                      "echo ready; exec sleep infinity")
            self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                            script], stdout=subprocess.PIPE, text=True)
            assert self.holder.stdout is not None
            self.holder.stdout.readline()
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--"]

    def cgroups(self) -> list[Path]:
        """This run's cgroup directories (every hierarchy), deepest first."""
        found: list[Path] = []
        # v1 (and hybrid): one level down, in each controller's tree; v2: /sys/fs/cgroup itself
        for hierarchy in [CGROUP_ROOT, *CGROUP_ROOT.iterdir()]:
            with contextlib.suppress(OSError):
                for top in hierarchy.glob(f"{self.cgroup_prefix}*"):
                    found += [p for p in top.glob("**/") if p.is_dir()]
        return sorted(set(found), key=lambda p: -len(p.parts))

    def close(self) -> None:
        """Kill whatever we started that is still alive, remove our cgroups and mount points."""
        for pid in reversed(descendants(os.getpid())):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while descendants(os.getpid()) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, os.WNOHANG)
            time.sleep(0.05)
        self.holder = None
        for cgroup in self.cgroups():
            with contextlib.suppress(OSError):
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(100):  # EBUSY while a killed process is still exiting
                try:
                    cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        for path in reversed(self.mounted):
            with contextlib.suppress(OSError):
                _syscalls.umount2(path, _syscalls.MNT_DETACH)
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                os.rmdir(path)
