"""``minidocker doctor``: what this host can do for containers, and how to fix what is missing.

Containers are made of kernel features, and hosts differ: a kernel without user namespaces, a
cgroup v1 host, no overlayfs, no nftables. Rather than fail halfway through a container start,
the doctor probes each feature the engine uses (by really trying it, in a throwaway child where
that is cheap) and prints one table row each: what, ok or not, what was seen, and the fix.

Run it::

    python -m minidocker.doctor        # exit status 1 if something the engine needs is missing
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

from minidocker.cgroups.stage import cgroup_mode  # chapter 03 owns the probe; re-exported here

__all__ = ["Check", "architecture", "bridge_netfilter", "cgroup_mode", "checks", "main"]


@dataclass
class Check:
    """One probe's answer. ``required`` checks failing make the doctor exit non-zero."""

    name: str
    ok: bool
    seen: str
    fix: str = ""
    required: bool = True


def _try_in_child(action: Callable[[], None]) -> bool:
    """Run ``action`` in a forked child (so it can't change us); True if it did not raise."""
    pid = os.fork()
    if pid == 0:
        try:
            action()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _mount_overlay() -> None:
    """In a child: a private mount namespace, a tmpfs, and an overlay mount on it (all gone with it)."""
    import tempfile

    from minidocker.core import syscalls as sc

    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    scratch = tempfile.gettempdir()
    sc.mount("tmpfs", scratch, "tmpfs")  # hides the real /tmp, in this namespace only
    for name in ("lower", "upper", "work", "merged"):
        os.mkdir(os.path.join(scratch, name))
    sc.mount("overlay", os.path.join(scratch, "merged"), "overlay", 0,
             f"lowerdir={scratch}/lower,upperdir={scratch}/upper,workdir={scratch}/work")


def _forward_drops(nft: str) -> list[str]:
    """Base chains hooked on ``forward`` with a drop policy (Docker's, ufw's): ours cannot overrule them."""
    import subprocess

    listing = subprocess.run([nft, "list", "chains"], capture_output=True, text=True).stdout
    drops, table, chain = [], "", ""
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["table"]:
            table = " ".join(words[1:3])
        elif words[:1] == ["chain"]:
            chain = words[1]
        elif "hook forward" in line and "policy drop" in line:
            drops.append(f"{table} {chain}")
    return drops


def bridge_netfilter(sysctl_dir: str = "/proc/sys/net/bridge") -> Check:
    """br_netfilter: do frames switched by a bridge go through the IP firewall's hooks too?

    The module (loaded by Docker, by Kubernetes' set-up, or by hand) registers the
    ``net.bridge.bridge-nf-call-*`` sysctls; with ``bridge-nf-call-iptables=1`` every IPv4 frame
    between two ports of a bridge passes the ``forward`` hook, iptables' and nftables' chains alike.
    Then a drop policy there (Docker's ``FORWARD``) drops traffic between two containers of one
    bridge too, not only what the host routes. Not loaded, or 0: bridged frames skip the hook.
    """
    path = os.path.join(sysctl_dir, "bridge-nf-call-iptables")
    try:
        with open(path) as f:
            value = f.read().strip()
    except FileNotFoundError:
        return Check("bridge netfilter", True, "br_netfilter not loaded", required=False)
    seen = f"br_netfilter loaded, bridge-nf-call-iptables={value}"
    return Check("bridge netfilter", value == "0", seen,
                 "a forward drop policy (Docker's) drops traffic between containers too: accept it "
                 "(iptables -I DOCKER-USER -i minidocker0 -o minidocker0 -j ACCEPT) or set "
                 "net.bridge.bridge-nf-call-iptables=0 (chapter 05)", required=False)


def _root_propagation() -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                optional = fields[6:fields.index("-")]
                return "shared" if any(o.startswith("shared:") for o in optional) else "private"
    return "unknown"


def architecture(machine: str | None = None) -> Check:
    """The machine, and whether chapter 06 can compile a seccomp filter for it (a syscall table).

    Without one, every ``run`` with the default profile stops with "no syscall table"; containers
    still run with ``--security-opt seccomp=unconfined``, so this warns rather than fails.

    Example::

        >>> architecture("aarch64").seen
        'aarch64 (linux/arm64 images, seccomp table of 325 syscalls)'
    """
    from minidocker.security.syscall_table import numbers

    machine = machine or platform.machine()
    table = numbers(machine)
    image = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    seen = f"{machine} (linux/{image} images, " + (f"seccomp table of {len(table)} syscalls)" if table
                                                  else "no seccomp syscall table)")
    return Check("architecture", bool(table), seen,
                 "containers need --security-opt seccomp=unconfined here (tables: x86_64, aarch64)",
                 required=False)


def checks() -> list[Check]:
    """Probe the host; one :class:`Check` per feature, in the order the chapters need them."""
    from minidocker.core import syscalls as sc

    found: list[Check] = []
    root = os.geteuid() == 0
    found.append(Check("root", root, f"uid {os.geteuid()}", "run as root: containers need CAP_SYS_ADMIN"))
    release = platform.release()
    major, minor = (int(x) for x in release.split(".")[:2])
    found.append(Check("kernel", (major, minor) >= (5, 4), release, "a Linux kernel 5.4 or newer"))
    found.append(Check("python", sys.version_info >= (3, 11), platform.python_version(),
                       "Python 3.11 or newer"))
    found.append(architecture())
    for name, flag in (("mount", sc.CLONE_NEWNS), ("uts", sc.CLONE_NEWUTS), ("ipc", sc.CLONE_NEWIPC),
                       ("pid", sc.CLONE_NEWPID), ("net", sc.CLONE_NEWNET), ("cgroup", sc.CLONE_NEWCGROUP),
                       ("user", sc.CLONE_NEWUSER)):
        ok = root and _try_in_child(lambda flag=flag: sc.unshare(flag))
        found.append(Check(f"{name} namespace", ok, "unshare works" if ok else "unshare failed",
                           "needs root" if not root else
                           f"a kernel built with CONFIG_{name.upper()}_NS" if name != "mount" else "",
                           required=name != "user"))
    mode = cgroup_mode()
    backend = "" if mode == "none" else f" (minidocker uses its v{2 if mode == 'v2' else 1} backend)"
    found.append(Check("cgroups", mode != "none", mode + backend, "mount cgroup2 at /sys/fs/cgroup"))
    overlay = root and _try_in_child(_mount_overlay)  # for real: the module may load on demand
    found.append(Check("overlayfs", overlay, "a test mount works" if overlay else "cannot mount",
                       "needs root" if not root else "a kernel with CONFIG_OVERLAY_FS (modprobe overlay)"))
    found.append(Check("propagation of /", True, _root_propagation(),
                       "none needed: each container makes its mounts private", required=False))
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding = f.read().strip() == "1"
    found.append(Check("ip forwarding", True, "on" if forwarding else "off",
                       "" if forwarding else "turned on by the engine when a bridge network exists",
                       required=False))
    firewall = shutil.which("nft")
    found.append(Check("nft", bool(firewall), firewall or "missing",
                       "apt-get install nftables: the bridge network (chapter 05) needs it", required=False))
    if firewall and root:
        drops = _forward_drops(firewall)
        found.append(Check("forwarding firewall", not drops, ", ".join(drops) or "no drop policy",
                           "containers cannot reach out: accept minidocker0's traffic there (chapter 05)",
                           required=False))
    found.append(bridge_netfilter())
    with open("/proc/self/status") as f:
        seccomp = "Seccomp:" in f.read()
    found.append(Check("seccomp", seccomp, "available" if seccomp else "missing",
                       "a kernel with CONFIG_SECCOMP_FILTER", required=False))
    from minidocker.core.paths import cache_dir

    try:
        cached = (cache_dir() / "busybox-static" / "bin" / "busybox").exists()
    except OSError:  # not root: the cache directory cannot even be made
        cached = False
    found.append(Check("busybox", cached or bool(shutil.which("apt-get")),
                       "downloaded" if cached else "not yet downloaded",
                       "" if cached else "python -m minidocker.rootfs", required=False))
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 if a required check failed."""
    rows = checks()
    width = max(len(c.name) for c in rows)
    seen_width = max(len(c.seen) for c in rows)
    print(f"{'CHECK':<{width}}  {'':4}  {'SEEN':<{seen_width}}  FIX")
    for c in rows:
        status = "ok" if c.ok else ("FAIL" if c.required else "warn")
        print(f"{c.name:<{width}}  {status:4}  {c.seen:<{seen_width}}  {c.fix if not c.ok else ''}".rstrip())
    return 0 if all(c.ok or not c.required for c in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
