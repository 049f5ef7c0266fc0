"""Chapter 13: making the daemon's state match the project, through the API alone.

``up`` is a *convergence*: read what exists (the objects labelled ``com.docker.compose.project=NAME``),
compare it with the file, and change only the difference. For each service, in dependency order:
its image is there (pulled or built), then each of its ``replicas`` containers is kept if its
``config-hash`` label equals the service's hash (and its image is the same), else recreated, which
recreates what depends on it too; a kept container that is not running is started. Before a
service starts, each ``depends_on`` condition is waited for: ``service_started``,
``service_healthy`` (``State.Health.Status`` of inspect) or ``service_completed_successfully`` (the
container's exit code, from ``/wait``).

Nothing half made: everything is checked before anything is created (the file, the images), and if
``up`` fails afterwards (a port already taken, a dependency unhealthy) what *this* ``up`` created is
removed again before the error is reported. Compose itself leaves them for ``down``; we prefer an
``up`` that either succeeds or leaves the state as it found it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from minidocker.client.client import APIError, Client
from minidocker.compose.loader import ComposeError
from minidocker.compose.model import (
    COMPOSE_VERSION,
    HASH,
    NETWORK,
    NUMBER,
    ONEOFF,
    PROJECT,
    SERVICE,
    VERSION,
    VOLUME,
    Project,
    Service,
)

__all__ = ["build", "containers", "down", "up"]


def _filters(project: str, *more: str) -> dict[str, str]:
    return {"filters": json.dumps({"label": [f"{PROJECT}={project}", *more]})}


def containers(client: Client, project: str, service: str | None = None, oneoff: bool | None = False,
               stopped: bool = True) -> list[dict[str, Any]]:
    """The project's containers (summaries from ``/containers/json``), by service and number."""
    found = client.json("GET", "/containers/json", {"all": stopped, **_filters(project)})
    labels = [(c, c.get("Labels") or {}) for c in found]
    kept = [c for c, lab in labels if lab.get(PROJECT) == project  # a daemon ignoring filters
            and (service is None or lab.get(SERVICE) == service)
            and (oneoff is None or (lab.get(ONEOFF, "False") == "True") == oneoff)]
    return sorted(kept, key=lambda c: (c["Labels"].get(SERVICE, ""), int(c["Labels"].get(NUMBER, 0) or 0)))


def _labelled(items: list[dict[str, Any]], project: str) -> list[dict[str, Any]]:
    return [i for i in items if (i.get("Labels") or {}).get(PROJECT) == project]


class Run:
    """One ``up``: what it created, to undo on failure, and how it reports."""

    def __init__(self, client: Client, project: Project, out: Any = None) -> None:
        self.client, self.project = client, project
        self.out = out or sys.stderr
        self.created: list[tuple[str, str]] = []  # (kind, name or id), in order

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def undo(self) -> None:
        for kind, name in reversed(self.created):
            with contextlib.suppress(APIError, OSError):
                if kind == "container":
                    self.client.request("DELETE", f"/containers/{name}", {"force": True, "v": True}).read()
                elif kind == "network":
                    self.client.request("DELETE", f"/networks/{name}").read()
                elif kind == "volume":
                    self.client.request("DELETE", f"/volumes/{name}").read()
        self.created.clear()

    # --- networks and volumes -----------------------------------------------------------------------
    def networks(self) -> None:
        existing = {n["Name"]: n for n in self.client.json("GET", "/networks") or []}
        for key in self.project.used_networks():
            spec, name = self.project.networks.get(key) or {}, self.project.network_name(key)
            if spec.get("external"):
                if name not in existing:
                    raise ComposeError(f"networks.{key}: network {name} declared as external, but could "
                                       "not be found")
                continue
            if name in existing:
                continue
            body = {"Name": name, "Driver": spec.get("driver") or "bridge", "CheckDuplicate": True,
                    "Internal": bool(spec.get("internal")), "Attachable": bool(spec.get("attachable")),
                    "Options": spec.get("driver_opts") or {},
                    "Labels": {**_str_labels(spec.get("labels")), PROJECT: self.project.name,
                               NETWORK: key, VERSION: COMPOSE_VERSION}}
            if (spec.get("ipam") or {}).get("config"):
                body["IPAM"] = {"Driver": "default", "Config": [
                    {k.capitalize() if k != "ip_range" else "IPRange": v for k, v in c.items()}
                    for c in spec["ipam"]["config"]]}
            self.say(f" Network {name}  Creating")
            self.client.json("POST", "/networks/create", None, body)
            self.created.append(("network", name))
            self.say(f" Network {name}  Created")

    def volumes(self) -> None:
        existing = {v["Name"] for v in (self.client.json("GET", "/volumes") or {}).get("Volumes") or []}
        used = {m["source"] for s in self.project.services.values() for m in self.project.mounts(s)
                if m["type"] == "volume" and m["source"]}
        for key in [k for k in self.project.volumes if k in used]:
            spec, name = self.project.volumes[key], self.project.volume_name(key)
            if spec.get("external"):
                if name not in existing:
                    raise ComposeError(f"volumes.{key}: external volume {name!r} not found")
                continue
            if name in existing:
                continue
            body = {"Name": name, "Driver": spec.get("driver") or "local",
                    "DriverOpts": spec.get("driver_opts") or {},
                    "Labels": {**_str_labels(spec.get("labels")), PROJECT: self.project.name, VOLUME: key,
                               VERSION: COMPOSE_VERSION}}
            self.say(f" Volume {name}  Creating")
            self.client.json("POST", "/volumes/create", None, body)
            self.created.append(("volume", name))
            self.say(f" Volume {name}  Created")

    # --- images -------------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        try:
            return self.client.json("GET", f"/images/{ref}/json")["Id"]
        except APIError as e:
            if e.status == 404:
                return None
            raise

    def ensure_image(self, service: Service, build_first: bool = False) -> None:
        ref = service.image(self.project.name)
        if service.config.get("build") and (build_first or self.image_id(ref) is None):
            build(self.client, self.project, service, self.out)
            return
        if self.image_id(ref) is None:
            self.say(f" {service.name} Pulling")
            try:
                pull(self.client, ref)
            except APIError as e:
                raise ComposeError(f"services.{service.name}.image: {ref}: {e}") from None
            self.say(f" {service.name} Pulled")

    # --- containers ---------------------------------------------------------------------------------
    def create(self, service: Service, number: int) -> str:
        name = self.project.container_name(service, number)
        body = self.project.create_body(service, number)
        self.say(f" Container {name}  Creating")
        try:
            cid = self.client.json("POST", "/containers/create", {"name": name}, body)["Id"]
        except APIError as e:
            raise ComposeError(f"services.{service.name}: {e}") from None
        self.created.append(("container", cid))
        networks = self.project.service_networks(service)
        for key, settings in list(networks.items())[1:]:  # the first was given at create
            self.client.request("POST", f"/networks/{self.project.network_name(key)}/connect", None, {
                "Container": cid, "EndpointConfig": self.project.endpoint(service, key, settings)}).read()
        self.say(f" Container {name}  Created")
        return cid

    def start(self, service: Service, cid: str, name: str) -> None:
        self.say(f" Container {name}  Starting")
        try:
            self.client.request("POST", f"/containers/{cid}/start").read()
        except APIError as e:
            text = str(e)
            field = ".ports" if any(w in text.lower() for w in ("port", "address already in use")) else ""
            raise ComposeError(f"services.{service.name}{field}: {text}") from None
        self.say(f" Container {name}  Started")

    def wait_for(self, service: Service, timeout: float = 120) -> None:
        """Each of ``service``'s ``depends_on`` conditions, met or :class:`ComposeError`."""
        for dependency, spec in service.depends_on.items():
            if dependency not in self.project.services:
                continue
            condition = spec["condition"]
            for c in containers(self.client, self.project.name, dependency):
                name = c["Names"][0].lstrip("/")
                if condition == "service_healthy":
                    self.say(f" Container {name}  Waiting")
                    deadline = time.monotonic() + timeout
                    while True:
                        state = self.client.json("GET", f"/containers/{c['Id']}/json")["State"]
                        health = (state.get("Health") or {}).get("Status")
                        if health is None:
                            raise ComposeError(f"services.{service.name}.depends_on.{dependency}: container "
                                               f"{name} has no healthcheck configured")
                        if health == "healthy":
                            break
                        if health == "unhealthy" or not state.get("Running"):
                            raise ComposeError(f"services.{service.name}.depends_on.{dependency}: "
                                               f"dependency failed to start: container {name} is unhealthy")
                        if time.monotonic() > deadline:
                            raise ComposeError(f"services.{service.name}.depends_on.{dependency}: container "
                                               f"{name} not healthy after {timeout:.0f}s")
                        time.sleep(0.2)
                    self.say(f" Container {name}  Healthy")
                elif condition == "service_completed_successfully":
                    self.say(f" Container {name}  Waiting")
                    code = self.client.json("POST", f"/containers/{c['Id']}/wait")["StatusCode"]
                    if code != 0:
                        raise ComposeError(f"services.{service.name}.depends_on.{dependency}: service "
                                           f"{dependency!r} didn't complete successfully: exit {code}")
                    self.say(f" Container {name}  Exited")


def _str_labels(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return {k: v for k, _, v in (str(i).partition("=") for i in value or [])}


def pull(client: Client, ref: str) -> None:
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    for _ in client.stream_json("POST", "/images/create", {"fromImage": name, "tag": tag or "latest"}):
        pass


def context_tar(directory: Path, dockerfile: str) -> io.BytesIO:
    """The build context as a tar, the whole directory (the daemon applies ``.dockerignore``, as
    chapter 08 explains; compose cannot import chapter 08, it is a client of the API only)."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
        outside = Path(dockerfile)
        if outside.is_absolute() and not outside.is_relative_to(directory):
            tar.add(outside, arcname=".compose.Dockerfile", recursive=False)
    body.seek(0)
    return body


def build(client: Client, project: Project, service: Service, out: Any = None, no_cache: bool = False) -> str:
    """``POST /build`` for a service's ``build``: context, dockerfile, args, target; the image ID."""
    spec = service.config["build"]
    spec = {"context": spec} if isinstance(spec, str) else dict(spec)
    where = f"services.{service.name}.build"
    directory = (project.working_dir / str(spec.get("context", "."))).resolve()
    if not directory.is_dir():
        raise ComposeError(f"{where}.context: {directory}: no such directory")
    dockerfile = str(spec.get("dockerfile") or "Dockerfile")
    body = context_tar(directory, dockerfile)
    if Path(dockerfile).is_absolute() and not Path(dockerfile).is_relative_to(directory):
        dockerfile = ".compose.Dockerfile"
    elif Path(dockerfile).is_absolute():
        dockerfile = str(Path(dockerfile).relative_to(directory))
    args = spec.get("args") or {}
    if isinstance(args, list):
        args = {k: v for k, _, v in (str(a).partition("=") for a in args)}
    ref = service.image(project.name)
    labels = {**_str_labels(spec.get("labels")), PROJECT: project.name, SERVICE: service.name}
    print(f" {service.name} Building", file=out or sys.stderr, flush=True)
    response = client.request("POST", "/build", {
        "t": ref, "dockerfile": dockerfile, "buildargs": json.dumps({k: str(v) for k, v in args.items()}),
        "labels": json.dumps(labels), "target": spec.get("target"), "rm": True, "nocache": no_cache},
        body=body.getvalue(), headers={"Content-Type": "application/x-tar"})
    image = ""
    for line in response:
        if not line.strip():
            continue
        event = json.loads(line)
        if "error" in event:
            raise ComposeError(f"{where}: {event['error'].strip()}")
        image = (event.get("aux") or {}).get("ID", image)
    print(f" {service.name} Built", file=out or sys.stderr, flush=True)
    return image


# --8<-- [start:up]
# --8<-- [start:up_part1]
def up(client: Client, project: Project, *, services: list[str] | None = None, build_first: bool = False,
       force_recreate: bool = False, no_deps: bool = False, out: Any = None) -> list[str]:
    """Converge the daemon on ``project`` (its ``services``, with their dependencies unless
    ``no_deps``); return the IDs of the containers it created."""
    run = Run(client, project, out)
    wanted = _selected(project, services, no_deps)
    try:
        for name in wanted:  # images first: a missing one fails before anything is created
            run.ensure_image(project.services[name], build_first)
        run.networks()
        run.volumes()
        recreated: set[str] = set()
        for name in wanted:
            service = project.services[name]
            image = run.image_id(service.image(project.name))
            # A recreated dependency recreates its dependents (they may hold its old address)
            stale = force_recreate or any(d in recreated for d in service.depends_on)
            existing = containers(client, project.name, name)
            for c in existing:
                number = int(c["Labels"].get(NUMBER, 0) or 0)
                if (stale or c["Labels"].get(HASH) != service.hash or c.get("ImageID", image) != image
                        or number > service.replicas):
                    cname = c["Names"][0].lstrip("/")
                    run.say(f" Container {cname}  Recreate" if number <= service.replicas
                            else f" Container {cname}  Removing")
                    client.request("DELETE", f"/containers/{c['Id']}", {"force": True}).read()
                    recreated.add(name)
            kept = {int(c["Labels"].get(NUMBER, 0) or 0): c for c in containers(client, project.name, name)}
            run.wait_for(service)
            for number in range(1, service.replicas + 1):
                if number in kept:
                    # --8<-- [end:up_part1]
                    c = kept[number]
                    cname = c["Names"][0].lstrip("/")
                    if c["State"] != "running":
                        run.start(service, c["Id"], cname)
                    else:
                        run.say(f" Container {cname}  Running")
                    # --8<-- [start:up_part2]
                    continue
                cid = run.create(service, number)
                run.start(service, cid, project.container_name(service, number))
        return [cid for kind, cid in run.created if kind == "container"]
    except BaseException:
        run.undo()
        raise
# --8<-- [end:up_part2]
# --8<-- [end:up]


def _selected(project: Project, services: list[str] | None, no_deps: bool) -> list[str]:
    """The services to bring up, in dependency order: those named (and what they need), or all."""
    for name in services or []:
        if name not in project.services:
            raise ComposeError(f"no such service: {name}")
    if not services:
        return list(project.services)
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name in wanted:
            return
        wanted.add(name)
        if not no_deps:
            for d in project.services[name].depends_on:
                if d in project.services:
                    add(d)

    for name in services:
        add(name)
    return [n for n in project.services if n in wanted]


def down(client: Client, project: Project, *, volumes: bool = False, rmi: str | None = None,
         timeout: int | None = None, out: Any = None) -> None:
    """Remove the project's containers and networks (and its volumes with ``volumes``, its images with
    ``rmi``: ``local`` those built without a name of their own, ``all`` every service's)."""
    out = out or sys.stderr
    found = containers(client, project.name, oneoff=None)
    # In parallel, as Compose does, but a service only once what depends on it is gone
    done = {c["Id"]: threading.Event() for c in found}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def say(text: str) -> None:  # one whole line at a time, whichever thread says it
        with lock:
            print(text, file=out, flush=True)

    def remove(c: dict[str, Any]) -> None:
        service = c["Labels"].get(SERVICE, "")
        try:
            for other in found:
                dependent = project.services.get(other["Labels"].get(SERVICE, ""))
                if dependent is not None and service in dependent.depends_on and other is not c:
                    done[other["Id"]].wait()
            name = c["Names"][0].lstrip("/")
            say(f" Container {name}  Stopping")
            with contextlib.suppress(APIError):
                client.request("POST", f"/containers/{c['Id']}/stop",
                               {} if timeout is None else {"t": timeout}).read()
            client.request("DELETE", f"/containers/{c['Id']}", {"force": True}).read()
            say(f" Container {name}  Removed")
        except BaseException as e:  # reported once every thread is done
            errors.append(e)
        finally:
            done[c["Id"]].set()

    threads = [threading.Thread(target=remove, args=(c,), daemon=True) for c in reversed(found)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for n in _labelled(client.json("GET", "/networks", _filters(project.name)) or [], project.name):
        print(f" Network {n['Name']}  Removing", file=out, flush=True)
        with contextlib.suppress(APIError):
            client.request("DELETE", f"/networks/{n['Id']}").read()
        print(f" Network {n['Name']}  Removed", file=out, flush=True)
    if volumes:
        found = (client.json("GET", "/volumes", _filters(project.name)) or {}).get("Volumes") or []
        for v in _labelled(found, project.name):
            with contextlib.suppress(APIError):
                client.request("DELETE", f"/volumes/{v['Name']}").read()
                print(f" Volume {v['Name']}  Removed", file=out, flush=True)
    if rmi:
        refs = {s.image(project.name) for s in [*project.services.values(), *project.disabled.values()]
                if rmi == "all" or not s.config.get("image")}
        for ref in sorted(refs):
            with contextlib.suppress(APIError):
                client.request("DELETE", f"/images/{ref}").read()
                print(f" Image {ref}  Removed", file=out, flush=True)

