"""Chapter 05: the firewall rules of a bridge network, in one nftables table that minidocker owns.

Three kinds of rules make a bridge network useful, all in netfilter's ``nat`` and ``filter`` hooks:

* **masquerade** (source NAT): packets from the containers' private subnet leave the host with
  the host's address, so replies find their way back; conntrack undoes it on the replies;
* **DNAT** for published ports: a packet for ``HOSTIP:HOSTPORT`` gets the container's address and
  port as its destination, before the routing decision, so it is forwarded to the bridge;
* **filter**: only replies and published ports may be forwarded *into* the bridge.

Why nftables and not iptables: all of it lives in one table of our own (``ip minidocker`` by
default), created in one atomic transaction and deleted with one command, with nothing inserted
into chains that other tools (Docker, firewalld, ufw) own. Each container's DNAT rules carry the
container id as their comment, which is how they are found again and removed. The table exists
exactly as long as the bridge: it is created with it and deleted with the last container.

The rules are text in nft's own language, given to the ``nft`` command on stdin (``nft -f -``):
what you read here is what ``nft list table ip minidocker`` prints.

Example::

    >>> print(dnat_rules("minidocker", "c0ffee", "172.29.0.2", [PortMapping(80, 8080)]))
    add rule ip minidocker publish tcp dport 8080 counter dnat to 172.29.0.2:80 comment "c0ffee"
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from minidocker.core.process import EngineError
from minidocker.network.ports import PortMapping

__all__ = ["create_table", "delete_table", "dnat_rules", "nft", "publish", "published", "ruleset",
           "table_exists", "unpublish"]


def nft(script: str, *options: str, check: bool = True) -> str:
    """Run ``nft OPTIONS -f -`` with ``script`` on stdin; return its output.

    nft applies a whole script as one transaction: all of it or nothing. A failure is an
    :class:`EngineError` with nft's own first line (unless ``check`` is false: then "" is returned).
    """
    import subprocess  # lazily: most commands never touch the firewall

    try:
        done = subprocess.run(["nft", *options, "-f", "-"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise EngineError("nft not found: bridge networks need nftables (apt-get install nftables)") from None
    if done.returncode != 0:
        if not check:
            return ""
        reason = next((line for line in done.stderr.splitlines() if line.strip()), "failed")
        raise EngineError(f"nftables: {reason}")
    return done.stdout


# exercise 05.5: Write the network's nftables table
# hint: one "table ip TABLE": nat chains prerouting (dstnat) and output (-100) jumping to an empty
#   "publish" chain for "fib daddr type local"; postrouting (srcnat): masquerade the subnet out of
#   other devices, 127.0.0.0/8 into the bridge, and DNATed subnet traffic back into it; a forward
#   filter; a raw guard.
# --8<-- [start:ruleset]
def ruleset(table: str, bridge: str, subnet: str) -> str:
    """The nftables table of one bridge network: NAT out, DNAT in, and who may be forwarded.

    ``fib daddr type local`` means "addressed to any address of this host", like iptables'
    ``-m addrtype --dst-type LOCAL``: published ports answer on all of them, 127.0.0.1 included.
    Counters show which rules packets went through (NAT chains see only a connection's first one).
    """
    return f"""\
table ip {table} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local counter jump publish comment "from other hosts and namespaces"
    }}
    chain output {{
        type nat hook output priority -100; policy accept;
        fib daddr type local counter jump publish comment "from the host itself"
    }}
    chain publish {{
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {subnet} oifname != "{bridge}" counter masquerade comment "containers to the world"
        oifname "{bridge}" ip saddr 127.0.0.0/8 counter masquerade comment "localhost to published ports"
        oifname "{bridge}" ip saddr {subnet} ct status dnat counter masquerade comment "hairpin"
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        oifname "{bridge}" ct state established,related counter accept
        oifname "{bridge}" ct status dnat counter accept comment "published ports"
        oifname "{bridge}" iifname != "{bridge}" counter drop comment "nothing else comes in"
    }}
    chain guard {{
        type filter hook prerouting priority raw; policy accept;
        iifname "{bridge}" ip daddr 127.0.0.0/8 counter drop comment "keep the host's loopback closed"
    }}
}}
"""
# --8<-- [end:ruleset]


def table_exists(table: str) -> bool:
    """Whether the table ``ip TABLE`` is in the kernel."""
    return bool(nft(f"list table ip {table}\n", check=False))


def create_table(table: str, bridge: str, subnet: str) -> None:
    """Create (or replace, in the same transaction) the network's table with no published ports."""
    nft(f"add table ip {table}\ndelete table ip {table}\n" + ruleset(table, bridge, subnet))


def delete_table(table: str) -> None:
    """Delete the table and every rule in it; nothing happens if it is not there."""
    nft(f"delete table ip {table}\n", check=False)


# exercise 05.7: One DNAT rule per published port
# hint: "add rule ip TABLE publish [ip daddr HOSTIP ]PROTO dport HOSTPORT counter dnat to IP:PORT
#   comment \"ID\"", one line per mapping, joined with newlines.
# --8<-- [start:dnat_rules]
def dnat_rules(table: str, container_id: str, ip: str, mappings: Sequence[PortMapping]) -> str:
    """One DNAT rule per published port, tagged with the container id so it can be found again."""
    lines = []
    for m in mappings:
        match = f"ip daddr {m.host_ip} " if m.host_ip else ""
        lines.append(f"add rule ip {table} publish {match}{m.protocol} dport {m.host_port} "
                     f'counter dnat to {ip}:{m.container_port} comment "{container_id}"')
    return "\n".join(lines)
# --8<-- [end:dnat_rules]


def publish(table: str, container_id: str, ip: str, mappings: Sequence[PortMapping]) -> None:
    """Add the DNAT rules of a container's published ports, all or none."""
    if mappings:
        nft(dnat_rules(table, container_id, ip, mappings) + "\n")


def published(table: str) -> dict[str, list[int]]:
    """The DNAT rules in the table: container id -> the rules' handles."""
    listing = nft(f"list chain ip {table} publish\n", "--json", "--handle", check=False)
    found: dict[str, list[int]] = {}
    for item in json.loads(listing or '{"nftables": []}')["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment"):
            found.setdefault(rule["comment"], []).append(rule["handle"])
    return found


def unpublish(table: str, container_ids: Collection[str]) -> None:
    """Delete the DNAT rules of these containers (those that are there), in one transaction."""
    handles = [h for cid, hs in published(table).items() if cid in container_ids for h in hs]
    if handles:
        nft("".join(f"delete rule ip {table} publish handle {h}\n" for h in handles))
