"""What a container can leave behind on the host, as sets we can compare before and after a test.

Each probe returns a set of strings naming live resources of one kind. The ``no_leaks`` fixture in
``conftest.py`` takes every probe before and after each test and fails the test if something new
is still there, then tries to remove it so one leak does not fail the tests after it. A chapter
that creates a new kind of resource adds its probe (and its remover) here.

Probes only look at what *this* test run could have made (mounts under its temporary directory,
its own descendant processes, cgroups and links named by minidocker) so that they stay right when
several test runs share a machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from minidocker.core import syscalls as _syscalls

SCOPE: dict[str, str] = {}  # filled by conftest: "tmp" -> this run's base temp dir


def mounts() -> set[str]:
    """Mount points under this run's temp dir (where its state and run dirs are) or the cache."""
    roots = tuple(p for p in (SCOPE.get("tmp"), "/var/cache/minidocker") if p)
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(roots):
                found.add(point)
    return found


def processes() -> set[str]:
    """Live descendants of this pytest process (containers, engines, servers started by a test)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as f:
                    state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
                if state != "Z":  # exited: only its exit status is left
                    children.setdefault(int(ppid), []).append(int(entry))
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            with contextlib.suppress(OSError):
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                found.add(f"{child} {cmd[:100]}")
            todo.append(child)
    return found


def cgroups() -> set[str]:
    """Cgroup directories under this run's cgroup parent, in every hierarchy."""
    found = set()
    base = Path("/sys/fs/cgroup")
    if base.is_dir():
        for hierarchy in base.iterdir():
            with contextlib.suppress(OSError):
                for path in hierarchy.glob(f"**/*{SCOPE.get('cgroup', 'minidocker')}*"):
                    if path.is_dir():
                        found.add(str(path))
    return found


def _network_names() -> tuple[str, str]:
    """This run's bridge and nftables table (``network.NetworkConfig``'s variables and defaults)."""
    return (os.environ.get("MINIDOCKER_BRIDGE") or "minidocker0",
            os.environ.get("MINIDOCKER_NFT_TABLE") or "minidocker")


def links() -> set[str]:
    """Network devices of this run: its bridge, veths whose alias names it, test links named after it.

    Not every device of the host: other test runs on the machine make theirs at the same time.
    """
    bridge, _ = _network_names()
    ours = f"minidocker:{SCOPE['tmp']}/" if SCOPE.get("tmp") else None  # a bridge of a state dir of this run

    def alias_of(name: str) -> str:
        try:
            return Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
        except OSError:
            return ""

    found = set()
    for name in os.listdir("/sys/class/net"):
        alias = alias_of(name)
        if name.startswith(bridge) or alias.startswith(f"minidocker:{bridge}:"):
            found.add(name)
        elif ours and (alias.startswith(ours) or (alias.startswith("minidocker:br-") and alias_of(
                f"{name}/master").startswith(ours))):
            found.add(name)  # chapter 12: a user-defined network's bridge (br-ID), or a veth on one
    return found


def nftables() -> set[str]:
    """This run's nftables tables, if they exist: chapter 05's one and chapter 12's ``TABLE_nets``
    (and those of daemons a test gave a table of its own, ``TABLE_x_nets``)."""
    _, table = _network_names()
    try:
        listing = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return set()
    return {line.strip() for line in listing.splitlines()
            if line.split()[-1:] == [table] or (line.split() or [""])[-1].startswith(f"{table}_")}


def leases() -> set[str]:
    """IP addresses leased in this run's bridge network (its IPAM file in this run's state dir)."""
    state = os.environ.get("MINIDOCKER_STATE")
    if not state:
        return set()
    bridge, _ = _network_names()
    path = Path(state, "networks", bridge, "ipam.json")
    try:
        return {f"{lease['ip']} {cid}" for cid, lease in json.loads(path.read_text())["leases"].items()}
    except (OSError, ValueError, KeyError):
        return set()


def netns() -> set[str]:
    """Named network namespaces."""
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def loop_devices() -> set[str]:
    """Loop devices backed by a file under this run's temp dir (chapter 06's stand-in host disk)."""
    tmp, found = SCOPE.get("tmp"), set()
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            path = backing.read_text().strip()
            if tmp and path.startswith(tmp):
                found.add(f"{backing.parent.parent.name} {path}")
    return found


def oci_states() -> set[str]:
    """Chapter 14: containers' state directories under this run's OCI runtime roots (``runtime-root*``)."""
    tmp = SCOPE.get("tmp")
    if not tmp:
        return set()
    return {str(state.parent) for pattern in ("runtime-root*/*/state.json", "runtime-root*/*/*/state.json")
            for state in Path(tmp).glob(pattern)}


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _unmount(point: str) -> None:
    with contextlib.suppress(OSError):
        _syscalls.umount2(point, _syscalls.MNT_DETACH)


def _kill(entry: str) -> None:
    with contextlib.suppress(OSError):
        os.kill(int(entry.split()[0]), signal.SIGKILL)


def _rmdir(path: str) -> None:
    """Kill the processes of a cgroup *and of the cgroups below it* (containers), then rmdir them all."""
    for procs in Path(path).glob("**/cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 2
    for sub in sorted(Path(path).glob("**/"), key=lambda p: -len(p.parts)):
        while True:  # EBUSY while a killed process is still exiting
            try:
                sub.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)


def _del_link(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


def _del_table(line: str) -> None:
    subprocess.run(["nft", "delete", *line.split()], capture_output=True, check=False)


def _release(entry: str) -> None:
    from minidocker.network.stage import Network

    with contextlib.suppress(Exception):
        Network().detach(entry.split()[1])


def _detach_loop(entry: str) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        fd = os.open(f"/dev/{entry.split()[0]}", os.O_RDONLY)
        try:
            fcntl.ioctl(fd, 0x4C01)  # LOOP_CLR_FD
        finally:
            os.close(fd)


def _del_netns(name: str) -> None:
    _unmount(f"/run/netns/{name}")
    with contextlib.suppress(OSError):
        os.unlink(f"/run/netns/{name}")


# name -> (probe, remover). Removers run in this order, processes first.
PROBES: dict[str, tuple[Callable[[], set[str]], Callable[[str], None]]] = {
    "processes": (processes, _kill),
    "mounts": (mounts, _unmount),
    "cgroups": (cgroups, _rmdir),
    "leases": (leases, _release),
    "links": (links, _del_link),
    "nftables": (nftables, _del_table),
    "netns": (netns, _del_netns),
    "loop devices": (loop_devices, _detach_loop),
    "OCI runtime states": (oci_states, _rmtree),
}


def snapshot() -> dict[str, set[str]]:
    """Every probe's current answer."""
    return {name: probe() for name, (probe, _) in PROBES.items()}


def new_since(before: dict[str, set[str]]) -> dict[str, set[str]]:
    """What exists now that did not before, per probe (empty kinds left out)."""
    now = snapshot()
    return {name: now[name] - before.get(name, set()) for name in now if now[name] - before.get(name, set())}


def remove(leaks: dict[str, set[str]]) -> None:
    """Best-effort removal of leaked resources, deepest mounts first."""
    for name, items in leaks.items():
        remover = PROBES[name][1]
        for item in sorted(items, key=len, reverse=True):
            remover(item)
