"""Chapter 12: the API of user-defined networks, plugged into the daemon (see ``plugin.py``).

``POST /networks/create``, ``DELETE /networks/{id}``, ``POST /networks/prune``,
``POST /networks/{id}/connect|disconnect``, and ``GET /networks[/{id}]`` listing the built-in
networks (chapter 10's ``daemon/routes/networks.py``) with ours. Shapes are Docker's
(NetworkCreateRequest, Network, NetworkConnectRequest, EndpointSettings).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import re
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.atomic import write_json
from minidocker.daemon.routes import networks as builtin
from minidocker.daemon.routes.containers import json_body
from minidocker.network.bridge import mac_for
from minidocker.network.stage import NetworkConfig
from minidocker.networks import driver, handoff, pools
from minidocker.networks.store import NAME, Record, Store

__all__ = ["DNS_NAME", "check_alias", "entry", "routes"]

log = logging.getLogger("minidockerd")
routes = web.RouteTableDef()
DNS_NAME = re.compile(r"^(?!-)[a-zA-Z0-9_-]{1,63}(?<!-)(\.(?!-)[a-zA-Z0-9_-]{1,63}(?<!-))*$")
BUILTIN_MODES = ("", "default", "bridge", "host", "none")


def store(request: web.Request | Any) -> Store:
    app = request.app if isinstance(request, web.Request) else request
    if "networks.store" not in app:
        app["networks.store"] = Store()
    return app["networks.store"]


async def _run(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


def check_alias(alias: str) -> None:
    if not isinstance(alias, str) or not DNS_NAME.match(alias) or len(alias) > 253:
        raise errors.InvalidArgument(f"invalid network alias {alias!r}: not a valid DNS name (letters, "
                                     "digits, '-', at most 63 characters a label)")


def endpoint_id(record: Record, container_id: str) -> str:
    return hashlib.sha256(f"{record.id}:{container_id}".encode()).hexdigest()


def entry(app: Any, record: Record, detailed: bool) -> dict[str, Any]:
    """One network in Docker's ``Network`` shape."""
    containers = {}
    if detailed:
        sup = app["supervisor"]
        for lease in store(app).ipam(record).leases():
            c = sup.containers.get(lease.container_id)
            settings = (c.config.get("Networks") or {}).get(record.name, {}) if c else {}
            containers[lease.container_id] = {
                "Name": c.name.lstrip("/") if c else "",
                "EndpointID": endpoint_id(record, lease.container_id),
                "MacAddress": settings.get("MacAddress") or mac_for(lease.ip),
                "IPv4Address": f"{lease.ip}/{record.prefixlen}", "IPv6Address": ""}
    ipam = {"Subnet": record.subnet, "Gateway": record.gateway, **({"IPRange": record.ip_range}
                                                                     if record.ip_range else {})}
    return {"Name": record.name, "Id": record.id, "Created": record.created, "Scope": "local",
            "Driver": "bridge", "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [ipam]}, "Internal": record.internal,
            "Attachable": record.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers,
            "Options": dict(record.options),  # as given, as Docker's (Compose v1 compares them)
            "Labels": record.labels}


def _matches(e: dict[str, Any], filters: dict[str, list[str]], builtin_entry: bool) -> bool:
    def label(v: str) -> bool:
        key, eq, value = v.partition("=")
        return key in e["Labels"] and (not eq or e["Labels"][key] == value)

    tests = {"name": lambda v: v in e["Name"], "id": lambda v: v in e["Id"],
             "driver": lambda v: v == e["Driver"], "scope": lambda v: v == e["Scope"],
             "type": lambda v: v == ("builtin" if builtin_entry else "custom"), "label": label,
             "dangling": lambda v: (v.lower() in ("1", "true")) == (
                 not builtin_entry and not e["Containers"])}
    return all(any(tests[k](v) for v in values) for k, values in filters.items() if values)


def _all(request: web.Request, detailed: bool) -> list[tuple[dict[str, Any], bool]]:
    found = [(n, True) for n in builtin.networks(request, detailed)]
    return found + [(entry(request.app, r, detailed or True), False) for r in store(request).all()]


@routes.get("/networks")
async def network_list(request: web.Request) -> web.Response:
    filters = builtin._filters(request)
    found = [e for e, b in _all(request, False) if _matches(e, filters, b)]
    for e in found:
        e["Containers"] = {}  # since API 1.28 only inspect lists them
    return web.json_response(found)


@routes.get("/networks/{id}")
async def network_inspect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    record = store(request).get(ref)
    if record is not None and ref not in builtin.BUILTIN:
        return web.json_response(entry(request.app, record, True))
    return await builtin.network_inspect(request)


# --8<-- [start:create]
@routes.post("/networks/create")
async def network_create(request: web.Request) -> web.Response:
    body = await json_body(request, {})
    if not isinstance(body, dict):
        raise errors.InvalidArgument("invalid network config: expected a JSON object")
    name = body.get("Name")
    if not isinstance(name, str) or not NAME.match(name):
        raise errors.InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                     "allowed")
    if name in builtin.BUILTIN:
        raise errors.Forbidden(f"{name} is a pre-defined network and cannot be created")
    driver_name = body.get("Driver") or "bridge"
    if driver_name != "bridge":
        raise errors.NotFound(f"plugin \"{driver_name}\" not found: only the bridge driver is supported")
    options = body.get("Options") or {}
    labels = body.get("Labels") or {}
    if not isinstance(options, dict) or not isinstance(labels, dict):
        raise errors.InvalidArgument("invalid network config: Options and Labels must be objects")
    configs = ((body.get("IPAM") or {}).get("Config") or [])
    configs = [c for c in configs
               if isinstance(c, dict) and "." in (c.get("Subnet") or c.get("Gateway") or ".")]
    if len(configs) > 1:
        raise errors.Unsupported("only one IPv4 subnet per network is supported")
    wanted = configs[0] if configs else {}
    bridge = options.get("com.docker.network.bridge.name") or ""
    if bridge and (len(bridge) > 15 or not re.match(r"^[a-zA-Z0-9_.-]+$", bridge)):
        raise errors.InvalidArgument(f"invalid bridge name {bridge!r}: at most 15 letters, digits, '_', '.', "
                                     "'-'")
    default = NetworkConfig.from_env()
    s = store(request)

    def create() -> Record:
        with s.locked():
            if s.get(name) is not None and s.find(name).name == name:
                raise errors.Conflict(f"network with name {name} already exists")
            records = s.all()
            if bridge and any(r.bridge == bridge for r in records):
                raise errors.Conflict(f"bridge name {bridge} is used by another network")
            taken = [ipaddress.IPv4Network(default.subnet)] + [r.network for r in records]
            if wanted.get("Subnet"):
                try:
                    subnet = ipaddress.IPv4Network(wanted["Subnet"])
                except ValueError as e:
                    raise errors.InvalidArgument(f"invalid subnet {wanted['Subnet']}: {e}") from None
                if pools.overlapping(subnet, taken):
                    raise errors.Forbidden("Pool overlaps with other one on this address space")
            else:
                subnet = pools.next_subnet(taken, pools.host_routes())
            gateway = wanted.get("Gateway") or str(subnet.network_address + 1)
            driver.gateway_ok(subnet, gateway)
            ip_range = wanted.get("IPRange") or ""
            if ip_range:
                try:
                    if not ipaddress.IPv4Network(ip_range).subnet_of(subnet):
                        raise ValueError(f"not in subnet {subnet}")
                except (ValueError, TypeError) as e:
                    raise errors.InvalidArgument(f"invalid ip-range {ip_range}: {e}") from None
            record = Record.new(name, str(subnet), gateway, bridge, ip_range=ip_range,
                                internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
                                labels={str(k): str(v) for k, v in labels.items()},
                                options={str(k): str(v) for k, v in options.items()})
            s.add(record)
            try:
                from pyroute2 import IPRoute

                with IPRoute() as ipr:
                    driver.ensure(ipr, s, record)
                driver.apply(s)
            except BaseException:
                _destroy(s, record)
                raise
            return record

    record = await _run(create)
    _event(request.app, "create", record)
    return web.json_response({"Id": record.id, "Warning": ""}, status=201)
# --8<-- [end:create]


def _event(app: Any, action: str, record: Record, container_id: str = "") -> None:
    """A network's event for ``GET /events`` (through the daemon's plug-in API), as Docker's."""
    emit = getattr(app.get("hooks"), "emit", None)
    if emit is not None:
        emit("network", action, record.id, {**({"container": container_id} if container_id else {}),
                                            "name": record.name, "type": "bridge"})


def _destroy(s: Store, record: Record) -> None:
    from pyroute2 import IPRoute

    with s.locked():
        s.remove(record)
        with IPRoute() as ipr:
            driver.remove(ipr, record)
        driver.apply(s)


def _users(request: web.Request, record: Record) -> list[Any]:
    """Running containers with an endpoint on ``record`` (their leases)."""
    ids = {lease.container_id for lease in store(request).ipam(record).leases()}
    return [c for c in request.app["supervisor"].containers.values() if c.id in ids and c.running]


@routes.delete("/networks/{id}")
async def network_remove(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    record = store(request).get(ref) if ref not in builtin.BUILTIN else None
    if record is None:
        return await builtin.network_remove(request)
    if _users(request, record):
        raise errors.Conflict(f"error while removing network: network {record.name} id {record.id} has "
                              "active endpoints")
    await _run(_destroy, store(request), record)
    _event(request.app, "destroy", record)
    return web.Response(status=204)


@routes.post("/networks/prune")
async def network_prune(request: web.Request) -> web.Response:
    filters = builtin._filters(request)
    deleted = []
    for record in store(request).all():
        e = entry(request.app, record, True)
        if _users(request, record) or not _matches(e, {k: v for k, v in filters.items()
                                                          if k in ("label",)}, False):
            continue
        await _run(_destroy, store(request), record)
        _event(request.app, "destroy", record)
        deleted.append(record.name)
    return web.json_response({"NetworksDeleted": deleted})


def _endpoint_settings(record: Record, config: dict) -> dict[str, Any]:
    aliases = config.get("Aliases") or []
    if not isinstance(aliases, list):
        raise errors.InvalidArgument("invalid EndpointSettings.Aliases: expected a list of strings")
    for alias in aliases:
        check_alias(alias)
    ipam = config.get("IPAMConfig") or {}
    wanted = ipam.get("IPv4Address") or ""
    if wanted:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise errors.InvalidArgument(f"invalid IPv4 address: {wanted}") from None
        if address not in record.network:
            raise errors.InvalidArgument(f"invalid address {wanted}: it does not belong to any of this "
                                         f"network's subnets ({record.subnet})")
    mac = config.get("MacAddress") or ""
    if mac and not re.match(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", mac):
        raise errors.InvalidArgument(f"invalid MAC address {mac!r}")
    return {"NetworkID": record.id, "Aliases": list(aliases), "IPAMConfig": {"IPv4Address": wanted} if wanted
            else None, "MacAddress": mac, "Links": None, "DriverOpts": None}


def _check_names(app: Any, record: Record, container_id: str, name: str, aliases: list[str]) -> None:
    """An alias may be shared (round robin), but not be another container's name on the network."""
    sup = app["supervisor"]
    for other in sup.containers.values():
        if other.id == container_id or record.name not in (other.config.get("Networks") or {}):
            continue
        for alias in aliases:
            if alias.lower() == other.name.lstrip("/").lower():
                raise errors.Conflict(f"network alias {alias} collides with the name of container "
                                      f"{other.name.lstrip('/')} on network {record.name}")
        mine = [name.lower()]
        theirs = [a.lower() for a in other.config["Networks"][record.name].get("Aliases") or []]
        if set(mine) & set(theirs):
            raise errors.Conflict(f"container name {name} collides with an alias of container "
                                  f"{other.name.lstrip('/')} on network {record.name}")


def _joined(app: Any, config: dict[str, Any], endpoints: dict[str, Any]) -> None:
    """``--network container:NAME``: the other container must exist; what would conflict with sharing
    its network is refused in Docker's words; the mode is saved with its full id, as Docker's."""
    host = config["HostConfig"]
    other = app["supervisor"].find(host["NetworkMode"].partition(":")[2])  # NoSuchContainer: 404
    for given, what in ((host.get("PortBindings") or host.get("PublishAllPorts"),
                         "port publishing and the container type network mode"),
                        (config["Config"].get("Hostname"), "hostname and the network mode"),
                        (config["Config"].get("MacAddress"), "mac-address and the network mode"),
                        (host.get("Dns"), "dns and the network mode"),
                        (host.get("ExtraHosts"), "custom host-to-IP mapping and the network mode")):
        if given:
            raise errors.InvalidArgument(f"conflicting options: {what}")  # Docker's words
    if [n for n in endpoints if n not in BUILTIN_MODES and n != host["NetworkMode"]]:
        raise errors.InvalidArgument("container sharing network namespace with another container or host "
                                     "cannot be connected to any other network")
    host["NetworkMode"] = f"container:{other.id}"


def owner(app: Any, container_id: str) -> str:
    """The container whose network ``container_id`` is on: itself, or the one of its
    ``--network container:ID``."""
    c = app["supervisor"].containers.get(container_id)
    mode = (c.config["HostConfig"].get("NetworkMode") or "") if c else ""
    return mode.partition(":")[2] if mode.startswith("container:") else container_id


async def container_start(app: Any, c: Any) -> None:
    """Plug-in hook: ``--network container:ID`` starts only while that container runs (409, Docker's)."""
    mode = c.config["HostConfig"].get("NetworkMode") or ""
    if not mode.startswith("container:"):
        return
    ref = mode.partition(":")[2]
    other = app["supervisor"].containers.get(ref)
    if other is None:
        raise errors.NoSuchContainer(ref)
    if other.id == c.id:
        raise errors.InvalidArgument("cannot join own network")
    other.reload_state()
    if not other.running:
        raise errors.Conflict(f"cannot join network of a non running container: {other.id}")


def container_create(app: Any, config: dict[str, Any]) -> None:
    """Plug-in hook: resolve ``--network NAME`` and ``EndpointsConfig`` to our networks, check them."""
    host = config["HostConfig"]
    mode = host.get("NetworkMode") or "default"
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise errors.InvalidArgument("invalid NetworkingConfig.EndpointsConfig: expected an object")
    if mode.startswith("container:"):
        _joined(app, config, endpoints)
        return
    s = store(app)
    names = [] if mode in BUILTIN_MODES or mode.startswith("container:") else [mode]
    names += [n for n in endpoints if n not in names and n not in BUILTIN_MODES]
    found: dict[str, Any] = {}
    for ref in names:
        record = s.find(ref)  # NotFound: "network X not found"
        settings = _endpoint_settings(record, endpoints.get(ref) or endpoints.get(record.name) or {})
        if ref == mode and config["Config"].get("MacAddress") and not settings["MacAddress"]:
            settings["MacAddress"] = config["Config"]["MacAddress"]
        name = config["Name"].lstrip("/")
        if not DNS_NAME.match(name):
            raise errors.InvalidArgument(f"container name {name!r} is not a valid DNS name: on a "
                                         "user-defined network, other containers look it up")
        _check_names(app, record, config["Id"], name, settings["Aliases"])
        found[record.name] = settings
        if ref == mode:
            host["NetworkMode"] = record.name
    if found:
        config["Networks"] = found


def _ifname(pid: int) -> str:
    """The first ``ethN`` free in the network namespace of ``pid`` (from ``/proc/PID/net/dev``)."""
    with open(f"/proc/{pid}/net/dev") as f:
        used = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    return next(f"eth{n}" for n in range(1000) if f"eth{n}" not in used)


def _has_default_route(pid: int) -> bool:
    with open(f"/proc/{pid}/net/route") as f:
        return any(line.split()[1] == "00000000" for line in f.readlines()[1:])


@routes.post("/networks/{id}/connect")
async def network_connect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    record = store(request).get(ref) if ref not in builtin.BUILTIN else None
    if record is None:
        return await builtin.network_connect(request)
    body = await json_body(request, {})
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise errors.InvalidArgument("invalid request: Container must be set")
    sup = request.app["supervisor"]
    c = sup.find(body["Container"])
    if record.name in (c.config.get("Networks") or {}):
        raise errors.Forbidden(f"endpoint with name {c.name.lstrip('/')} already exists in network "
                               f"{record.name}")
    mode = c.config["HostConfig"].get("NetworkMode") or "default"
    if mode in ("host", "none") or mode.startswith("container:"):
        raise errors.Forbidden("container sharing network namespace with another container or host cannot "
                               f"be connected to any other network ({mode})")
    settings = _endpoint_settings(record, body.get("EndpointConfig") or {})
    name = c.name.lstrip("/")
    if not DNS_NAME.match(name):
        raise errors.InvalidArgument(f"container name {name!r} is not a valid DNS name")
    _check_names(request.app, record, c.id, name, settings["Aliases"])
    async with c.lock:
        if c.running:
            pid = int(c.state["Pid"])
            ifname = await _run(_ifname, pid)
            route = not await _run(_has_default_route, pid)
            await _run(driver.attach, store(request), record, c.id, pid, ifname, default_route=route,
                       ip=(settings["IPAMConfig"] or {}).get("IPv4Address", ""), mac=settings["MacAddress"])
        c.config.setdefault("Networks", {})[record.name] = settings
        write_json(c.dir / "config.json", c.config, mode=0o600)
    if c.running:
        await dns_attach(request.app, c)
    _event(request.app, "connect", record, c.id)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def network_disconnect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    record = store(request).get(ref) if ref not in builtin.BUILTIN else None
    if record is None:
        return await builtin.network_connect(request)
    body = await json_body(request, {})
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise errors.InvalidArgument("invalid request: Container must be set")
    sup = request.app["supervisor"]
    try:
        c = sup.find(body["Container"])
    except errors.NotFound:
        if body.get("Force"):
            await _run(driver.detach, store(request), record, body["Container"])
            return web.Response(status=200)
        raise
    if record.name not in (c.config.get("Networks") or {}):
        raise errors.Forbidden(f"container {c.id} is not connected to network {record.name}")
    async with c.lock:
        await _run(driver.detach, store(request), record, c.id)
        del c.config["Networks"][record.name]
        if c.config["HostConfig"].get("NetworkMode") == record.name and c.config["Networks"]:
            c.config["HostConfig"]["NetworkMode"] = next(iter(c.config["Networks"]))
        # On none left, NetworkMode stays (as Docker's): 'none' would refuse a later connect, which
        # Compose v1 does at every create (disconnect, then connect with the container's short id).
        write_json(c.dir / "config.json", c.config, mode=0o600)
    await dns_attach(request.app, c)
    _event(request.app, "disconnect", record, c.id)
    return web.Response(status=200)


# ---- the embedded DNS, from the daemon's side ------------------------------------------------
def networks_of(app: Any, container_id: str) -> list[Record]:
    """The networks ``container_id`` is on (those of the container whose namespace it shares)."""
    s, container_id = store(app), owner(app, container_id)
    return [r for r in s.all() if s.ipam(r).lease(container_id)]


def lookup(app: Any, asker: str, name: str) -> list[str] | None:
    """``EmbeddedDNS``'s lookup: names, aliases and short ids on the networks ``asker`` is on, and the
    aliases of its ``--link``s (dockerd's meaning of a link on a user-defined network)."""
    s, sup = store(app), app["supervisor"]
    name = name.lower().rstrip(".")
    me = sup.containers.get(asker)
    for link in (me.config["HostConfig"].get("Links") or []) if me is not None else []:
        other, _, link_name = link.partition(":")  # --link db1:db here: "db" is db1, for the asker alone
        if link_name.rpartition("/")[2].lower() == name:
            name = other.lstrip("/").lower()
            break
    found: list[str] = []
    known = False
    for record in networks_of(app, asker):
        for lease in s.ipam(record).leases():
            c = sup.containers.get(lease.container_id)
            if c is None:
                continue
            aliases = ((c.config.get("Networks") or {}).get(record.name) or {}).get("Aliases") or []
            names = {c.name.lstrip("/").lower(), c.id[:12], *(a.lower() for a in aliases)}
            hostname = (c.config["Config"].get("Hostname") or "").lower()
            if hostname:
                names.add(hostname)
            if name in names:
                known = True
                if lease.ip not in found:
                    found.append(lease.ip)
    return found if known else None


def _dns(app: Any) -> Any:
    if "networks.dns" not in app:
        from minidocker.networks.dns import EmbeddedDNS

        app["networks.dns"] = EmbeddedDNS(lambda asker, name: lookup(app, asker, name))
    return app["networks.dns"]


# --8<-- [start:dns_handoff]
def dns_listen(app: Any) -> None:
    """Take the sockets the engines bind before their containers run (``handoff.py``), from now on."""
    sock = app["networks.handoff"] = handoff.listen()
    app["networks.adopting"] = {}
    asyncio.get_running_loop().add_reader(sock.fileno(), dns_received, app)


def dns_received(app: Any) -> None:
    """Adopt every hand-over waiting on ``dns.sock``, each in a task (after its container's last)."""
    sock = app.get("networks.handoff")
    if sock is None:
        return
    adopting = app["networks.adopting"]
    for handed in handoff.receive(sock):
        cid = handed.container_id
        task = asyncio.get_running_loop().create_task(_adopt(app, handed, adopting.get(cid)))
        adopting[cid] = task
        task.add_done_callback(lambda t, cid=cid: adopting.pop(cid, None) if adopting.get(cid) is t else None)


async def _adopt(app: Any, handed: Any, previous: asyncio.Task | None) -> None:
    if previous is not None:  # the same container's earlier start: adopted (or dropped) first
        await asyncio.wait([previous])
    try:
        c = app["supervisor"].containers.get(handed.container_id)
        records = await _run(networks_of, app, c.id) if c is not None else []
    except BaseException:
        handed.close()
        raise
    if not records:  # not one of ours (an engine run by hand), or on no network any more
        handed.close()
        return
    try:
        await _dns(app).adopt(c.id, handed.pidfd, handed.udp, handed.tcp,
                              forward=any(not r.internal for r in records))
        _dns(app).set_upstreams(c.id, c.config["HostConfig"].get("Dns"))  # docker run --dns
    except Exception as e:  # its attach after start will try again, and say why
        log.warning("embedded DNS for %s: adopting its sockets: %s", c.id[:12], e)


async def dns_adopted(app: Any, container_id: str) -> None:
    """Wait until what the engine of ``container_id`` handed over, if anything, is adopted.

    Its engine sent the sockets before it answered the daemon's ``start``: they are in our queue.
    """
    dns_received(app)
    task = (app.get("networks.adopting") or {}).get(container_id)
    if task is not None:
        await asyncio.wait([task])


def dns_unlisten(app: Any) -> None:
    sock = app.pop("networks.handoff", None)
    if sock is not None:
        asyncio.get_running_loop().remove_reader(sock.fileno())
        for handed in handoff.receive(sock):  # not adopted: closed
            handed.close()
        sock.close()
        with contextlib.suppress(OSError):
            handoff.socket_path().unlink()
# --8<-- [end:dns_handoff]


async def dns_attach(app: Any, c: Any) -> None:
    """Serve DNS in ``c`` while it is on a user-defined network; stop when it is on none."""
    records = await _run(networks_of, app, c.id)
    if c.running and records:
        await _dns(app).attach(c.id, int(c.state["Pid"]), forward=any(not r.internal for r in records))
        _dns(app).set_upstreams(c.id, c.config["HostConfig"].get("Dns"))
    elif "networks.dns" in app:
        await app["networks.dns"].detach(c.id)


def inspect(app: Any, c: Any, info: dict[str, Any]) -> None:
    """Plug-in hook: each user-defined network's live endpoint in ``NetworkSettings.Networks``."""
    nets = c.config.get("Networks") or {}
    mode = c.config["HostConfig"].get("NetworkMode") or ""
    other = app["supervisor"].containers.get(mode.partition(":")[2] if mode.startswith("container:") else "")
    if other is not None:  # as Docker's: the hostname of the container whose network it shares
        hostname = other.config["Config"].get("Hostname") or other.id[:12]
        info["Config"] = {**info["Config"], "Hostname": hostname}
    if not nets:
        return
    s = store(app)
    shown, leases = {}, {}
    for name, settings in nets.items():
        record = s.get(settings.get("NetworkID") or name)
        lease = leases[name] = s.ipam(record).lease(c.id) if record and c.running else None
        live = bool(lease and record)
        shown[name] = {**settings, "Gateway": record.gateway if live else "",
                       "IPAddress": lease.ip if live else "", "IPPrefixLen": record.prefixlen if live else 0,
                       "MacAddress": (settings.get("MacAddress") or mac_for(lease.ip)) if live else "",
                       "EndpointID": endpoint_id(record, c.id) if live else "",
                       "DNSNames": [c.name.lstrip("/"), c.id[:12], *(settings.get("Aliases") or [])],
                       "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
    ns = info.setdefault("NetworkSettings", {})
    ns["Networks"] = {**(ns.get("Networks") or {}), **shown}
    mode = c.config["HostConfig"].get("NetworkMode") or ""
    primary = shown.get(mode)
    if primary and primary["IPAddress"]:
        ns.update(IPAddress=primary["IPAddress"], IPPrefixLen=primary["IPPrefixLen"],
                  Gateway=primary["Gateway"], MacAddress=primary["MacAddress"])
        ports = ns.setdefault("Ports", {})  # the published ports (on the first network's address)
        for m in leases[mode].ports or []:
            key = f"{m['container_port']}/{m.get('protocol') or 'tcp'}"
            ports[key] = [*(ports.get(key) or []), {"HostIp": m.get("host_ip") or "0.0.0.0",
                                                    "HostPort": str(m["host_port"])}]

