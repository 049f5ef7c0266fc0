"""Chapter 05: the bridge: a virtual switch on the host that every container's cable plugs into.

A Linux bridge forwards Ethernet frames between its ports, like a hardware switch. Give it an IP
address and it is also the host's own port on that switch: the containers' *gateway*. Frames
between two containers stay on the switch (layer 2); packets for anything else go up to the
host's IP stack, which routes them (if ``net.ipv4.ip_forward`` allows) and NATs them (see
``network/firewall.py``).

Everything here is netlink, the socket API ``ip link``/``ip addr`` use, through pyroute2. The
functions take an open ``pyroute2.IPRoute`` so that the caller decides which network namespace
(and when the 300 ms import of pyroute2 is paid).

Example (as root)::

    >>> from pyroute2 import IPRoute
    >>> with IPRoute() as ipr:
    ...     ensure_bridge(ipr, "mdtest0", "10.200.0.1/24", "minidocker:/tmp/state")
    ...     delete_bridge(ipr, "mdtest0")
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Any

from minidocker.core.process import EngineError

__all__ = ["delete_bridge", "ensure_bridge", "forwarding_off_if_unused", "forwarding_on", "host_mtu",
           "mac_for"]

# ip_forward is one switch for the whole host (network namespace), shared by every minidocker
# state directory and test run: so is the note of who turned it on, and its lock.
FORWARDING_NOTE = "/run/minidocker.ip_forward"


def mac_for(ip: str) -> str:
    """A stable MAC address for an IPv4 address, as Docker makes them: ``02:42`` + the 4 bytes.

    ``02`` marks a locally administered unicast address. Same IP, same MAC: a neighbour's stale
    ARP entry for a reused address still points at the right place.
    """
    return "02:42:" + ":".join(f"{int(byte):02x}" for byte in ip.split("."))


# exercise 05.1: Create the bridge: the containers' switch and gateway
# hint: look the device up; if missing, add a link of kind "bridge" with address mac_for(gateway IP) and set
#   its ifalias; refuse a device whose IFLA_IFALIAS differs; add the gateway address if absent; set it up;
#   write 1 to /proc/sys/net/ipv4/conf/NAME/route_localnet; return the index.
# --8<-- [start:ensure_bridge]
def ensure_bridge(ipr: Any, name: str, gateway: str, alias: str) -> int:
    """Create the bridge ``name`` with the address ``gateway`` (``A.B.C.D/LEN``), up; return its index.

    ``alias`` (``ip link`` shows it) marks the bridge as ours; a device of that name with another
    alias belongs to someone else and is left alone. The MAC address is set, so it does not change
    as ports come and go; ``route_localnet`` lets packets from 127.0.0.1 be routed to the bridge
    (needed to reach published ports as ``localhost``, see ``network/firewall.py``).
    """
    found = ipr.link_lookup(ifname=name)
    if not found:
        ipr.link("add", ifname=name, kind="bridge", address=mac_for(gateway.split("/")[0]))
        found = ipr.link_lookup(ifname=name)
        ipr.link("set", index=found[0], ifalias=alias)
    index = found[0]
    current = ipr.link("get", index=index)[0].get("IFLA_IFALIAS") or ""
    if current != alias:
        raise EngineError(f"network device {name} exists and is not this minidocker's bridge "
                          f"(alias {current!r}): choose another name with MINIDOCKER_BRIDGE")
    address, prefixlen = gateway.split("/")
    if not any(a.get("IFA_ADDRESS") == address for a in ipr.addr("dump", index=index)):
        ipr.addr("add", index=index, address=address, prefixlen=int(prefixlen))
    ipr.link("set", index=index, state="up")
    with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
        f.write("1")
    return index
# --8<-- [end:ensure_bridge]


def delete_bridge(ipr: Any, name: str) -> None:
    """Delete the bridge (its ports are released, its address and routes go with it), if it exists."""
    found = ipr.link_lookup(ifname=name)
    if found:
        ipr.link("del", index=found[0])


def host_mtu(ipr: Any) -> int:
    """The MTU of the device the host's default route uses (1500 if there is no default route).

    A container's packets leave through that device: a larger MTU inside would make them too big.
    """
    for route in ipr.route("dump", family=2, table=254):
        if route.get("dst_len") == 0 and route.get("RTA_OIF"):
            return int(ipr.link("get", index=route.get("RTA_OIF"))[0].get("IFLA_MTU"))
    return 1500


# --8<-- [start:forwarding]
def forwarding_on() -> None:
    """Turn ``net.ipv4.ip_forward`` on, noting that minidocker did it if it was off.

    Without it the host routes nothing between its devices: containers could talk to each other
    and to the host, but not beyond.
    """
    with _forwarding_note() as note, open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() == "0":
            note.truncate(0)
            note.write("0")
            f.seek(0)
            f.write("1")


def forwarding_off_if_unused() -> None:
    """Turn ``ip_forward`` back off if minidocker turned it on and no bridge at all is left.

    Any bridge (ours from another state directory, ``docker0``, ``virbr0``...) may still need it.
    """
    with _forwarding_note() as note:
        if note.read() == "0" and not any(os.path.isdir(f"/sys/class/net/{dev}/bridge")
                                           for dev in os.listdir("/sys/class/net")):
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("0")
            note.truncate(0)
# --8<-- [end:forwarding]


@contextlib.contextmanager
def _forwarding_note() -> Iterator[Any]:
    """The note file, opened and locked (``flock``) for the duration of a ``with`` block."""
    with open(FORWARDING_NOTE, "a+") as note:
        fcntl.flock(note, fcntl.LOCK_EX)
        note.seek(0)
        yield note
