"""Chapter 12: address pools: which subnet a new network gets when ``--subnet`` is not given.

Docker's default pools: ``172.17.0.0/16`` to ``172.31.0.0/16`` as /16s, then ``192.168.0.0/16`` cut
into /20s. A subnet is taken if it overlaps any other network's (ours, the default bridge's) or
a route of the host (its LAN, a VPN): a container could not reach that part of the world.

Example::

    >>> str(next_subnet([ipaddress.ip_network("172.17.0.0/16")], []))
    '172.18.0.0/16'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from minidocker.core import errors

__all__ = ["DEFAULT_POOLS", "candidates", "host_routes", "next_subnet", "overlapping"]

Net = ipaddress.IPv4Network
DEFAULT_POOLS = (("172.16.0.0/12", 16), ("192.168.0.0/16", 20))


def candidates() -> Iterator[Net]:
    """Every subnet of the default pools, in Docker's order."""
    for base, size in DEFAULT_POOLS:
        for subnet in ipaddress.ip_network(base).subnets(new_prefix=size):
            if str(subnet) != "172.16.0.0/16":  # Docker's pool starts at 172.17
                yield subnet


def host_routes() -> list[Net]:
    """The destinations of the host's IPv4 routes (not the default route), from ``/proc/net/route``."""
    found = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest, mask = (ipaddress.IPv4Address(bytes.fromhex(x)[::-1]) for x in (fields[1], fields[7]))
                if int(mask):
                    found.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    except (OSError, StopIteration, ValueError):
        pass
    return found


def overlapping(subnet: Net, taken: Sequence[Net]) -> Net | None:
    """The first of ``taken`` that overlaps ``subnet``, if any."""
    return next((other for other in taken if subnet.overlaps(other)), None)


def next_subnet(taken: Sequence[Net], routes: Sequence[Net]) -> Net:
    """The first default-pool subnet that overlaps neither a network in ``taken`` nor a host route."""
    for subnet in candidates():
        if not overlapping(subnet, taken) and not overlapping(subnet, routes):
            return subnet
    raise errors.Unavailable("could not find an available, non-overlapping IPv4 address pool among the "
                             "defaults to assign to the network")
