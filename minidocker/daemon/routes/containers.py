"""Chapter 10: the containers half of the Docker Engine API: create, start, stop, wait, logs, list, remove.

Each handler is small because the work is elsewhere: :mod:`minidocker.daemon.supervisor` runs the life
cycle, :mod:`minidocker.daemon.containers` gives the JSON shapes, the monitor holds the streams. What is
here is the contract real clients rely on: status codes (201, 204, 304, 404, 409), query flags
that may be ``1``, ``true`` or ``True``, the image config merged into the container's, and the
``/wait`` answer whose headers go out at once while the body waits for the exit.

Example (what ``docker run -d busybox sleep 9`` sends)::

    POST /v1.50/containers/create        {"Image": "busybox", "Cmd": ["sleep", "9"], ...}  -> 201
    POST /v1.50/containers/ID/wait?condition=next-exit                                     -> 200 ...
    POST /v1.50/containers/ID/start                                                        -> 204
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.atomic import rfc3339, write_json
from minidocker.core.process import EngineError
from minidocker.core.spec import IdMap
from minidocker.daemon import events, freezer, health, links, volumes
from minidocker.daemon.containers import NAME, Container, random_name
from minidocker.daemon.logs import parse_lines, parse_time, tail_entries
from minidocker.daemon.logs import render as render_log
from minidocker.daemon.restart import validate as restart_policy
from minidocker.daemon.routes import checks
from minidocker.daemon.supervisor import Supervisor, parse_signal
from minidocker.images import config as imageconfig
from minidocker.network import stage as network

__all__ = ["flag", "json_body", "routes"]

routes = web.RouteTableDef()


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads it (``1``, ``true``, ``True`` ...)."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "no", "false", "none")


# --8<-- [start:json_body]
async def json_body(request: web.Request, default: Any = None) -> Any:
    """The request's JSON body (``default`` if empty); InvalidArgument if it is not JSON, or not said so.

    A body must come with ``Content-Type: application/json``, as dockerd requires: a web page may
    send a "simple" cross-origin request (``text/plain``, a form) without asking first, and would
    otherwise create a container on a daemon listening on plain TCP. An empty body needs no type.
    Example: ``POST /containers/create`` with ``text/plain`` and ``{"Image": ...}`` is a 400.
    """
    text = await request.text()
    if not text.strip():
        return default
    kind = request.headers.get("Content-Type", "")
    if kind.partition(";")[0].strip().lower() != "application/json":
        raise errors.InvalidArgument(f"Content-Type specified ({kind}) must be 'application/json'")
    try:
        return json.loads(text)
    except ValueError as e:
        raise errors.InvalidArgument(f"invalid JSON in request body: {e}") from None
# --8<-- [end:json_body]


def sup(request: web.Request) -> Supervisor:
    return request.app["supervisor"]


def container(request: web.Request) -> Container:
    return sup(request).find(request.match_info["id"])


# exercise 10.2: The container's Config: the request's, the image's for the rest
# hint: pick the Config keys from the body and let imageconfig.merge_api_config merge them; make the six
#   Attach/Tty/Open/StdinOnce flags booleans; drop keys whose value is None, except Cmd and Entrypoint.
# --8<-- [start:merge_config]
def merge_config(image_config: dict, body: dict) -> dict:
    """The container's ``Config``: what the request says, the image's for the rest (chapter 07's rules)."""
    cfg = imageconfig.merge_api_config(image_config, {key: body.get(key) for key in (
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
        "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
        "Labels", "StopSignal", "StopTimeout", "ExposedPorts", "MacAddress")})
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"):
        cfg[key] = bool(cfg[key])
    return {k: v for k, v in cfg.items() if v is not None or k in ("Cmd", "Entrypoint")}
# --8<-- [end:merge_config]


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await json_body(request, {})
    if not isinstance(body, dict):
        raise errors.InvalidArgument("invalid container config: expected a JSON object")
    supervisor, name = sup(request), request.query.get("name", "")
    if name and not NAME.match(name):
        raise errors.InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                     "allowed")
    name = name.lstrip("/")
    if name in supervisor.names():
        other = supervisor.find(name).id
        raise errors.Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                              f'"{other}". You have to remove (or rename) that container to be able to '
                              'reuse that name.')
    ref = body.get("Image")
    if not isinstance(ref, str) or not ref:
        raise errors.InvalidArgument("no image given: Config.Image must be set")
    store = request.app["images"]
    image = await asyncio.get_running_loop().run_in_executor(None, store.find, ref)
    if image is None:
        raise errors.NoSuchImage(ref if ":" in ref or "@" in ref else ref + ":latest")
    platform_check(ref, image, request.query.get("platform"))
    for key in ("Cmd", "Entrypoint", "Env"):  # Go would refuse to decode anything else
        value = body.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise errors.InvalidArgument(f"invalid container config: {key} must be a list of strings")
    host = _host_config(body.get("HostConfig"))
    host["Runtime"] = request.app["runtimes"].find(host.get("Runtime")).name  # as dockerd: the default named
    for key in ("Labels", "ExposedPorts", "Volumes"):  # merged with the image's: objects or nothing
        if not isinstance(body.get(key) or {}, dict):
            raise errors.InvalidArgument(f"invalid container config: {key} must be an object")
    health.validate(body.get("Healthcheck"))
    checks.unsupported(body)
    checks.log_config(host["LogConfig"])
    checks.devices(host.get("Devices"))
    volumes.check_driver("", host.get("VolumeDriver"))
    restart_policy(host.get("RestartPolicy"), bool(host.get("AutoRemove")))
    cfg = merge_config(image.get("Config") or {}, body)
    if host.get("NetworkMode") in (None, "", "default", "bridge"):  # API 1.44+: the endpoint's MacAddress
        endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        mac = next((e.get("MacAddress") for e in endpoints.values() if isinstance(e, dict)
                    and e.get("MacAddress")), None)
        if mac and not cfg.get("MacAddress"):
            cfg["MacAddress"] = mac
    check = health.merge((image.get("Config") or {}).get("Healthcheck"), body.get("Healthcheck"))
    if check:  # the request's fields, the image's for the rest (NONE: none at all)
        cfg["Healthcheck"] = check
    checks.exposed_ports(cfg.get("ExposedPorts"))  # the image's too: a bad key is a 400 now, not a 500 later
    checks.network_options(host, cfg)
    command = [str(a) for a in (cfg["Entrypoint"] or []) + (cfg["Cmd"] or [])]
    if host.get("NetworkMode") in (None, "", "default"):  # the daemon's --default-network
        host["NetworkMode"] = request.app["config"].get("default-network") or "default"
    if host["NetworkMode"] == "host" and not cfg.get("Hostname"):  # as Docker: the host's name
        cfg["Hostname"] = os.uname().nodename
    id_map = user_namespace(request.app["config"], host)
    image_volumes = (image.get("Config") or {}).get("Volumes")
    # the volumes there are, to tell which this container makes: read (each volume's file) only when it
    # may name one
    may_name = host.get("Binds") or host.get("Mounts") or cfg.get("Volumes") or image_volumes
    known = {v["Name"] for v in volumes.list_volumes()} if may_name else set()
    if not isinstance(host.get("Mounts") or [], list) or not isinstance(host.get("Tmpfs") or {}, dict):
        raise errors.InvalidArgument("invalid HostConfig: Mounts must be a list and Tmpfs an object")
    mounts = volumes.parse_binds(host.get("Binds") or []) + volumes.parse_mounts(host.get("Mounts") or [],
                                                                                 host.get("Tmpfs") or {})
    if cfg.get("Volumes") or image_volumes:  # the image's VOLUMEs and -v /path
        cfg["Volumes"] = {**(image_volumes or {}), **(cfg.get("Volumes") or {})}
    mounts += volumes.anonymous_volumes(cfg.get("Volumes"), mounts)
    for m in mounts:  # the named volumes made here: as by POST /volumes/create
        if m["Type"] == "volume" and m["Name"] not in known:
            known.add(m["Name"])
            events.emit(request.app, "volume", "create", m["Name"], {"driver": "local"})
    volumes.check_propagation(mounts)
    remap_volumes(mounts, id_map)
    if not command:
        raise errors.InvalidArgument("No command specified")
    cid = os.urandom(32).hex()
    name = name or random_name(supervisor.names())
    if host.get("Links"):  # legacy links, checked and written as dockerd shows them
        if host["NetworkMode"] in ("host", "none") or host["NetworkMode"].startswith("container:"):
            raise errors.InvalidArgument("conflicting options: host type networking can't be used with "
                                         "links. This would result in undefined behavior")
        # on the default bridge, resolved at start (supervisor); on a plug-in's network, the plug-in's
        host["Links"] = links.normalize(host["Links"], name, lambda other: supervisor.find(other).name)
    plugged = {"Id": cid, "Name": f"/{name}", "Config": cfg, "HostConfig": host,
               "NetworkingConfig": body.get("NetworkingConfig") or {}}
    for hook in request.app["hooks"].container_create:  # later chapters check and add (daemon/plugins.py)
        hook(request.app, plugged)
    directory = supervisor.root / cid
    directory.mkdir(mode=0o700)  # root's alone, like all of the state directory (core.paths)
    try:
        config = {"Id": cid, "Name": f"/{name}", "Created": rfc3339(), "Path": command[0],
                  "Args": command[1:], "Config": {**cfg, "Image": ref}, "HostConfig": host,
                  "Image": image["Id"], "ImageName": ref, "Driver": store.driver, "Mounts": mounts,
                  "PortList": _port_list(host), **({"IdMap": id_map} if id_map else {}),
                  **{k: v for k, v in plugged.items() if k not in ("Id", "Name", "Config", "HostConfig",
                                                                   "NetworkingConfig")}}
        write_json(directory / "config.json", config, mode=0o600)  # Env holds secrets, often
    except BaseException:
        await asyncio.get_running_loop().run_in_executor(None, _rmtree, directory)
        raise
    supervisor.add(c := Container(directory, config))
    events.container_event(request.app, c, "create")
    return web.json_response({"Id": cid, "Warnings": checks.warnings(body)}, status=201)


def platform_check(ref: str, image: dict, platform: str | None) -> None:
    """``docker run --platform OS/ARCH``: the image found must be of that platform, as dockerd says."""
    if not platform:
        return
    wanted = platform.lower().split("/")
    actual = [image.get("Os") or "linux", image.get("Architecture") or "amd64", image.get("Variant") or ""]
    if wanted[0] != actual[0] or (len(wanted) > 1 and wanted[1] != actual[1]) or (
            len(wanted) > 2 and wanted[2] != actual[2]):
        shown = "/".join(x for x in actual if x)
        raise errors.NotFound(f"image with reference {ref} was found but does not match the specified "
                              f"platform: wanted {platform}, actual: {shown}")


def _host_config(value: Any) -> dict:
    """The request's ``HostConfig``, its shape checked (InvalidArgument if not), the log driver set."""
    if not isinstance(value or {}, dict):
        raise errors.InvalidArgument("invalid container config: HostConfig must be an object")
    host = dict(value or {})
    for key, kind, what in (("LogConfig", dict, "an object"), ("PortBindings", dict, "an object"),
                            ("Binds", list, "a list")):
        if not isinstance(host.get(key) or kind(), kind):
            raise errors.InvalidArgument(f"invalid HostConfig.{key}: expected {what}")
    if not all(isinstance(b, str) for b in host.get("Binds") or []):
        raise errors.InvalidArgument("invalid HostConfig.Binds: expected a list of strings")
    checks.port_bindings(host.get("PortBindings") or {})
    if not isinstance(host.get("SecurityOpt") or [], list):
        raise errors.InvalidArgument("invalid HostConfig.SecurityOpt: expected a list of strings")
    checks.security_opts(host.get("SecurityOpt") or [])
    host["LogConfig"] = dict(host.get("LogConfig") or {"Config": {}})
    host["LogConfig"]["Type"] = host["LogConfig"].get("Type") or "json-file"
    for key in ("Memory", "NanoCpus", "PidsLimit"):
        if host.get(key) is not None and not isinstance(host[key], int):
            raise errors.InvalidArgument(f"invalid HostConfig.{key}: expected an integer")
    for key in ("MaskedPaths", "ReadonlyPaths"):  # the engine gets them as one PATH:PATH option
        if host.get(key) is not None and not (isinstance(host[key], list) and all(
                isinstance(p, str) and p.startswith("/") and ":" not in p for p in host[key])):
            raise errors.InvalidArgument(f"invalid HostConfig.{key}: expected a list of absolute paths")
    return host


# --8<-- [start:user_namespace]
def user_namespace(daemon_config: dict, host: dict) -> list[int] | None:
    """The container's id map: the daemon's ``--userns-remap`` unless ``--userns=host`` opts out. As
    Docker, no remapped root gets the host's powers back (``--privileged``, its network or PIDs)."""
    mode = host.get("UsernsMode") or ""
    if mode not in ("", "host"):
        raise errors.InvalidArgument(f"invalid UsernsMode {mode!r}: only host is supported (docker run "
                                     "--userns=host)")
    if mode == "host" or not daemon_config.get("userns-remap"):
        return None
    if host.get("Privileged"):
        raise errors.InvalidArgument("privileged mode is incompatible with user namespaces.  You must run "
                                     "the container in the host namespace when running privileged mode")
    if host.get("NetworkMode") == "host":
        raise errors.InvalidArgument("cannot share the host's network namespace when user namespaces are "
                                     "enabled")
    if host.get("PidMode") == "host":
        raise errors.InvalidArgument("cannot share the host PID namespace when user namespaces are enabled")
    return list(IdMap())  # root inside is 100000 outside


def remap_volumes(mounts: list[dict], id_map: list[int] | None) -> None:
    """A new (empty) named volume belongs to the container's root, as under Docker's userns-remap."""
    for m in mounts if id_map else []:
        path = m["Source"]
        if m["Type"] == "volume" and os.stat(path).st_uid == 0 and not os.listdir(path):
            os.chown(path, id_map[1], id_map[1])
# --8<-- [end:user_namespace]


def _port_list(host: dict) -> list[dict]:
    """``docker ps``' PORTS: one entry per published port."""
    found = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        number, _, proto = port.partition("/")
        for b in bindings or []:
            found.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                          "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return found


def _rmtree(path: Any) -> None:
    shutil.rmtree(path, ignore_errors=True)


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    c = container(request)
    await sup(request).start(c)  # NotModified (a bare 304) if it runs already
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    c = container(request)
    freezer.thawed(c)  # a paused container is thawed first, so that it can take its signal
    timeout = _int(request, "t")
    signum = _signal(request.query["signal"]) if request.query.get("signal") else None
    stopped = await sup(request).stop(c, timeout, signum)
    return web.Response(status=204 if stopped else 304)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    c = container(request)
    freezer.thawed(c)
    await sup(request).stop(c, _int(request, "t"))
    await sup(request).start(c)
    events.container_event(request.app, c, "restart")
    return web.Response(status=204)


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    """``docker pause``: every process of the container frozen by its cgroup (chapter 03)."""
    c = container(request)
    await asyncio.get_running_loop().run_in_executor(None, freezer.pause, c)
    events.container_event(request.app, c, "pause")
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    c = container(request)
    await asyncio.get_running_loop().run_in_executor(None, freezer.unpause, c)
    events.container_event(request.app, c, "unpause")
    return web.Response(status=204)


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    """``docker update``: limits written into the live cgroup, and HostConfig (daemon/update.py)."""
    from minidocker.daemon import update as updating

    c, body = container(request), await json_body(request, {}) or {}
    if not isinstance(body, dict):
        raise errors.InvalidArgument("invalid update config: expected a JSON object")
    warnings = await asyncio.get_running_loop().run_in_executor(None, updating.update, c, body)
    events.container_event(request.app, c, "update")
    return web.json_response({"Warnings": warnings})


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    """``docker rename OLD NEW`` (and Compose, which renames a container it is about to replace)."""
    c = container(request)
    name = request.query.get("name", "").lstrip("/")
    if not name or not NAME.match(name):
        raise errors.InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                     "allowed")
    old = c.name
    if name == old.lstrip("/"):
        raise errors.InvalidArgument("Renaming a container with the same name as its current name")
    if name in sup(request).names():
        other = sup(request).find(name).id
        raise errors.Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                              f'"{other}". You have to remove (or rename) that container to be able to '
                              'reuse that name.')
    c.config["Name"] = f"/{name}"
    write_json(c.dir / "config.json", c.config, mode=0o600)
    events.container_event(request.app, c, "rename", oldName=old)
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    c = container(request)
    signum = _signal(request.query.get("signal") or "SIGKILL")
    freezer.thawed(c)
    if c.running:  # as dockerd: a container killed by hand is not restarted by its policy
        sup(request).stopped_by_hand(c)
    seen = c.exit_count
    sup(request).signal(c, signum)
    if signum == signal.SIGKILL:  # as dockerd: a SIGKILL is answered once the container has exited
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup(request).wait(c, "next-exit", seen), timeout=10)
    return web.Response(status=204)


def _signal(value: str) -> int:
    try:
        return parse_signal(value)
    except ValueError as e:
        raise errors.InvalidArgument(str(e)) from None


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidArgument(f"invalid value for {name}: {value!r}") from None


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    c = container(request)
    seen = c.exit_count
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise errors.InvalidArgument(f"invalid condition: {condition!r}")
    # Headers now, body at the exit: `docker run` starts the container only after it got them.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    code = await sup(request).wait(c, condition, seen)
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    show_all = flag(request, "all")
    filters = events.parse_filters(request.query.get("filters"))
    check_filters(filters)
    found = [c for c in sup(request).containers.values()
             if (show_all or c.running or filters.get("status")) and c.matches(filters)]
    for key in ("before", "since"):  # containers created before (after) the one named
        for ref in filters.get(key) or []:
            created = sup(request).find(ref).config["Created"]
            found = [c for c in found if (c.config["Created"] < created if key == "before"
                                          else c.config["Created"] > created)]
    found.sort(key=lambda c: c.config["Created"], reverse=True)
    limit = _int(request, "limit")
    if limit is not None and limit > 0:
        found = found[:limit]
    summaries, endpoints = [c.summary() for c in found], _endpoints() if any(c.running for c in found) else {}
    for c, summary in zip(found, summaries, strict=True):
        if c.running:  # the host ports really taken (-P's, -p 80's), and the exposed ones
            ports = network_settings(c.config, endpoints.get(c.id))["Ports"]
            summary["Ports"] = port_summaries(ports)
    return web.json_response(summaries)


STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
PS_FILTERS = ("ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label",
              "name", "network", "publish", "since", "status", "volume")


def check_filters(filters: dict[str, list[str]]) -> None:
    """Docker's refusals of ``docker ps --filter``: an unknown key, a status or health not a state."""
    for key, values in filters.items():
        if key not in PS_FILTERS:
            raise errors.InvalidArgument(f"invalid filter '{key}'")
        for value in values:
            if key == "status" and value not in STATES:
                raise errors.InvalidArgument(f"invalid filter 'status={value}'")
            if key == "health" and value not in ("starting", "healthy", "unhealthy", "none"):
                raise errors.InvalidArgument(f"invalid filter 'health={value}'")
            if key == "exited" and not value.lstrip("-").isdigit():
                raise errors.InvalidArgument(f"invalid filter 'exited={value}'")


def port_summaries(ports: dict[str, list[dict] | None]) -> list[dict]:
    """``NetworkSettings.Ports`` as ``docker ps`` lists them; a key that is no port (a container
    recorded before create checked them) is left out, so one container cannot break the list."""
    found = []
    for port, bindings in ports.items():
        try:
            number, proto = checks.parse_port(port)
        except errors.InvalidArgument:
            continue
        for b in bindings or [None]:
            found.append({"PrivatePort": number, "Type": proto,
                          **({"IP": b["HostIp"], "PublicPort": int(b["HostPort"])} if b else {})})
    return found


def _endpoints() -> dict[str, Any]:
    """Chapter 05's record of the containers on the bridge: addresses and published ports."""
    with contextlib.suppress(EngineError, OSError, ValueError):
        return {e.container_id: e for e in network.Network().endpoints()}
    return {}


def network_settings(config: dict, endpoint: Any) -> dict:
    """``NetworkSettings`` of a running container: its address, and ``Ports`` as Docker shows them
    (every exposed port, with the host ports it is published on, ``null`` if none)."""
    ports: dict[str, list[dict] | None] = {p: None for p in config["Config"].get("ExposedPorts") or {}}
    found: dict[str, Any] = {"Ports": ports}
    if endpoint is not None:
        for m in endpoint.ports:
            key = f"{m.container_port}/{m.protocol}"
            binding = {"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}
            ports[key] = [*(ports.get(key) or []), binding]
        found.update(IPAddress=endpoint.ip, IPPrefixLen=endpoint.prefixlen, Gateway=endpoint.gateway,
                     MacAddress=endpoint.mac)
    return found


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    c = container(request)
    info = c.inspect()
    if c.running:
        info["NetworkSettings"] = {**info["NetworkSettings"],
                                   **network_settings(c.config, _endpoints().get(c.id))}
    for hook in request.app["hooks"].container_inspect:
        hook(request.app, c, info)
    return web.json_response(info)


@routes.delete("/containers/{id:.+}")  # with ?link=1 the id is a link's name: /me/alias
async def remove(request: web.Request) -> web.Response:
    if flag(request, "link"):
        return await remove_link(request)
    c = container(request)
    if flag(request, "force"):
        freezer.thawed(c)
    await sup(request).remove(c, force=flag(request, "force"), volumes=flag(request, "v"))
    return web.Response(status=204)


async def remove_link(request: web.Request) -> web.Response:
    """``docker rm --link /me/alias``: the link goes, both containers stay (dockerd's errors otherwise)."""
    name = "/" + request.match_info["id"].strip("/")
    parent = name.rpartition("/")[0]
    if not parent:
        sup(request).find(name)  # NoSuchContainer if it is no container either
        raise errors.Conflict("Conflict, cannot remove the default link name of the container")
    try:
        c = sup(request).find(parent)
    except errors.NotFound:
        raise errors.NotFound(f"Cannot get parent {parent} for link name {name}") from None
    links.unlink(c.config["HostConfig"], name)
    write_json(c.dir / "config.json", c.config, mode=0o600)
    return web.Response(status=204)


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    """``docker container prune``: every container not running (created, exited, dead), as dockerd:
    its ``label``, ``label!`` and ``until`` filters honoured; one that cannot go now is skipped."""
    filters = events.parse_filters(request.query.get("filters"))
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise errors.InvalidArgument(f"invalid filter '{key}'")
    until = min((_until(v) for v in filters.get("until") or []), default=None)
    deleted = []
    for c in list(sup(request).containers.values()):
        labels = c.config["Config"].get("Labels") or {}
        if c.running or c.removing or c.state.get("Status") in ("starting", "running", "paused") or (
                not events.labels_match(filters.get("label") or [], labels)) or any(
                events.labels_match([v], labels) for v in filters.get("label!") or []) or (
                until is not None and _epoch(c.config["Created"]) >= until):
            continue
        with contextlib.suppress(errors.Conflict, errors.NotFound):  # started (or removed) meanwhile
            await sup(request).remove(c)
            deleted.append(c.id)
    return web.json_response({"ContainersDeleted": deleted, "SpaceReclaimed": 0})


def _until(value: str) -> float:
    """A prune ``until``: a UNIX time, an RFC 3339 time, or a duration before now (``24h``)."""
    import time

    from minidocker.build.dockerfile import parse_duration

    with contextlib.suppress(ValueError):
        return float(value)
    with contextlib.suppress(ValueError, KeyError):
        return _epoch(value)
    try:
        return time.time() - parse_duration(value) / 1e9
    except Exception:
        raise errors.InvalidArgument(f"invalid filter 'until={value}'") from None


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    c = container(request)
    h, w = _int(request, "h") or 0, _int(request, "w") or 0
    if c.running:
        with contextlib.suppress(errors.NotRunning, OSError):
            await sup(request).ask(c, {"op": "resize", "h": h, "w": w})
    return web.Response(status=200)


# --8<-- [start:logs]
# --8<-- [start:logs_part1]
@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    """The json-file log, framed like attach output; with ``follow`` until the container stops."""
    c = container(request)
    streams = {"stdout": flag(request, "stdout"), "stderr": flag(request, "stderr")}
    if not any(streams.values()):
        raise errors.InvalidArgument("You must choose at least one stream")
    tail = request.query.get("tail", "all")
    count = None if tail in ("all", "") or not tail.lstrip("-").isdigit() or int(tail) < 0 else int(tail)
# --8<-- [end:logs_part1]
    since = parse_time(request.query.get("since"), "since")  # Unix seconds, as the CLI sends; or RFC 3339
    until = parse_time(request.query.get("until"), "until")
    stamps = flag(request, "timestamps")

    # --8<-- [start:logs_part2]
    def render(entries: list[dict]) -> bytes:
    # --8<-- [end:logs_part2]
        return render_log(entries, streams, c.tty, since=since, until=until, timestamps=stamps)

    # --8<-- [start:logs_part3]
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.raw-stream" if c.tty
                                           else "application/vnd.docker.multiplexed-stream"})
    await response.prepare(request)
    path = c.dir / "json.log"
    entries, offset = tail_entries(path, count)
    await response.write(render(entries))
    while flag(request, "follow") and not c.removed.is_set() and not (until and time.time() > until):
        live = c.running or c.state.get("Status") == "starting"
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:
                    offset = 0  # rotated
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            break
        whole = data.rfind(b"\n") + 1
        if whole:
            offset += whole
            await response.write(render(parse_lines(data[:whole])))
        elif not live:
            break
        else:
            await asyncio.sleep(0.05)
    await response.write_eof()
    return response
    # --8<-- [end:logs_part3]
# --8<-- [end:logs]


def _epoch(stamp: str) -> float:
    from minidocker.daemon.containers import _seconds

    return _seconds(stamp)
