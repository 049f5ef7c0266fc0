"""Chapter 05: a veth pair, the network cable between the host's bridge and a container.

A *veth* pair is two network devices joined back to back: what goes into one comes out of the
other. Create the pair with one end in the container's network namespace (named ``eth0`` there)
and plug the other end into the bridge: the container is on the network. When the container's
last process exits, its network namespace is destroyed, and the kernel deletes the pair with it:
a crashed engine leaves no cable behind.

The container's end must then be configured *from inside* its namespace (an address, up, a
default route): netlink talks to the namespace its socket was created in. :func:`netlink_in`
makes such a socket without a helper process: setns(2) for a network namespace applies to the
calling thread only, so the engine steps in, opens the socket, and steps back out. The socket
stays bound to the container's namespace for its whole life.

Example (as root, with a container whose PID 1 is ``pid`` and a bridge at index ``br``)::

    >>> with IPRoute() as ipr:
    ...     plug(ipr, pid, br, "veth1234567", "172.29.0.2/16", "172.29.0.1", 1500, "minidocker:...")
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from minidocker.core.syscalls import CLONE_NEWNET, setns
from minidocker.network.bridge import mac_for

__all__ = ["netlink_in", "plug", "unplug"]

NETLINK_ROUTE = 0


# exercise 05.2: Open a netlink socket inside a container's network namespace
# hint: open /proc/thread-self/ns/net and /proc/PID/ns/net; setns into the target, create an AF_NETLINK
#   SOCK_DGRAM socket (protocol NETLINK_ROUTE), setns back (in a finally); yield IPRoute(fileno=...)
#   and close it afterwards.
# --8<-- [start:netlink_in]
@contextlib.contextmanager
def netlink_in(pid: int) -> Iterator[Any]:
    """A ``pyroute2.IPRoute`` talking to the network namespace of process ``pid``.

    Sockets belong to the network namespace they are created in, for life; setns(2) with
    CLONE_NEWNET switches only the calling thread. So: step in, create the socket, step out.
    """
    from pyroute2 import IPRoute

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target, CLONE_NEWNET)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        finally:
            setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)
    ipr = IPRoute(fileno=sock.detach())
    try:
        yield ipr
    finally:
        ipr.close()
# --8<-- [end:netlink_in]


# exercise 05.3: Plug a veth pair into the bridge and configure eth0 inside
# hint: link add kind="veth", mtu, and a peer dict: ifname "eth0", net_ns_pid pid, address mac_for(ip),
#   mtu; set the host end's master, ifalias and state up; then, through netlink_in(pid): the
#   address on eth0, eth0 and lo up, and a default route via the gateway.
# --8<-- [start:plug]
def plug(ipr: Any, pid: int, bridge_index: int, veth: str, address: str, gateway: str | None, mtu: int,
         alias: str, ifname: str = "eth0", mac: str | None = None) -> None:
    """Connect the container ``pid`` to the bridge: a veth pair, then ``eth0`` configured inside.

    ``address`` is ``A.B.C.D/LEN``. The container's end is created directly in its namespace
    (``net_ns_pid``), so no ``eth0`` ever exists on the host, and it gets the MAC derived from its
    address. ``lo`` comes up too: a new namespace starts with it down. Chapter 12 plugs more
    cables into one container: ``ifname`` ``eth1``, ... and no ``gateway`` (no default route).
    """
    ip, prefixlen = address.split("/")
    ipr.link("add", ifname=veth, kind="veth", mtu=mtu,
             peer={"ifname": ifname, "net_ns_pid": pid, "address": mac or mac_for(ip), "mtu": mtu})
    index = ipr.link_lookup(ifname=veth)[0]
    ipr.link("set", index=index, master=bridge_index, ifalias=alias, state="up")
    with netlink_in(pid) as inside:
        eth0 = inside.link_lookup(ifname=ifname)[0]
        inside.addr("add", index=eth0, address=ip, prefixlen=int(prefixlen))
        inside.link("set", index=eth0, state="up")
        inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
        if gateway:
            inside.route("add", dst="0.0.0.0/0", gateway=gateway)
# --8<-- [end:plug]


def unplug(ipr: Any, veth: str) -> None:
    """Delete the pair by its host end, if it is still there (the container may have taken it along)."""
    from pyroute2 import NetlinkError

    for index in ipr.link_lookup(ifname=veth):
        with contextlib.suppress(NetlinkError):  # gone meanwhile, with its namespace
            ipr.link("del", index=index)
