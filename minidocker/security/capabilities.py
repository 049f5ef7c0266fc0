"""Chapter 06: capabilities: root's power cut into 41 pieces, and the 14 that a container keeps.

The kernel does not check "is this process root?" but "does it have the capability for this?":
``CAP_SYS_ADMIN`` to mount, ``CAP_SYS_BOOT`` to reboot, ``CAP_SYS_MODULE`` to load a kernel module,
``CAP_NET_ADMIN`` to configure the network. Root simply starts with all of them. A container's
root keeps only the few that a normal program needs to act as root *inside its own files*
(``CHOWN``, ``SETUID``, ``KILL``, ...): Docker's default set, :data:`DOCKER_DEFAULT`.

Each process has five sets (capabilities(7)):

* **bounding**: the ceiling; nothing, not even a setuid-root program, gets a capability outside it;
* **permitted**: what the process may switch on; **effective**: what is switched on now;
* **inheritable** and **ambient**: what may pass through ``execve`` to a program that is not
  setuid and has no file capabilities (Docker leaves both empty).

Example (in the container, as root, last thing before exec)::

    >>> caps = tweak(add=["NET_ADMIN"], drop=["MKNOD"])     # docker run --cap-add/--cap-drop
    >>> apply(for_user(caps, uid=0))
    >>> hex(mask(caps))                                      # what /proc/self/status shows
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Collection, Iterable

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError

__all__ = ["CAPABILITIES", "DOCKER_DEFAULT", "CapabilitySets", "apply", "available", "for_user", "mask",
           "names", "normalize", "tweak"]

# Index = the capability's number, from <linux/capability.h>.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK",
    "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN",
    "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
    "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)

# What Docker (and runc's default spec) leave a container's root: act as root over its own files
# and processes, bind low ports, use raw sockets (ping). Nothing that reaches the host.
DOCKER_DEFAULT = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})


class CapabilitySets(namedtuple("CapabilitySets", "bounding permitted effective inheritable ambient",
                                defaults=(frozenset(), frozenset()))):
    """The five capability sets of a process, as sets of names without the ``CAP_`` prefix."""

    __slots__ = ()
    bounding: frozenset[str]
    permitted: frozenset[str]
    effective: frozenset[str]
    inheritable: frozenset[str]  # empty by default, as ambient
    ambient: frozenset[str]


def normalize(name: str) -> str:
    """``"cap_net_admin"``, ``"CAP_NET_ADMIN"`` or ``"net_admin"`` -> ``"NET_ADMIN"``; ``"ALL"`` stays."""
    upper = name.strip().upper()
    short = upper[4:] if upper.startswith("CAP_") else upper
    if short != "ALL" and short not in CAPABILITIES:
        raise EngineError(f"unknown capability {name!r}: see capabilities(7) for the names "
                          "(e.g. NET_ADMIN, SYS_PTRACE), or ALL")
    return short


def mask(caps: Iterable[str]) -> int:
    """Names -> the bitmask the kernel uses (and ``/proc/PID/status`` prints in hex)."""
    return sum(1 << CAPABILITIES.index(c) for c in set(caps))


def names(bits: int) -> frozenset[str]:
    """A bitmask -> names (numbers this table does not know yet come out as ``"CAP_41"``...)."""
    return frozenset(CAPABILITIES[n] if n < len(CAPABILITIES) else f"CAP_{n}"
                     for n in range(bits.bit_length()) if bits >> n & 1)


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def available() -> frozenset[str]:
    """Every capability this kernel has *and* we still hold in our bounding set: what "ALL" can mean.

    A privileged container cannot get more than the engine has: on a host that runs us without,
    say, ``CAP_SYS_RESOURCE``, ``--privileged`` gets everything but that.
    """
    last = min(_last_cap(), len(CAPABILITIES) - 1)
    return frozenset(CAPABILITIES[n] for n in range(last + 1)
                     if _syscalls.prctl(_syscalls.PR_CAPBSET_READ, n) == 1)


# exercise 06.1: Docker's --cap-add / --cap-drop / --privileged rules
# hint: privileged: available(); nothing to change: base; else normalize() every name; ALL in the
#   adds: available() minus the drops; ALL in the drops: just the adds; otherwise (base - drops) | adds.
# --8<-- [start:tweak]
def tweak(add: Collection[str] = (), drop: Collection[str] = (), privileged: bool = False,
          base: frozenset[str] = DOCKER_DEFAULT) -> frozenset[str]:
    """The container's capabilities from ``--cap-add``, ``--cap-drop`` and ``--privileged``, as Docker.

    ``ALL`` in ``add`` means everything (minus the drops); ``ALL`` in ``drop`` means only the adds.
    Otherwise the drops are taken from the default set, then the adds are added.
    """
    if privileged:
        return available()
    adds = {normalize(c) for c in add}
    drops = {normalize(c) for c in drop}
    if "ALL" in adds:
        return available() - drops
    if "ALL" in drops:
        return frozenset(adds)
    return frozenset((base - drops) | adds)
# --8<-- [end:tweak]


def for_user(caps: frozenset[str], uid: int) -> CapabilitySets:
    """The five sets Docker gives a process running as ``uid`` with capabilities ``caps``.

    Root gets ``caps`` bounding, permitted and effective. Any other user gets them as its bounding
    set only, as execve(2) would give it nothing: a setuid-root program may still reach them.
    """
    if uid == 0:
        return CapabilitySets(bounding=caps, permitted=caps, effective=caps)
    return CapabilitySets(bounding=caps, permitted=frozenset(), effective=frozenset())


# exercise 06.2: Drop capabilities, bounding set first
# hint: for every number up to _last_cap() whose name is not in sets.bounding, PR_CAPBSET_DROP it
#   (only while PR_CAPBSET_READ says it is there); then capset(effective, permitted, inheritable)
#   as masks; then clear the ambient set and raise each ambient capability.
# --8<-- [start:apply]
def apply(sets: CapabilitySets) -> None:
    """Give the calling process exactly ``sets``. Irreversible: a capability dropped is gone for good.

    The bounding set goes first, while we still hold ``CAP_SETPCAP``, which dropping needs; then
    capset(2) sets permitted, effective and inheritable at once; then the ambient set, whose
    members must already be permitted and inheritable.
    """
    for number in range(_last_cap() + 1):
        name = CAPABILITIES[number] if number < len(CAPABILITIES) else f"CAP_{number}"
        if name not in sets.bounding and _syscalls.prctl(_syscalls.PR_CAPBSET_READ, number) == 1:
            _syscalls.prctl(_syscalls.PR_CAPBSET_DROP, number)
    _syscalls.capset(mask(sets.effective), mask(sets.permitted), mask(sets.inheritable))
    _syscalls.prctl(_syscalls.PR_CAP_AMBIENT, _syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in sets.ambient:
        _syscalls.prctl(_syscalls.PR_CAP_AMBIENT, _syscalls.PR_CAP_AMBIENT_RAISE, CAPABILITIES.index(name))
# --8<-- [end:apply]
