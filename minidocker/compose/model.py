"""Chapter 13: the project: services resolved, their config hashes, their order, their containers' config.

A Compose *project* is a name and what the file declares under it. Every object made for it is
named after the project (``<project>-<service>-<n>`` containers, as Compose v2 names them; v1 used
``_``; ``<project>_default`` and ``<project>_<name>`` networks and volumes) and labelled with it, so
the project can be found again from the daemon's state alone: ``com.docker.compose.project=NAME``.

Which containers are up to date? Compose does not diff a container's config against the file: it
stores a hash of the service's resolved config in a label (``com.docker.compose.config-hash``) and
compares hashes. The hash leaves out what does not change a container (``build``, ``depends_on``,
``profiles``, the replica count), so scaling or a new dependency recreates nothing.

The services come up in dependency order (``depends_on``); a cycle is an error before anything is
made.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidocker.compose.loader import ComposeError, active

__all__ = ["Project", "Service", "config_hash", "duration_ns", "order", "project_name"]

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
VERSION = "com.docker.compose.version"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
COMPOSE_VERSION = "2.0.0"  # the version our labels claim: the Compose file format we follow (v2's)


def project_name(explicit: str | None, env: dict[str, str], document: dict[str, Any],
                 project_dir: Path) -> str:
    """``-p``, else ``$COMPOSE_PROJECT_NAME``, else the file's ``name:``, else the directory's name;
    lower-cased, with what Compose does not allow dropped."""
    raw = explicit or env.get("COMPOSE_PROJECT_NAME") or document.get("name") or project_dir.name
    name = re.sub(r"[^a-z0-9_-]", "", raw.lower())
    name = name.lstrip("_-")
    if not name:
        raise ComposeError(f"project name {raw!r} must contain a lowercase letter or digit")
    return name


# --8<-- [start:config_hash]
def config_hash(config: dict[str, Any]) -> str:
    """Compose's config hash: SHA-256 of the service's config, minus what does not make a container."""
    kept = {k: v for k, v in config.items() if k not in ("build", "pull_policy", "scale", "depends_on",
                                                          "profiles")}
    if isinstance(kept.get("deploy"), dict):
        kept["deploy"] = {k: v for k, v in kept["deploy"].items() if k != "replicas"}
        if not kept["deploy"]:
            del kept["deploy"]
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()
# --8<-- [end:config_hash]


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration_ns(text: Any, where: str) -> int:
    """``1m30s``, ``10s``, ``500ms`` (Go's durations) -> nanoseconds."""
    if isinstance(text, int | float):
        return int(text * 10**9)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text).strip():
        raise ComposeError(f"{where}: invalid duration {text!r}: use a number and a unit, like 30s or 1m30s")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def size_bytes(text: Any, where: str) -> int:
    """``512m``, ``1g``, ``1024`` -> bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg]?)i?b?", str(text).strip().lower())
    if not m:
        raise ComposeError(f"{where}: invalid size {text!r}: use a number and b, k, m or g")
    return int(float(m.group(1)) * 1024 ** "bkmg".index(m.group(2) or "b"))


@dataclass
class Service:
    """One service: its resolved config, what it depends on and how, its hash."""

    name: str
    config: dict[str, Any]
    depends_on: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        deploy = self.config.get("deploy") or {}
        value = deploy.get("replicas", self.config.get("scale", 1))
        return int(value if value is not None else 1)

    @property
    def hash(self) -> str:
        return config_hash(self.config)

    def image(self, project: str) -> str:
        """The image's name: ``image:``, else the one Compose v2 gives a built one: PROJECT-SERVICE."""
        return self.config.get("image") or f"{project}-{self.name}"


def _depends_on(name: str, value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        return {str(d): {"condition": "service_started", "required": True} for d in value}
    return {str(d): {"condition": (spec or {}).get("condition", "service_started"),
                     "required": (spec or {}).get("required", True)} for d, spec in (value or {}).items()}


# exercise 13.2: Order the services after what they depend on, refusing a cycle
# hint: a depth-first walk in sorted name order: a service is "visiting" while its dependencies are
#   visited, "done" (and appended) after them; meeting a "visiting" one again is a cycle: name its path,
#   "services.a.depends_on: dependency cycle detected: a -> b -> a".
# --8<-- [start:order]
def order(services: dict[str, Service]) -> list[str]:
    """The services' names, each after what it depends on; a cycle raises :class:`ComposeError`."""
    done: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name):], name]
            raise ComposeError(f"services.{cycle[0]}.depends_on: dependency cycle detected: "
                               + " -> ".join(cycle))
        state[name] = "visiting"
        for dependency in services[name].depends_on:
            if dependency in services:
                visit(dependency, [*path, name])
        state[name] = "done"
        done.append(name)

    for name in sorted(services):
        visit(name, [])
    return done
# --8<-- [end:order]


@dataclass
class Project:
    """The resolved project: its name, services (in dependency order), networks and volumes."""

    name: str
    services: dict[str, Service]
    networks: dict[str, dict[str, Any]]
    volumes: dict[str, dict[str, Any]]
    working_dir: Path
    config_files: list[Path]
    document: dict[str, Any]
    disabled: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def from_document(cls, document: dict[str, Any], facts: dict[str, Any], name: str | None = None,
                      named: list[str] | None = None) -> Project:
        project = project_name(name, facts["env"], document, facts["project_dir"])
        every = {n: Service(n, dict(c or {}), _depends_on(n, (c or {}).get("depends_on")))
                 for n, c in (document.get("services") or {}).items()}
        for service in every.values():
            for dependency, spec in service.depends_on.items():
                if dependency not in every and spec["required"]:
                    raise ComposeError(f"services.{service.name}.depends_on: service {service.name!r} "
                                       f"depends on undefined service {dependency!r}")
        enabled = {n: s for n, s in every.items() if active(s.config, facts["profiles"], named, n)}
        for service in list(enabled.values()):  # a named service's dependencies come too
            for dependency in service.depends_on:
                if dependency in every and dependency not in enabled:
                    enabled[dependency] = every[dependency]
        sequence = order(enabled)
        networks = {k: dict(v or {}) for k, v in (document.get("networks") or {}).items()}
        volumes = {k: dict(v or {}) for k, v in (document.get("volumes") or {}).items()}
        self = cls(project, {n: enabled[n] for n in sequence}, networks, volumes, facts["project_dir"],
                   facts["files"], document, {n: s for n, s in every.items() if n not in enabled})
        for service in self.services.values():
            self.check(service)
        return self

    # --- names -------------------------------------------------------------------------------------
    def network_name(self, key: str) -> str:
        spec = self.networks.get(key) or {}
        if spec.get("name"):
            return spec["name"]
        if spec.get("external"):
            return key
        return f"{self.name}_{key}"

    def volume_name(self, key: str) -> str:
        spec = self.volumes.get(key) or {}
        if spec.get("name"):
            return spec["name"]
        if spec.get("external"):
            return key
        return f"{self.name}_{key}"

    def container_name(self, service: Service, number: int) -> str:
        return service.config.get("container_name") or f"{self.name}-{service.name}-{number}"

    def service_networks(self, service: Service) -> dict[str, dict[str, Any]]:
        """The networks (file keys) a service joins, each with its settings (aliases...)."""
        value = service.config.get("networks")
        if service.config.get("network_mode"):
            return {}
        if value is None:
            return {"default": {}}
        if isinstance(value, list):
            return {str(n): {} for n in value}
        return {str(n): dict(v or {}) for n, v in value.items()}

    def used_networks(self) -> list[str]:
        keys: list[str] = []
        for service in self.services.values():
            keys += [k for k in self.service_networks(service) if k not in keys]
        return keys

    def labels(self) -> dict[str, str]:
        return {PROJECT: self.name, WORKING_DIR: str(self.working_dir),
                CONFIG_FILES: ",".join(str(f) for f in self.config_files), VERSION: COMPOSE_VERSION}

    # --- checks and the container's config ---------------------------------------------------------
    def check(self, service: Service) -> None:
        """What the schema cannot see: undefined networks and volumes, an image or a build."""
        where = f"services.{service.name}"
        if not service.config.get("image") and not service.config.get("build"):
            raise ComposeError(f"{where}: has neither an image nor a build context specified")
        for key in self.service_networks(service):
            if key != "default" and key not in self.networks:
                raise ComposeError(f"{where}.networks: service {service.name!r} refers to undefined "
                                   f"network {key!r}")
        for i, mount in enumerate(self.mounts(service)):
            if mount["type"] == "volume" and mount["source"] and mount["source"] not in self.volumes:
                raise ComposeError(f"{where}.volumes[{i}]: service {service.name!r} refers to undefined "
                                   f"volume {mount['source']!r}")

    def mounts(self, service: Service) -> list[dict[str, Any]]:
        """The service's ``volumes`` in the long syntax: type, source, target, read_only."""
        found = []
        for item in service.config.get("volumes") or []:
            if isinstance(item, dict):
                found.append({"type": item.get("type", "volume"), "source": item.get("source", ""),
                              "target": item["target"], "read_only": bool(item.get("read_only"))})
                continue
            parts = str(item).split(":")
            if len(parts) == 1:
                found.append({"type": "volume", "source": "", "target": parts[0], "read_only": False})
                continue
            source, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "rw")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            found.append({"type": kind, "source": source, "target": target,
                          "read_only": "ro" in mode.split(",")})
        return found

    def binds(self, service: Service) -> tuple[list[str], dict[str, dict]]:
        """``HostConfig.Binds`` (named volumes by their project name, bind paths made absolute) and
        the anonymous volumes (``Config.Volumes``)."""
        binds, anonymous = [], {}
        for m in self.mounts(service):
            suffix = ":ro" if m["read_only"] else ""
            if m["type"] == "bind":
                source = Path(m["source"]).expanduser()
                source = source if source.is_absolute() else (self.working_dir / source).resolve()
                binds.append(f"{source}:{m['target']}{suffix}")
            elif m["source"]:
                binds.append(f"{self.volume_name(m['source'])}:{m['target']}{suffix}")
            else:
                anonymous[m["target"]] = {}
        return binds, anonymous

    def ports(self, service: Service) -> tuple[dict[str, dict], dict[str, list[dict]]]:
        """``ExposedPorts`` and ``PortBindings`` from ``ports`` (short or long) and ``expose``."""
        exposed: dict[str, dict] = {}
        bindings: dict[str, list[dict]] = {}
        for i, item in enumerate(service.config.get("ports") or []):
            where = f"services.{service.name}.ports[{i}]"
            if isinstance(item, dict):
                target, published = str(item["target"]), str(item.get("published") or "")
                host_ip, proto = str(item.get("host_ip") or ""), item.get("protocol") or "tcp"
            else:
                text, _, proto = str(item).partition("/")
                proto = proto or "tcp"
                parts = text.rsplit(":", 2)
                target = parts[-1]
                published = parts[-2] if len(parts) > 1 else ""
                host_ip = parts[0].strip("[]") if len(parts) > 2 else ""
            if not target.isdigit() or (published and not published.isdigit()):
                raise ComposeError(f"{where}: invalid port {item!r}: use [[HOST_IP:]HOST_PORT:]PORT[/PROTO]")
            key = f"{target}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": published})
        for item in service.config.get("expose") or []:
            number, _, proto = str(item).partition("/")
            exposed[f"{number}/{proto or 'tcp'}"] = {}
        return exposed, bindings

    def healthcheck(self, service: Service) -> dict[str, Any] | None:
        spec = service.config.get("healthcheck")
        if spec is None:
            return None
        where = f"services.{service.name}.healthcheck"
        if spec.get("disable"):
            return {"Test": ["NONE"]}
        test = spec.get("test")
        check: dict[str, Any] = {}
        if isinstance(test, str):
            check["Test"] = ["CMD-SHELL", test]
        elif test:
            check["Test"] = [str(t) for t in test]
        for key, name in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                          ("start_interval", "StartInterval")):
            if spec.get(key) is not None:
                check[name] = duration_ns(spec[key], f"{where}.{key}")
        if spec.get("retries") is not None:
            check["Retries"] = int(spec["retries"])
        return check

    def create_body(self, service: Service, number: int, *, oneoff: bool = False,
                    command: list[str] | None = None, image: str | None = None) -> dict[str, Any]:
        """The body of ``POST /containers/create`` for container ``number`` of ``service``."""
        c, where = service.config, f"services.{service.name}"
        labels = {**self.labels(), SERVICE: service.name, NUMBER: str(number), ONEOFF: str(oneoff),
                  HASH: service.hash, **{str(k): str(v) for k, v in _labels(c.get("labels")).items()}}
        binds, anonymous = self.binds(service)
        exposed, bindings = self.ports(service)
        host: dict[str, Any] = {"Binds": binds, "PortBindings": bindings}
        restart = str(c.get("restart") or "no")
        policy, _, count = restart.partition(":")
        host["RestartPolicy"] = {"Name": "" if policy == "no" else policy,
                                 **({"MaximumRetryCount": int(count)} if count.isdigit() else {})}
        limits = ((c.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if limits.get("memory") or c.get("mem_limit"):
            host["Memory"] = size_bytes(limits.get("memory") or c.get("mem_limit"),
                                        f"{where}.deploy.resources.limits.memory")
        if limits.get("cpus") or c.get("cpus"):
            host["NanoCpus"] = int(float(limits.get("cpus") or c.get("cpus")) * 10**9)
        if c.get("network_mode"):
            host["NetworkMode"] = c["network_mode"]
        for key, name in (("privileged", "Privileged"), ("read_only", "ReadonlyRootfs"),
                          ("cap_add", "CapAdd"), ("cap_drop", "CapDrop"), ("security_opt", "SecurityOpt"),
                          ("init", "Init"), ("dns", "Dns"), ("extra_hosts", "ExtraHosts")):
            if c.get(key) is not None:
                host[name] = c[key]
        body: dict[str, Any] = {
            "Image": image or service.image(self.name), "Labels": labels, "HostConfig": host,
            "Env": [f"{k}={v}" for k, v in (c.get("environment") or {}).items()],
            "ExposedPorts": exposed, "Tty": bool(c.get("tty")), "OpenStdin": bool(c.get("stdin_open")),
            "AttachStdout": False, "AttachStderr": False,
        }
        if anonymous:
            body["Volumes"] = anonymous
        cmd = command if command is not None else c.get("command")
        if cmd is not None:
            body["Cmd"] = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        if c.get("entrypoint") is not None:
            entry = c["entrypoint"]
            body["Entrypoint"] = shlex.split(entry) if isinstance(entry, str) else [str(a) for a in entry]
        for key, name in (("user", "User"), ("working_dir", "WorkingDir"), ("hostname", "Hostname"),
                          ("domainname", "Domainname"), ("stop_signal", "StopSignal")):
            if c.get(key):
                body[name] = str(c[key])
        if (check := self.healthcheck(service)) is not None:
            body["Healthcheck"] = check
        if c.get("stop_grace_period") is not None:  # the daemon's stop waits this long before SIGKILL
            body["StopTimeout"] = duration_ns(c["stop_grace_period"], f"{where}.stop_grace_period") // 10**9
        networks = self.service_networks(service)
        if networks:
            first = next(iter(networks))
            host["NetworkMode"] = self.network_name(first)
            body["NetworkingConfig"] = {"EndpointsConfig": {
                self.network_name(first): self.endpoint(service, first, networks[first], oneoff)}}
        return body

    def endpoint(self, service: Service, key: str, settings: dict[str, Any], oneoff: bool = False) -> dict:
        """A network's endpoint settings: the service's name is an alias (its DNS name), with the
        file's own aliases."""
        aliases = [] if oneoff else [service.name]
        aliases += [a for a in settings.get("aliases") or [] if a not in aliases]
        found: dict[str, Any] = {"Aliases": aliases}
        if settings.get("ipv4_address"):
            found["IPAMConfig"] = {"IPv4Address": settings["ipv4_address"]}
        return found


def _labels(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: "" if v is None else v for k, v in value.items()}
    return {k: v for k, _, v in (str(i).partition("=") for i in value or [])}
