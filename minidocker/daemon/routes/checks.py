"""Chapter 10: what ``POST /containers/create`` accepts: ports, security and logs checked, the rest refused.

A create body is input from anyone who can reach the API, and the container's record outlives the
request: a value that cannot be used must be refused *now*, with a 400, not break a later
``GET /containers/json`` for every client (an image's ``ExposedPorts`` key ``x/tcp``, say). And an
option this daemon does not implement must not be dropped in silence: it is refused, in one line,
as dockerd refuses what its host cannot do (``logger: no log driver named 'xyz' is registered``).

Example::

    >>> exposed_ports({"80/tcp": {}, "53/udp": {}})
    >>> parse_port("x/tcp")
    Traceback (most recent call last):
    ...
    minidocker.core.errors.InvalidArgument: invalid port 'x/tcp': PORT[/tcp|udp|sctp], PORT 1 to 65535
    >>> unsupported({"HostConfig": {"BlkioWeight": 300}})
    Traceback (most recent call last):
    ...
    minidocker.core.errors.InvalidArgument: HostConfig.BlkioWeight: not supported by this daemon
"""

from __future__ import annotations

import json
from typing import Any

from minidocker.core import errors
from minidocker.core.process import EngineError

__all__ = ["devices", "exposed_ports", "log_config", "network_options", "parse_port", "port_bindings",
           "security_opts", "unsupported", "warnings"]

PROTOCOLS = ("tcp", "udp", "sctp")


def parse_port(key: str) -> tuple[int, str]:
    """``"80/tcp"`` -> ``(80, "tcp")`` (no protocol: tcp); InvalidArgument for anything else."""
    number, _, proto = str(key).partition("/")
    proto = proto or "tcp"
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in PROTOCOLS:
        raise errors.InvalidArgument(f"invalid port {key!r}: PORT[/tcp|udp|sctp], PORT 1 to 65535")
    return int(number), proto


def exposed_ports(ports: Any) -> None:
    """The container's ``ExposedPorts`` (the request's and the image's, merged): every key a port."""
    for key in ports or {}:
        parse_port(key)


def port_bindings(bindings: dict) -> None:
    """``HostConfig.PortBindings``: each key a port, each binding a host port number (or none)."""
    for key, found in bindings.items():
        parse_port(key)
        if not isinstance(found or [], list):
            raise errors.InvalidArgument(f"invalid HostConfig.PortBindings[{key!r}]: expected a list")
        for b in found or []:
            port = str(b.get("HostPort") or "0") if isinstance(b, dict) else "x"
            if not (port.isdigit() and int(port) < 65536):
                raise errors.InvalidArgument(f"invalid host port binding {b!r} for {key}")


# --8<-- [start:security_opts]
def security_opts(options: list) -> None:
    """``HostConfig.SecurityOpt``: a seccomp profile comes as its JSON *content*, never as a path.

    ``docker run --security-opt seccomp=profile.json`` reads the file in the *client* and sends what
    it holds. A path would be opened by the daemon, on its host, as root: any file (or a FIFO that
    never answers) chosen by anyone who can call the API. ``unconfined`` and ``builtin`` are names.
    """
    for item in options:
        if not isinstance(item, str):
            raise errors.InvalidArgument("invalid HostConfig.SecurityOpt: expected a list of strings")
        key, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if key != "seccomp" or not sep or value in ("unconfined", "builtin"):
            continue
        try:
            profile = json.loads(value)
        except ValueError:
            profile = None
        if not isinstance(profile, dict):
            raise errors.InvalidArgument(f"invalid seccomp profile {value[:60]!r}: its JSON content is "
                                         "expected (the client reads the file), not a path")
# --8<-- [end:security_opts]


# HostConfig keys this daemon does not implement, and the values that mean "not set" (besides empty ones):
# refused when set, never accepted and dropped.
UNSUPPORTED_HOST = {
    "CpuRealtimePeriod": (), "CpuRealtimeRuntime": (), "CpusetMems": (), "CpuCount": (), "CpuPercent": (),
    "MemoryReservation": (), "MemorySwappiness": (-1,), "KernelMemory": (), "KernelMemoryTCP": (),
    "OomKillDisable": (), "OomScoreAdj": (), "BlkioWeight": (), "BlkioWeightDevice": (),
    "BlkioDeviceReadBps": (), "BlkioDeviceWriteBps": (), "BlkioDeviceReadIOps": (),
    "BlkioDeviceWriteIOps": (), "DeviceRequests": (), "DeviceCgroupRules": (),
    "VolumesFrom": (), "VolumeDriver": ("local",), "ShmSize": (), "Sysctls": (),
    "StorageOpt": (), "CgroupParent": (), "Cgroup": (), "UTSMode": (),
    "IpcMode": ("private", "shareable"), "CgroupnsMode": ("private",), "Isolation": ("default",),
    "IOMaximumBandwidth": (), "IOMaximumIOps": (), "Annotations": (),
}
UNSUPPORTED_CONFIG = {"Domainname": ()}
# The log drivers and their options: json-file only, with its rotation (chapter 10's logs.py).
LOG_DRIVERS = {"json-file": ("max-size", "max-file")}


def _set(value: Any, unset: tuple) -> bool:
    return bool(value) and value not in unset


# --8<-- [start:unsupported]
def unsupported(body: dict) -> None:
    """Refuse, in one line (a 400), what the create body asks for that this daemon does not do.

    An option accepted and then dropped is worse than a refusal: ``--device /dev/fuse`` or
    ``--sysctl`` that silently did nothing would fail later, far from the cause.
    """
    host = body.get("HostConfig") or {}
    found = [f"HostConfig.{key}" for key, unset in UNSUPPORTED_HOST.items() if _set(host.get(key), unset)]
    found += [key for key, unset in UNSUPPORTED_CONFIG.items() if _set(body.get(key), unset)]
    if found:
        raise errors.InvalidArgument(f"{', '.join(found)}: not supported by this daemon")
# --8<-- [end:unsupported]


def network_options(host: dict, config: dict) -> None:
    """``ExtraHosts`` and ``MacAddress`` checked now, by chapter 05's rules, not at the first start."""
    from minidocker.network import netfiles
    from minidocker.network.stage import parse_mac

    mode = host.get("NetworkMode") or "default"
    try:
        for item in host.get("ExtraHosts") or []:
            netfiles.parse_add_host(str(item))
        # a MAC is for a bridge: the default one or a user-defined network's (chapter 12)
        shared = mode in ("host", "none") or mode.startswith("container:")
        parse_mac(config.get("MacAddress"), mode if shared else "bridge")
    except EngineError as e:
        raise errors.InvalidArgument(str(e)) from None


def devices(mappings: Any) -> None:
    """``HostConfig.Devices`` (``--device``): each a host device node, checked now by chapter 06's rules.

    Example: ``docker run --device /dev/nope`` -> ``error gathering device information while adding
    custom device "/dev/nope": no such file or directory``, and no container is made.
    """
    from minidocker.security.devices import parse_device

    if not isinstance(mappings or [], list) or not all(isinstance(d, dict) for d in mappings or []):
        raise errors.InvalidArgument("invalid HostConfig.Devices: expected a list of DeviceMapping objects")
    for d in mappings or []:
        try:
            parse_device(f"{d.get('PathOnHost') or ''}:{d.get('PathInContainer') or ''}:"
                         f"{d.get('CgroupPermissions') or ''}")
        except EngineError as e:
            raise errors.InvalidArgument(str(e)) from None


def log_config(config: dict) -> None:
    """``HostConfig.LogConfig``: a driver this daemon has, options it knows, in dockerd's words.

    Example: ``docker run --log-driver xyz`` -> ``logger: no log driver named 'xyz' is registered``.
    """
    from minidocker.core.units import parse_size

    driver = config.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        raise errors.InvalidArgument(f"logger: no log driver named '{driver}' is registered")
    options = config.get("Config") or {}
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise errors.InvalidArgument("invalid HostConfig.LogConfig.Config: expected an object of strings")
    for key in options:
        if key not in LOG_DRIVERS[driver]:
            raise errors.InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
    if "max-size" in options:
        try:
            if parse_size(options["max-size"]) <= 0:
                raise ValueError
        except (ValueError, EngineError):
            raise errors.InvalidArgument(f"invalid max-size {options['max-size']!r}: a size such as "
                                         "10m") from None
    if "max-file" in options and not (options["max-file"].isdigit() and int(options["max-file"]) >= 1):
        raise errors.InvalidArgument("max-file cannot be less than 1")


# --8<-- [start:warnings]
def warnings(body: dict) -> list[str]:
    """What the create body asks for that this host cannot give, one sentence each (Docker's ``Warnings``):
    an AppArmor profile or SELinux label, on a host without them, is honoured as dockerd does there."""
    host = body.get("HostConfig") or {}
    found = []
    for item in host.get("SecurityOpt") or []:
        if isinstance(item, str) and item.startswith(("apparmor=", "apparmor:", "label=", "label:")):
            found.append(f"security option {item!r} ignored: this daemon has no AppArmor or SELinux")
    return found
# --8<-- [end:warnings]
