"""Chapters 11 and 12: ``minidocker network ...``: the daemon's networks, as docker shows and makes them.

Chapter 11 lists and inspects the built-in ``bridge``, ``host`` and ``none``. Chapter 12 makes
networks objects: ``create`` (a bridge of its own, a subnet from the pools or ``--subnet``),
``connect`` and ``disconnect`` (a running container gains or loses an interface), ``rm`` and
``prune``. Each command is the API call the docker CLI makes, with the same body and the same output:
``create`` prints the new id, ``connect`` and ``disconnect`` print nothing, a refusal is one line
``Error response from daemon: ...``.

What the docker CLI checks before it sends anything, we check too, in its words: every ``--gateway``
and ``--ip-range`` must fall in a ``--subnet`` (``no matching subnet for gateway 10.9.0.1``).

Example::

    $ minidocker network create --subnet 10.89.0.0/24 backend
    5f2c0e7d1a9b...
    $ minidocker network connect --alias db backend web
    $ minidocker network ls -f name=backend
    NETWORK ID     NAME      DRIVER   SCOPE
    5f2c0e7d1a9b   backend   bridge   local
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from minidocker.client.client import APIError, Client
from minidocker.core.console import confirm, parser, render_template, table

__all__ = ["ACTIONS", "COMMANDS", "ipam_config", "network"]

USAGE = "ls|inspect|create|rm|prune|connect|disconnect [OPTIONS] [NETWORK...]"


def _filters(items: list[str]) -> dict[str, list[str]]:
    """``-f name=x -f label=a=b`` -> ``{"name": ["x"], "label": ["a=b"]}`` (the API's filters)."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    return filters


def ls(client: Client, argv: list[str]) -> int:
    p = parser("network ls", "[-q] [--no-trunc] [-f FILTER] [--format TEMPLATE]")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    opts = p.parse_args(argv)
    filters = _filters(opts.filter)
    found = client.json("GET", "/networks", {"filters": json.dumps(filters) if filters else None})
    found.sort(key=lambda n: n["Name"])  # as docker sorts them
    rows = [[n["Id"] if opts.no_trunc else n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in found]
    if opts.quiet:
        print("".join(f"{row[0]}\n" for row in rows), end="")
    elif opts.format:
        for n, row in zip(found, rows, strict=True):
            print(render_template(opts.format, {**n, "ID": row[0]}))
    else:
        print(table([["NETWORK ID", "NAME", "DRIVER", "SCOPE"], *rows]))
    return 0


def inspect(client: Client, argv: list[str]) -> int:
    p = parser("network inspect", "[-f TEMPLATE] NETWORK...")
    p.add_argument("-f", "--format")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("networks", nargs="+")
    opts = p.parse_args(argv)
    found, status = [], 0
    for name in opts.networks:
        try:
            found.append(client.json("GET", f"/networks/{name}", {"verbose": True} if opts.verbose else None))
        except APIError as e:
            if e.status != 404:
                raise
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    if opts.format:
        for item in found:
            print(render_template(opts.format, item))
    else:  # "[]" if none was found, as docker prints
        print(json.dumps(found, indent=4))
    return status


def _key_values(items: list[str]) -> dict[str, str]:
    """``--label a=b -o x=y`` -> ``{"a": "b"}``; a bare ``a`` is ``{"a": ""}``, as docker reads it."""
    return dict(item.partition("=")[::2] for item in items)


# --8<-- [start:ipam_config]
def ipam_config(subnets: list[str], ranges: list[str], gateways: list[str]) -> list[dict[str, str]]:
    """``--subnet``, ``--ip-range`` and ``--gateway`` -> IPAM.Config, paired as the docker CLI pairs them.

    Each range and gateway goes to the subnet that holds it; what fits no subnet, or a second one
    for the same subnet, or two subnets that overlap, is refused here with docker's words
    (``SystemExit``: a usage error, before any request).
    """
    import ipaddress  # here: only create needs it

    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise SystemExit("every ip-range or gateway must have a corresponding subnet")
    try:
        nets = [ipaddress.ip_network(s, strict=False) for s in subnets]
        for i, a in enumerate(nets):
            if any(a.version == b.version and a.overlaps(b) for b in nets[:i]):
                raise SystemExit("multiple overlapping subnet configuration is not supported")
        config = [{"Subnet": s} for s in subnets]
        for kind, key, items in (("range", "IPRange", ranges), ("gateway", "Gateway", gateways)):
            for item in items:
                value = (ipaddress.ip_network(item, strict=False) if kind == "range"
                         else ipaddress.ip_address(item))
                holders = [i for i, n in enumerate(nets) if n.version == value.version and (
                    value.subnet_of(n) if kind == "range" else value in n)]  # type: ignore[union-attr,arg-type]
                if not holders:
                    raise SystemExit(f"no matching subnet for {kind} {item}")
                entry = config[holders[0]]
                if key in entry:
                    raise SystemExit(f"cannot configure multiple {kind}s ({item}, {entry[key]}) on the same "
                                     f"subnet ({entry['Subnet']})")
                entry[key] = item
    except ValueError as e:  # not an address or a network at all
        raise SystemExit(f"invalid argument: {e}") from None
    return config
# --8<-- [end:ipam_config]


def create(client: Client, argv: list[str]) -> int:
    p = parser("network create", "[-d DRIVER] [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal] "
                                 "[--label K=V] [-o K=V] [--attachable] NETWORK")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--ip-range", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("--attachable", action="store_true")
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--ipam-driver", default="default")
    p.add_argument("name")
    opts = p.parse_args(argv)
    body = {"Name": opts.name, "Driver": opts.driver, "Internal": opts.internal,
            "Attachable": opts.attachable, "EnableIPv6": opts.ipv6, "Options": _key_values(opts.opt),
            "Labels": _key_values(opts.label),
            "IPAM": {"Driver": opts.ipam_driver, "Options": {},
                     "Config": ipam_config(opts.subnet, opts.ip_range, opts.gateway)}}
    answer = client.json("POST", "/networks/create", None, body)
    if answer.get("Warning"):
        print(f"WARNING: {answer['Warning']}", file=sys.stderr)
    print(answer["Id"])
    return 0


def rm(client: Client, argv: list[str]) -> int:
    p = parser("network rm", "[-f] NETWORK...")
    p.add_argument("-f", "--force", action="store_true", help="do not error if the network does not exist")
    p.add_argument("networks", nargs="+")
    opts = p.parse_args(argv)
    status = 0
    for name in opts.networks:
        try:
            client.request("DELETE", f"/networks/{name}").read()
            print(name)
        except APIError as e:
            if opts.force and e.status == 404:
                continue
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    return status


def prune(client: Client, argv: list[str]) -> int:
    p = parser("network prune", "[-f] [--filter FILTER]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    opts = p.parse_args(argv)
    if not opts.force and not confirm(
            "WARNING! This will remove all custom networks not used by at least one container."):
        return 0
    filters = _filters(opts.filter)
    deleted = client.json("POST", "/networks/prune", {"filters": json.dumps(filters) if filters else None})
    if deleted.get("NetworksDeleted"):
        print("Deleted Networks:\n" + "\n".join(deleted["NetworksDeleted"]))
    return 0


def endpoint_config(ip: str = "", aliases: list[str] | None = None, mac: str = "", ip6: str = "",
                    driver_opts: dict[str, str] | None = None) -> dict:
    """An EndpointSettings body (``network connect``, ``run --network``): only what was given."""
    config: dict = {}
    if ip or ip6:
        config["IPAMConfig"] = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    if aliases:
        config["Aliases"] = list(aliases)
    if mac:
        config["MacAddress"] = mac
    if driver_opts:
        config["DriverOpts"] = driver_opts
    return config


def connect(client: Client, argv: list[str]) -> int:
    p = parser("network connect", "[--ip IP] [--alias ALIAS] NETWORK CONTAINER")
    p.add_argument("--ip", default="")
    p.add_argument("--ip6", default="")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--driver-opt", action="append", default=[])
    p.add_argument("network")
    p.add_argument("container")
    opts = p.parse_args(argv)
    endpoint = endpoint_config(opts.ip, opts.alias, "", opts.ip6, _key_values(opts.driver_opt))
    body = {"Container": opts.container, "EndpointConfig": endpoint}
    client.request("POST", f"/networks/{opts.network}/connect", None, body).read()
    return 0


def disconnect(client: Client, argv: list[str]) -> int:
    p = parser("network disconnect", "[-f] NETWORK CONTAINER")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    opts = p.parse_args(argv)
    body = {"Container": opts.container, "Force": opts.force}
    client.request("POST", f"/networks/{opts.network}/disconnect", None, body).read()
    return 0


ACTIONS: dict[str, Callable[[Client, list[str]], int]] = {
    "ls": ls, "list": ls, "inspect": inspect, "create": create, "rm": rm, "remove": rm, "prune": prune,
    "connect": connect, "disconnect": disconnect,
}


def network(client: Client, argv: list[str]) -> int:
    """``minidocker network ACTION ...`` (``minidocker.client.cli`` has checked that ACTION exists)."""
    if not argv or argv[0] not in ACTIONS:
        print(f"usage: minidocker network {USAGE}", file=sys.stderr)
        return 1
    return ACTIONS[argv[0]](client, argv[1:])


COMMANDS: dict[str, Callable[[Client, list[str]], int]] = {"network": network}
