"""Chapter 12: the user-defined networks of a daemon, on disk: one directory per network.

``STATE/user-networks/ID/network.json`` is the network (what ``docker network inspect`` shows,
written atomically), ``ipam.json`` beside it the addresses leased to its containers (chapter 05's
:class:`~minidocker.network.ipam.Ipam`, one per network). ``STATE/user-networks/lock`` is held
around every change that must see all networks at once: a create checks overlaps under it, the
firewall table is rebuilt under it.

Example::

    store = Store()
    with store.locked():
        net = store.add(Record.new("front", "172.18.0.0/16", "172.18.0.1"))
    store.find("front").id == net.id
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minidocker.core import errors
from minidocker.core.atomic import read_json, rfc3339, write_json
from minidocker.core.lock import FileLock
from minidocker.core.paths import private_dir, state_dir
from minidocker.network.ipam import Ipam

__all__ = ["NAME", "Record", "Store"]

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Record:
    """One user-defined network."""

    id: str
    name: str
    subnet: str
    gateway: str
    bridge: str
    ip_range: str = ""
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def new(cls, name: str, subnet: str, gateway: str, bridge: str = "", **kwargs: object) -> Record:
        nid = secrets.token_hex(32)
        return cls(nid, name, subnet, gateway, bridge or f"br-{nid[:12]}", created=rfc3339(), **kwargs)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen


class Store:
    """The networks of this state directory (``STATE/user-networks``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or private_dir(state_dir() / "user-networks")
        self._lock = FileLock(self.root / "lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (re-entrant within one object)."""
        with self._lock:
            yield

    def all(self) -> list[Record]:
        """Every network, oldest first."""
        found = []
        for directory in self.root.iterdir():
            data = read_json(directory / "network.json") if directory.is_dir() else None
            if data:
                found.append(Record(**data))
        return sorted(found, key=lambda r: (r.created, r.name))

    def find(self, ref: str) -> Record:
        """By full id, name, or unique id prefix (Docker's order); NotFound otherwise."""
        nets = self.all()
        for exact in (lambda r: r.id == ref, lambda r: r.name == ref):
            if match := [r for r in nets if exact(r)]:
                return match[0]
        prefixed = [r for r in nets if ref and r.id.startswith(ref)]
        if len(prefixed) > 1:
            raise errors.InvalidArgument(f"network {ref} is ambiguous ({len(prefixed)} matches found based "
                                         "on ID prefix)")
        if not prefixed:
            raise errors.NotFound(f"network {ref} not found")
        return prefixed[0]

    def get(self, ref: str) -> Record | None:
        with contextlib.suppress(errors.NotFound):
            return self.find(ref)
        return None

    def add(self, record: Record) -> Record:
        directory = self.root / record.id
        directory.mkdir(mode=0o700)
        write_json(directory / "network.json", asdict(record), mode=0o600)
        return record

    def remove(self, record: Record) -> None:
        shutil.rmtree(self.root / record.id, ignore_errors=True)

    def ipam(self, record: Record) -> Ipam:
        """The leases of ``record``: chapter 05's IPAM, its gateway the network's."""
        ipam = Ipam(self.root / record.id, record.subnet)
        ipam.gateway = record.gateway
        return ipam
