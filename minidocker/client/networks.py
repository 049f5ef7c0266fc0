"""Chapter 11: ``minidocker network ls|inspect|create|rm|prune``: the daemon's networks, as docker shows them.

The daemon has chapter 05's three built-in networks (``bridge``, ``host``, ``none``) and no others:
``create`` and ``rm`` print the daemon's refusal, as ``docker network create`` does against it.

Example::

    $ minidocker network ls
    NETWORK ID     NAME      DRIVER    SCOPE
    3d1f0a5e9b2c   bridge    bridge    local
    8c41e2f07d55   host      host      local
    f0b1c9a4d3e6   none      null      local
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from minidocker.client.client import APIError, Client
from minidocker.core.console import confirm, parser, render_template, table

__all__ = ["ACTIONS", "COMMANDS", "network"]

USAGE = "ls|inspect|create|rm|prune [OPTIONS] [NETWORK...]"


def ls(client: Client, argv: list[str]) -> int:
    p = parser("network ls", "[-q] [--no-trunc] [-f FILTER] [--format TEMPLATE]")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    opts = p.parse_args(argv)
    filters: dict[str, list[str]] = {}
    for item in opts.filter:
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
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
    p.add_argument("networks", nargs="+")
    opts = p.parse_args(argv)
    found, status = [], 0
    for name in opts.networks:
        try:
            found.append(client.json("GET", f"/networks/{name}"))
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


def create(client: Client, argv: list[str]) -> int:
    p = parser("network create", "[-d DRIVER] NETWORK")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("name")
    opts = p.parse_args(argv)
    answer = client.json("POST", "/networks/create", None, {"Name": opts.name, "Driver": opts.driver})
    print(answer["Id"])
    return 0


def rm(client: Client, argv: list[str]) -> int:
    p = parser("network rm", "NETWORK...")
    p.add_argument("networks", nargs="+")
    status = 0
    for name in p.parse_args(argv).networks:
        try:
            client.request("DELETE", f"/networks/{name}").read()
            print(name)
        except APIError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    return status


def prune(client: Client, argv: list[str]) -> int:
    p = parser("network prune", "[-f]")
    p.add_argument("-f", "--force", action="store_true")
    if not p.parse_args(argv).force and not confirm(
            "WARNING! This will remove all custom networks not used by at least one container."):
        return 0
    deleted = client.json("POST", "/networks/prune")["NetworksDeleted"] or []
    if deleted:
        print("Deleted Networks:\n" + "\n".join(deleted))
    return 0


ACTIONS: dict[str, Callable[[Client, list[str]], int]] = {
    "ls": ls, "list": ls, "inspect": inspect, "create": create, "rm": rm, "remove": rm, "prune": prune,
}


def network(client: Client, argv: list[str]) -> int:
    """``minidocker network ACTION ...`` (``minidocker.client.cli`` has checked that ACTION exists)."""
    if not argv or argv[0] not in ACTIONS:
        print(f"usage: minidocker network {USAGE}", file=sys.stderr)
        return 1
    return ACTIONS[argv[0]](client, argv[1:])


COMMANDS: dict[str, Callable[[Client, list[str]], int]] = {"network": network}
