"""Chapter 10: legacy links (``docker run --link other:db``): another container's address, by name.

Before user-defined networks had DNS, ``--link`` was how one container found another on the
default bridge: at start, the linking container gets the other's address in its ``/etc/hosts``
(under the alias, the other's name and its host name) and Docker's environment variables that
describe it (``DB_PORT=tcp://172.17.0.2:5432``, ``DB_PORT_5432_TCP_ADDR``, ``DB_NAME=/web/db``,
``DB_ENV_POSTGRES_USER`` ...). Written once, at start: if the other container restarts with
another address, the link is stale, which is one reason user-defined networks and their DNS
replaced it. A link is recorded as dockerd shows it: ``HostConfig.Links = ["/db1:/web/db"]``.

Example::

    >>> normalize(["db1:db", "cache"], "web", lambda name: name)
    ['/db1:/web/db', '/cache:/web/cache']
    >>> environment("db", "/web/db", "172.17.0.2", {"5432/tcp": {}}, ["POSTGRES_USER=app", "PATH=/bin"])[:2]
    ['DB_PORT=tcp://172.17.0.2:5432', 'DB_PORT_5432_TCP=tcp://172.17.0.2:5432']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minidocker.core import errors

__all__ = ["bridge_address", "environment", "normalize", "parse", "resolve", "unlink"]


def parse(link: str) -> tuple[str, str]:
    """``"other:alias"``, ``"other"`` or dockerd's ``"/other:/me/alias"`` -> ``("other", "alias")``."""
    name, _, alias = str(link).partition(":")
    name, alias = name.strip("/"), alias.rstrip("/").rpartition("/")[2] or name.strip("/")
    if not name or not alias:
        raise errors.InvalidArgument(f"invalid link {link!r}: use NAME[:ALIAS]")
    return name, alias


# --8<-- [start:normalize]
def normalize(links: Any, me: str, find: Callable[[str], Any]) -> list[str]:
    """``HostConfig.Links`` checked at create and written as dockerd shows them: ``/other:/me/alias``.

    ``find`` gives the other container's name (NoSuchContainer if there is none), so a link to a
    missing container is refused now, in dockerd's words; one that is not running is refused at start.
    """
    if not isinstance(links or [], list) or not all(isinstance(link, str) for link in links or []):
        raise errors.InvalidArgument("invalid HostConfig.Links: expected a list of strings")
    found = []
    for link in links or []:
        name, alias = parse(link)
        try:
            name = find(name).lstrip("/")
        except errors.NotFound as e:
            raise errors.InvalidArgument(f"could not get container for {name}: {e}") from None
        found.append(f"/{name}:/{me}/{alias}")
    return found
# --8<-- [end:normalize]


# --8<-- [start:environment]
def environment(alias: str, link_name: str, ip: str, exposed: dict | None,
                env: list[str] | None) -> list[str]:
    """Docker's variables for one link: the other's ports (the lowest one first), its name, its ``ENV``.

    ``HOME`` and ``PATH`` of the other container are left out, as dockerd leaves them.
    """
    prefix = "".join(c if c.isalnum() else "_" for c in alias.upper())
    ports = sorted((int(number), proto or "tcp") for number, _, proto in
                   (str(key).partition("/") for key in exposed or {}) if number.isdigit())
    found = [f"{prefix}_PORT={ports[0][1]}://{ip}:{ports[0][0]}"] if ports else []
    for number, proto in ports:
        key = f"{prefix}_PORT_{number}_{proto.upper()}"
        found += [f"{key}={proto}://{ip}:{number}", f"{key}_ADDR={ip}", f"{key}_PORT={number}",
                  f"{key}_PROTO={proto}"]
    found.append(f"{prefix}_NAME={link_name}")
    for item in env or []:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            found.append(f"{prefix}_ENV_{key}={value}")
    return found
# --8<-- [end:environment]


# --8<-- [start:resolve]
def resolve(links: list[str], find: Callable[[str], Any], address: Callable[[Any], str | None]
            ) -> tuple[list[str], list[str]]:
    """At start: the ``--add-host`` lines and the variables of every link; a stopped one refused.

    ``find`` gives the other container (its record), ``address`` its IP on the default bridge.
    """
    hosts, env = [], []
    for link in links:
        name, _, link_name = link.partition(":")
        other = find(name.lstrip("/"))
        ip = address(other) if other.running else None
        if not ip:
            raise errors.InvalidArgument(f"Cannot link to a non running container: {name} AS {link_name}")
        alias = link_name.rpartition("/")[2]
        cfg = other.config["Config"]
        for host in dict.fromkeys((alias, cfg.get("Hostname") or other.id[:12], name.lstrip("/"))):
            hosts.append(f"{host}:{ip}")
        env += environment(alias, link_name, ip, cfg.get("ExposedPorts"), cfg.get("Env"))
    return hosts, env
# --8<-- [end:resolve]


def bridge_address(container_id: str) -> str | None:
    """The container's address on the default bridge (chapter 05's endpoints), None if it has none."""
    from minidocker.core.process import EngineError
    from minidocker.network import stage as network

    try:
        found = {e.container_id: e for e in network.Network().endpoints()}.get(container_id)
    except (EngineError, OSError, ValueError):
        return None
    return found.ip if found is not None else None


def unlink(host: dict, link_name: str) -> None:
    """``docker rm --link /me/alias``: the link of that name dropped from the parent's ``HostConfig``."""
    kept = [link for link in host.get("Links") or [] if link.partition(":")[2] != link_name]
    if len(kept) == len(host.get("Links") or []):
        raise errors.NoSuchContainer(link_name)
    host["Links"] = kept or None
