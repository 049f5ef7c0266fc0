"""Chapter 10: the network endpoints: chapter 05's three built-in networks, read-only.

Chapter 05 gives a container one of three networks: ``bridge`` (a veth pair into the bridge, an
address from the IPAM), ``host`` (the host's own stack) or ``none`` (a loopback only). Docker
shows the same three as *networks* you can list and inspect (``docker network ls``,
``docker network inspect bridge``); here they are built from what chapter 05 records: the bridge's
subnet and gateway, and the live endpoints of its containers (address, MAC) from the IPAM's leases.

User-defined networks (``docker network create``) are not implemented: creating one answers
``501 Not Implemented`` with a message the clients print as is (``Error response from daemon:
...``); removing a built-in network is ``403 Forbidden``, as in Docker.

Example::

    $ curl --unix-socket /run/minidocker.sock http://d/networks/bridge
    {"Name": "bridge", "Id": "9f6c...", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.29.0.0/16",
     "Gateway": "172.29.0.1"}], ...}, "Containers": {"4bf2...": {"Name": "web", "IPv4Address": ...}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.atomic import rfc3339
from minidocker.core.paths import state_dir
from minidocker.core.process import EngineError
from minidocker.daemon.routes.containers import sup
from minidocker.network import stage as network

__all__ = ["BUILTIN", "NOT_SUPPORTED", "routes"]

routes = web.RouteTableDef()

# name -> driver, as Docker names them (the driver of "none" is "null")
BUILTIN = {"bridge": "bridge", "host": "host", "none": "null"}
NOT_SUPPORTED = "user-defined networks are not supported: use bridge, host or none"
FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _id(request: web.Request, name: str, bridge: str = "") -> str:
    """A stable 64-hex id for a built-in network: it changes only with the daemon or the bridge."""
    seed = f"minidocker-network:{request.app['daemon_id']}:{name}:{bridge}"
    return hashlib.sha256(seed.encode()).hexdigest()


def _mode(container: Any) -> str:
    """The built-in network a container is on: ``default`` (and ``bridge``) is the bridge."""
    mode = container.config["HostConfig"].get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def networks(request: web.Request, detailed: bool) -> list[dict[str, Any]]:
    """The three networks in Docker's shape; ``detailed``: with their containers (inspect)."""
    config = network.NetworkConfig.from_env()
    net = network.Network(config)
    created = rfc3339(0)
    with contextlib.suppress(OSError):  # when this daemon's state was made
        created = rfc3339(os.stat(state_dir() / "daemon-id").st_mtime)
    running = [c for c in sup(request).containers.values() if c.running]
    found = []
    for name, driver in BUILTIN.items():
        nid = _id(request, name, config.bridge if name == "bridge" else "")
        entry = {
            "Name": name, "Id": nid, "Created": created, "Scope": "local", "Driver": driver,
            "EnableIPv4": name == "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": [
                {"Subnet": str(net.ipam.network), "Gateway": net.ipam.gateway}] if name == "bridge" else []},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {}}
        if name == "bridge":
            entry["Options"] = {"com.docker.network.bridge.default_bridge": "true",
                                "com.docker.network.bridge.enable_ip_masquerade": "true",
                                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                                "com.docker.network.bridge.name": config.bridge}
        if detailed:
            entry["Containers"] = _containers(nid, name, running, net)
        found.append(entry)
    return found


def _containers(nid: str, name: str, running: list[Any], net: network.Network) -> dict[str, Any]:
    """``Containers`` of one network: for the bridge, each container's live endpoint (its lease)."""
    endpoints: dict[str, network.Endpoint] = {}
    if name == "bridge":
        with contextlib.suppress(EngineError, OSError, ValueError):
            endpoints = {e.container_id: e for e in net.endpoints()}
    found = {}
    for c in running:
        if _mode(c) != name or (name == "bridge" and c.id not in endpoints):
            continue  # on another network; or not attached yet (starting) or any more (stopping)
        e = endpoints.get(c.id)
        found[c.id] = {"Name": c.config["Name"].lstrip("/"),
                       "EndpointID": hashlib.sha256(f"{nid}:{c.id}".encode()).hexdigest(),
                       "MacAddress": e.mac if e else "", "IPv4Address": f"{e.ip}/{e.prefixlen}" if e else "",
                       "IPv6Address": ""}
    return found


def _filters(request: web.Request) -> dict[str, list[str]]:
    """``?filters=`` as Docker accepts it: ``{"name": ["x"]}`` or the older ``{"name": {"x": true}}``."""
    try:
        raw = json.loads(request.query.get("filters") or "{}")
        filters = {k: list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]
                   for k, v in raw.items()}
    except (ValueError, AttributeError, TypeError):
        raise errors.InvalidArgument("invalid filters") from None
    for key, values in filters.items():
        if key not in FILTERS:
            raise errors.InvalidArgument(f"invalid filter '{key}'")
        if key == "type" and not set(values) <= {"builtin", "custom"}:
            raise errors.InvalidArgument(f"invalid filter: 'type'='{values[0]}'")
    return filters


def _matches(entry: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's rules: name and id match a part, driver and scope all of it; every network is built-in."""
    tests = {"name": lambda v: v in entry["Name"], "id": lambda v: v in entry["Id"],
             "driver": lambda v: v == entry["Driver"], "scope": lambda v: v == entry["Scope"],
             "type": lambda v: v == "builtin", "label": lambda v: False,
             "dangling": lambda v: v.lower() in ("0", "false")}
    return all(any(tests[key](v) for v in values) for key, values in filters.items() if values)


def find(request: web.Request, ref: str, detailed: bool = True) -> dict[str, Any]:
    """A network by full id, name, or unique id prefix (Docker's order); NotFound if none."""
    found = networks(request, detailed)
    for exact in (lambda n: n["Id"] == ref, lambda n: n["Name"] == ref):
        if match := [n for n in found if exact(n)]:
            return match[0]
    prefixed = [n for n in found if ref and n["Id"].startswith(ref)]
    if len(prefixed) > 1:
        raise errors.InvalidArgument(f"network {ref} is ambiguous ({len(prefixed)} matches found based on "
                                     "ID prefix)")
    if not prefixed:
        raise errors.NotFound(f"network {ref} not found")
    return prefixed[0]


@routes.get("/networks")
async def network_list(request: web.Request) -> web.Response:
    """``docker network ls``: since API 1.28 the list leaves ``Containers`` empty (inspect has them)."""
    filters = _filters(request)
    return web.json_response([n for n in networks(request, False) if _matches(n, filters)])


@routes.get("/networks/{id}")
async def network_inspect(request: web.Request) -> web.Response:
    return web.json_response(find(request, request.match_info["id"]))


@routes.post("/networks/create")
async def network_create(request: web.Request) -> web.Response:
    """501: this daemon has only the built-in networks (``docker network create`` prints why)."""
    raise errors.Unsupported(NOT_SUPPORTED)


@routes.delete("/networks/{id}")
async def network_remove(request: web.Request) -> web.Response:
    name = find(request, request.match_info["id"], detailed=False)["Name"]
    raise errors.Forbidden(f"{name} is a pre-defined network and cannot be removed")


@routes.post("/networks/{id}/connect")
@routes.post("/networks/{id}/disconnect")
async def network_connect(request: web.Request) -> web.Response:
    find(request, request.match_info["id"], detailed=False)
    raise errors.Unsupported("connecting or disconnecting a container is not supported: a container stays on "
                             "the network it was created with (docker run --network bridge|host|none)")


@routes.post("/networks/prune")
async def network_prune(request: web.Request) -> web.Response:
    """Built-in networks are never pruned: nothing to delete."""
    return web.json_response({"NetworksDeleted": []})
