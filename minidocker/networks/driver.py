"""Chapter 12: the bridge driver: one Linux bridge per network, one nftables table for them all.

Chapter 05 made one bridge for one daemon. A user-defined network is the same thing again, once
per network: a bridge ``br-<id12>`` with the network's gateway address, veth pairs into the
containers, addresses from chapter 05's IPAM (one per network). What is new is between networks:

* **isolation**: a packet may leave one user bridge for another only as a reply or to a published
  port (Docker's ``DOCKER-ISOLATION`` chains): containers on different networks cannot talk;
* **internal** networks: no masquerade, nothing forwarded out of the bridge, no default route
  inside, and nothing of the host's but the gateway address answers them;
* published ports, on every bridge: DNAT in a ``publish`` chain, as in chapter 05.

All of it lives in one table per daemon, ``ip <chapter 05's table>_nets``, rebuilt in one nft
transaction from the store whenever a network comes or goes (:func:`apply`), with the published
ports of every live lease. Chapter 05's bridge, veth, IPAM and firewall functions do the work.

Example (as root)::

    store = Store()
    endpoint = attach(store, store.find("front"), cid, pid, "eth0", default_route=True)
    detach(store, store.find("front"), cid)
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from typing import Any

from minidocker.core import errors
from minidocker.core.paths import state_dir
from minidocker.core.process import EngineError
from minidocker.network import bridge as _bridge
from minidocker.network import firewall, veth
from minidocker.network.ipam import Ipam, Lease, process_identity
from minidocker.network.ports import PortMapping
from minidocker.network.stage import NetworkConfig
from minidocker.networks.store import Record, Store

__all__ = ["apply", "attach", "detach", "ensure", "reconcile", "remove", "ruleset", "table"]


def table() -> str:
    """This daemon's table: chapter 05's name (``--nft-table``) + ``_nets``."""
    return f"{NetworkConfig.from_env().table}_nets"


def alias() -> str:
    return f"minidocker:{state_dir()}"


# --8<-- [start:ruleset]
def ruleset(name: str, records: Sequence[Record]) -> str:
    """The table of every user-defined network: NAT out (not internal ones), isolation, guards."""
    post, forward, inbound, guard = [], [], [], []
    for r in records:
        b, n = r.bridge, r.name
        if not r.internal:
            post.append(f'ip saddr {r.subnet} oifname != "{b}" counter masquerade comment "{n}: out"')
        post.append(f'oifname "{b}" ip saddr 127.0.0.0/8 counter masquerade comment "{n}: localhost"')
        post.append(f'oifname "{b}" ip saddr {r.subnet} ct status dnat counter masquerade '
                    f'comment "{n}: hairpin"')
        if r.internal:
            forward.append(f'iifname "{b}" oifname != "{b}" counter drop comment "{n}: internal, no way out"')
            forward.append(f'oifname "{b}" iifname != "{b}" counter drop comment "{n}: internal, no way in"')
            inbound.append(f'iifname "{b}" ip daddr != {r.gateway} counter drop '
                           f'comment "{n}: only its gateway"')
        else:
            forward.append(f'oifname "{b}" ct state established,related counter accept')
            forward.append(f'oifname "{b}" ct status dnat counter accept comment "{r.name}: published ports"')
            forward.append(f'oifname "{b}" iifname != "{b}" counter drop comment "{r.name}: isolation"')
        guard.append(f'iifname "{b}" ip daddr 127.0.0.0/8 counter drop comment "{r.name}: host loopback"')

    def chain(head: str, rules: list[str]) -> str:
        return "        " + head + "\n" + "".join(f"        {rule}\n" for rule in rules)

    return (f"table ip {name} {{\n"
            "    chain prerouting {\n" + chain("type nat hook prerouting priority dstnat; policy accept;",
                                               ["fib daddr type local counter jump publish"]) + "    }\n"
            "    chain output {\n" + chain("type nat hook output priority -100; policy accept;",
                                           ["fib daddr type local counter jump publish"]) + "    }\n"
            "    chain publish {\n    }\n"
            "    chain postrouting {\n" + chain("type nat hook postrouting priority srcnat; policy accept;",
                                                post) + "    }\n"
            "    chain forward {\n" + chain("type filter hook forward priority filter; policy accept;",
                                            forward) + "    }\n"
            "    chain input {\n" + chain("type filter hook input priority filter; policy accept;",
                                          inbound) + "    }\n"
            "    chain guard {\n" + chain("type filter hook prerouting priority raw; policy accept;",
                                          guard) + "    }\n"
            "}\n")
# --8<-- [end:ruleset]


def apply(store: Store) -> None:
    """Rebuild the table from the store, with every live lease's published ports, in one transaction.

    No network left: the table goes. Call it under ``store.locked()``.
    """
    records = store.all()
    name = table()
    if not records:
        firewall.delete_table(name)
        return
    script = f"add table ip {name}\ndelete table ip {name}\n" + ruleset(name, records)
    for r in records:
        for lease in store.ipam(r).leases():
            if lease.ports:
                script += firewall.dnat_rules(name, lease.container_id, lease.ip,
                                              [PortMapping(**p) for p in lease.ports]) + "\n"
    firewall.nft(script)


def ensure(ipr: Any, store: Store, record: Record) -> int:
    """The network's bridge, up, with its gateway address; forwarding on. Returns its index."""
    index = _bridge.ensure_bridge(ipr, record.bridge, f"{record.gateway}/{record.prefixlen}", alias())
    if not record.internal:
        _bridge.forwarding_on()
    return index


def remove(ipr: Any, record: Record) -> None:
    """Delete the network's bridge (the caller removes the record and rebuilds the table)."""
    path = f"/sys/class/net/{record.bridge}/ifalias"
    with contextlib.suppress(OSError):
        with open(path) as f:
            if f.read().strip() != alias():
                return  # not ours
        _bridge.delete_bridge(ipr, record.bridge)
    _bridge.forwarding_off_if_unused()


def allocate(ipam: Ipam, record: Record, container_id: str, pid: int, wanted: str = "") -> Lease:
    """Lease ``wanted`` (``--ip``) or the lowest free address (of ``--ip-range`` if set)."""
    leases = ipam.leases()
    if any(lease.container_id == container_id for lease in leases):
        raise errors.Conflict(f"endpoint with name {container_id[:12]} already exists in network "
                              f"{record.name}")
    used = {lease.ip for lease in leases} | {record.gateway}
    network = record.network
    if wanted:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise errors.InvalidArgument(f"invalid IPv4 address: {wanted}") from None
        if address not in network or address in (network.network_address, network.broadcast_address):
            raise errors.InvalidArgument(f"invalid address {wanted}: it does not belong to any of this "
                                         f"network's subnets ({record.subnet})")
        if wanted in used:
            raise errors.Conflict(f"Address already in use: {wanted} on network {record.name}")
        choices = [address]
    else:
        pool = ipaddress.IPv4Network(record.ip_range) if record.ip_range else network
        choices = [a for a in pool.hosts() if a in network]
    for address in choices:
        if str(address) not in used:
            lease = Lease(container_id, str(address), process_identity(pid))
            ipam._save([*leases, lease])
            return lease
    raise errors.Unavailable(f"no available IPv4 addresses on network {record.name}")


# --8<-- [start:attach]
def attach(store: Store, record: Record, container_id: str, pid: int, ifname: str, *,
           default_route: bool, ip: str = "", mac: str = "",
           published: Sequence[PortMapping] = ()) -> Lease:
    """Plug the container whose PID 1 is ``pid`` into ``record``'s bridge, as ``ifname`` inside.

    The bridge and the table are made if missing (a daemon restart after a reboot); the address
    is leased under the network's lock, the published ports' DNAT rules added under the store's,
    then the veth is plugged. Any failure undoes all of it.
    """
    from pyroute2 import IPRoute

    ipam = store.ipam(record)
    try:
        with IPRoute() as ipr:
            with store.locked():
                index = ensure(ipr, store, record)
                if not firewall.table_exists(table()):
                    apply(store)
            with ipam.locked():
                _reconcile(ipr, ipam)
                lease = allocate(ipam, record, container_id, pid, ip)
                lease.veth = f"veth{secrets.token_hex(4)[:7]}"
                lease.mtu = _bridge.host_mtu(ipr)
                lease.ports = [m._asdict() for m in published]
                ipam.update(lease)
            if published:
                with store.locked():
                    firewall.publish(table(), container_id, lease.ip, published)
            veth.plug(ipr, pid, index, lease.veth, f"{lease.ip}/{record.prefixlen}",
                      record.gateway if default_route and not record.internal else None, lease.mtu,
                      f"minidocker:{record.bridge}:{container_id}", ifname=ifname, mac=mac or None)
    except BaseException as e:
        detach(store, record, container_id)
        if isinstance(e, EngineError):
            raise
        if isinstance(e, Exception):
            raise errors.Failed(f"connecting the container to network {record.name}: {e}") from e
        raise
    return lease
# --8<-- [end:attach]


def detach(store: Store, record: Record, container_id: str) -> Lease | None:
    """Undo :func:`attach`: the address, the DNAT rules, the veth. Safe to repeat."""
    ipam = store.ipam(record)
    if not (store.root / record.id).exists():
        return None
    with ipam.locked():
        lease = ipam.release(container_id)
    if lease is None:
        return None
    from pyroute2 import IPRoute

    if lease.ports:
        with store.locked():
            firewall.unpublish(table(), {container_id})
    if lease.veth:
        with IPRoute() as ipr:
            veth.unplug(ipr, lease.veth)
    return lease


def _reconcile(ipr: Any, ipam: Ipam) -> list[Lease]:
    stale = ipam.reconcile()
    for lease in stale:
        if lease.veth:
            veth.unplug(ipr, lease.veth)
    return stale


def reconcile(store: Store) -> list[str]:
    """At daemon start: each network's bridge (re)made, dead containers' leases released, the table
    rebuilt, live containers' veths put back on their (new) bridge. Returns the released ids."""
    from pyroute2 import IPRoute

    released = []
    with IPRoute() as ipr, store.locked():
        for record in store.all():
            index = ensure(ipr, store, record)
            ipam = store.ipam(record)
            with ipam.locked():
                released += [lease.container_id for lease in _reconcile(ipr, ipam)]
                for lease in ipam.leases():
                    for found in ipr.link_lookup(ifname=lease.veth) if lease.veth else []:
                        ipr.link("set", index=found, master=index, state="up")
        apply(store)
    return released


def gateway_ok(subnet: ipaddress.IPv4Network, gateway: str) -> None:
    """InvalidArgument unless ``gateway`` is a host address of ``subnet``."""
    try:
        address = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise errors.InvalidArgument(f"invalid gateway address {gateway!r}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise errors.InvalidArgument(f"Invalid gateway {gateway}: it is not in subnet {subnet}")


def in_netns_of(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/ns/net")
