"""Chapter 10: what ``POST /containers/create`` accepts: ports and security options checked, the rest warned.

A create body is input from anyone who can reach the API, and the container's record outlives the
request: a value that cannot be used must be refused *now*, with a 400, not break a later
``GET /containers/json`` for every client (an image's ``ExposedPorts`` key ``x/tcp``, say). And an
option this daemon does not implement must not be dropped in silence: as dockerd does, the create
answer's ``Warnings`` says so, and the ``docker`` CLI prints each one.

Example::

    >>> exposed_ports({"80/tcp": {}, "53/udp": {}})
    >>> parse_port("x/tcp")
    Traceback (most recent call last):
    ...
    minidocker.core.errors.InvalidArgument: invalid port 'x/tcp': PORT[/tcp|udp|sctp], PORT 1 to 65535
    >>> warnings({"HostConfig": {"CpuShares": 512, "SecurityOpt": ["apparmor=unconfined"]}})[0]
    'HostConfig.CpuShares is not supported by this daemon: ignored'
"""

from __future__ import annotations

import json
from typing import Any

from minidocker.core import errors

__all__ = ["exposed_ports", "parse_port", "port_bindings", "security_opts", "warnings"]

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


# HostConfig keys this daemon does not implement, and the values that mean "not set" (besides empty ones).
IGNORED_HOST = {
    "CpuShares": (), "CpuPeriod": (), "CpuQuota": (), "CpuRealtimePeriod": (), "CpuRealtimeRuntime": (),
    "CpusetCpus": (), "CpusetMems": (), "CpuCount": (), "CpuPercent": (), "MemorySwap": (),
    "MemoryReservation": (), "MemorySwappiness": (-1,), "KernelMemory": (), "KernelMemoryTCP": (),
    "OomKillDisable": (), "OomScoreAdj": (), "BlkioWeight": (), "BlkioWeightDevice": (),
    "BlkioDeviceReadBps": (), "BlkioDeviceWriteBps": (), "BlkioDeviceReadIOps": (),
    "BlkioDeviceWriteIOps": (), "Devices": (), "DeviceRequests": (), "DeviceCgroupRules": (),
    "Dns": (), "DnsOptions": (), "DnsSearch": (), "ExtraHosts": (), "GroupAdd": (), "Links": (),
    "VolumesFrom": (), "VolumeDriver": (), "Mounts": (), "Tmpfs": (), "ShmSize": (), "Sysctls": (),
    "StorageOpt": (), "CgroupParent": (), "Cgroup": (), "UTSMode": (),
    "IpcMode": ("private", "shareable"), "CgroupnsMode": ("private",), "Isolation": ("default",),
    "IOMaximumBandwidth": (), "IOMaximumIOps": (), "Annotations": (),
}
IGNORED_CONFIG = {"Shell": (), "OnBuild": (), "MacAddress": (), "NetworkDisabled": (),
                  "Domainname": ()}


def _set(value: Any, unset: tuple) -> bool:
    return bool(value) and value not in unset


# --8<-- [start:warnings]
def warnings(body: dict) -> list[str]:
    """What the create body asks for that this daemon ignores, one sentence each (Docker's ``Warnings``)."""
    host = body.get("HostConfig") or {}
    found = [f"HostConfig.{key} is not supported by this daemon: ignored"
             for key, unset in IGNORED_HOST.items() if _set(host.get(key), unset)]
    found += [f"{key} is not supported by this daemon: ignored"
              for key, unset in IGNORED_CONFIG.items() if _set(body.get(key), unset)]
    for item in host.get("SecurityOpt") or []:
        if isinstance(item, str) and item.startswith(("apparmor=", "apparmor:", "label=", "label:")):
            found.append(f"security option {item!r} ignored: this daemon has no AppArmor or SELinux")
    return found
# --8<-- [end:warnings]
