"""Chapter 10: the system and volume endpoints: ``_ping``, ``version``, ``info``, ``system/df``, volumes.

Clients decide a lot from these small answers. The ``docker`` CLI sends ``HEAD /_ping`` before every
command and takes the API version to speak from the ``Api-Version`` header; docker-py starts with
``GET /version`` and compares ``GET /_ping``'s body with ``OK``; ``docker info`` needs a ``Swarm``
object even on a daemon without swarm.

Example::

    $ curl --unix-socket /run/minidocker.sock http://d/_ping
    OK
"""

from __future__ import annotations

import os
import platform
import time

from aiohttp import web

from minidocker import __version__
from minidocker.cgroups.cgroup import cgroup_mode
from minidocker.core import errors
from minidocker.core.api import API_VERSION, MIN_API_VERSION
from minidocker.core.paths import state_dir
from minidocker.daemon import events, volumes
from minidocker.daemon.routes.containers import json_body, sup

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, content_type="text/plain", headers={
        "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    uname = os.uname()
    return web.json_response({
        "Platform": {"Name": "minidocker"}, "Version": __version__, "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
        "Os": "linux", "Arch": _arch(), "KernelVersion": uname.release, "BuildTime": "",
        "Components": [{"Name": "Engine", "Version": __version__, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": _arch(),
            "KernelVersion": uname.release}}]})


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    containers = list(sup(request).containers.values())
    running, paused = sum(c.running for c in containers), sum(c.paused for c in containers)
    images = request.app["images"].list_images()
    with open("/proc/meminfo") as f:
        mem_total = int(f.readline().split()[1]) * 1024
    uname = os.uname()
    return web.json_response({
        "ID": request.app["daemon_id"], "Containers": len(containers), "ContainersRunning": running - paused,
        "ContainersPaused": paused, "ContainersStopped": len(containers) - running, "Images": len(images),
        "Driver": request.app["images"].driver, "DriverStatus": [], "DockerRootDir": str(state_dir()),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "PidsLimit": True, "IPv4Forwarding": True, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": _cgroup_version(),
        "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1, "MemTotal": mem_total,
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": {
            "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "Mirrors": request.app["config"].get("registry-mirrors", [])},
        "Name": uname.nodename, "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {name: r.describe() for name, r in request.app["runtimes"].by_name.items()},
        "DefaultRuntime": request.app["runtimes"].default,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns",
                            *(["name=userns"] if request.app["config"].get("userns-remap") else [])],
        "Warnings": []})


def _cgroup_version() -> str:
    """As Docker says it: "2" on a v2-only host, "1" on v1 and hybrid ones (from the mount table)."""
    return "2" if cgroup_mode() == "v2" else "1"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


# ---- disk usage -------------------------------------------------------------------------------
def _disk_usage(path: os.PathLike | str) -> int:
    """The bytes of the regular files under ``path`` (hard links once, symlinks not followed)."""
    total, seen, todo = 0, set(), [str(path)]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                todo.append(entry.path)
            elif entry.is_file(follow_symlinks=False) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


@routes.get("/system/df")
async def system_df(request: web.Request) -> web.Response:
    """``docker system df``: images, containers' writable layers, volumes and their users.

    Sizes are counted by walking the directories (as dockerd's ``directory.Size``), in a worker
    thread; ``type=`` (API 1.42) limits the answer to some of the four kinds.
    """
    import asyncio

    kinds = set(request.query.getall("type", [])) or {"container", "image", "volume", "build-cache"}
    if kinds - {"container", "image", "volume", "build-cache"}:
        raise errors.InvalidArgument(f"unknown object type(s): {', '.join(sorted(kinds))}")
    images_api, containers = request.app["images"], list(sup(request).containers.values())

    def measure() -> dict:
        answer: dict = {}
        if "image" in kinds:
            layers = images_api.store.layers
            answer["LayersSize"] = sum(_disk_usage(d) for d in (layers.root / "sha256").iterdir())
            found = images_api.list_images()
            for image in found:
                image["Containers"] = sum(c.config["Image"] == image["Id"] for c in containers)
                image.setdefault("SharedSize", -1)
            answer["Images"] = found
        if "container" in kinds:
            answer["Containers"] = []
            for c in containers:
                summary = c.summary()
                try:
                    summary["SizeRw"] = _disk_usage(images_api.container_fs(c.id).upper)
                except errors.EngineError:
                    summary["SizeRw"] = 0
                answer["Containers"].append(summary)
        if "volume" in kinds:
            users = [m.get("Name") for c in containers for m in c.config.get("Mounts", [])]
            answer["Volumes"] = [{**v, "UsageData": {"Size": _disk_usage(v["Mountpoint"]),
                                                     "RefCount": users.count(v["Name"])}}
                                 for v in volumes.list_volumes()]
        if "build-cache" in kinds:
            answer["BuildCache"] = []
        return answer

    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, measure))


# ---- volumes ----------------------------------------------------------------------------------
@routes.post("/volumes/create")
async def volume_create(request: web.Request) -> web.Response:
    body = await json_body(request, {}) or {}
    if not isinstance(body, dict):
        raise errors.InvalidArgument("invalid volume config: expected a JSON object")
    if not isinstance(body.get("Name") or "", str) or not isinstance(body.get("Labels") or {}, dict):
        raise errors.InvalidArgument("invalid volume config: Name must be a string and Labels an object")
    name = body.get("Name")
    volumes.check_driver(name or "", body.get("Driver"), body.get("DriverOpts"))
    new = not name or name not in {v["Name"] for v in volumes.list_volumes()}
    info = volumes.create(name, body.get("Labels"))
    if new:
        events.emit(request.app, "volume", "create", info["Name"], {"driver": info["Driver"]})
    return web.json_response(info, status=201)


@routes.get("/volumes")
async def volume_list(request: web.Request) -> web.Response:
    filters = events.parse_filters(request.query.get("filters"))
    for key in filters:
        if key not in ("dangling", "driver", "label", "name"):
            raise errors.InvalidArgument(f"invalid filter '{key}'")
    used = _used_volumes(request)
    found = [v for v in volumes.list_volumes() if _volume_matches(v, filters, used)]
    return web.json_response({"Volumes": found, "Warnings": []})


def _used_volumes(request: web.Request) -> set[str]:
    return {m.get("Name") for c in sup(request).containers.values() for m in c.config.get("Mounts", [])}


def _volume_matches(volume: dict, filters: dict[str, list[str]], used: set[str]) -> bool:
    """``docker volume ls --filter``: name (a substring), driver, label (all of them), dangling."""
    if filters.get("name") and not any(v in volume["Name"] for v in filters["name"]):
        return False
    if filters.get("driver") and volume.get("Driver") not in filters["driver"]:
        return False
    for value in filters.get("dangling") or []:
        if (value.lower() in ("1", "true")) != (volume["Name"] not in used):
            return False
    return events.labels_match(filters.get("label") or [], volume.get("Labels") or {})


@routes.get("/volumes/{name}")
async def volume_inspect(request: web.Request) -> web.Response:
    return web.json_response(volumes.inspect(request.match_info["name"]))


@routes.delete("/volumes/{name}")
async def volume_remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    users = [c.id for c in sup(request).containers.values()
             if any(m.get("Name") == name for m in c.config.get("Mounts", []))]
    if users:
        raise errors.Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
    volumes.remove(name)
    events.emit(request.app, "volume", "destroy", name, {"driver": "local"})
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def volume_prune(request: web.Request) -> web.Response:
    used = _used_volumes(request)
    filters = {k: v for k, v in events.parse_filters(request.query.get("filters")).items() if k == "label"}
    deleted = [v["Name"] for v in volumes.list_volumes() if v["Name"] not in used and
               _volume_matches(v, filters, used)]
    for name in deleted:
        volumes.remove(name)
        events.emit(request.app, "volume", "destroy", name, {"driver": "local"})
    return web.json_response({"VolumesDeleted": deleted, "SpaceReclaimed": 0})
