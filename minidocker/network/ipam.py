"""Chapter 05: IP address management: which container has which address, kept on disk under a lock.

Every container on a bridge needs an address of the bridge's subnet that no other container has.
Docker calls the component that hands them out IPAM. Three things make it harder than a counter:

* **concurrency**: twenty ``docker run`` at once must get twenty addresses, so every change is a
  read-modify-write of one JSON file under an exclusive ``flock(2)``;
* **release**: an address is given back when its container goes;
* **crashes**: an engine killed with SIGKILL releases nothing. Each lease records its *owner*, the
  host pid of the container's PID 1 with that process's start time and the boot it belongs to, so
  :meth:`Ipam.reconcile` can tell a live lease from one whose container is gone (a pid alone is
  not enough: pids are reused).

Example::

    >>> ipam = Ipam(Path("/tmp/ipam"), "10.200.0.0/24")
    >>> with ipam.locked():
    ...     lease = ipam.allocate("c1", os.getpid())
    >>> lease.ip, ipam.gateway
    ('10.200.0.2', '10.200.0.1')
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minidocker.core.atomic import read_json, write_json
from minidocker.core.lock import FileLock
from minidocker.core.process import EngineError

__all__ = ["Ipam", "Lease", "process_identity"]


@dataclass
class Lease:
    """One container's address, and who owns it (see :func:`process_identity`)."""

    container_id: str
    ip: str
    owner: list[str] = field(default_factory=list)  # [pid, start time, boot id]
    veth: str = ""
    mtu: int = 0
    ports: list[dict] = field(default_factory=list)
    mac: str = ""  # --mac-address; none: bridge.mac_for(ip)


# exercise 05.4: Name a process so that a recycled pid does not match
# hint: read /proc/PID/stat after the last ")": field 0 is the state (Z or X: dead), field 19 the start time;
#   add /proc/sys/kernel/random/boot_id; [] if the process does not exist.
# --8<-- [start:process_identity]
def process_identity(pid: int) -> list[str]:
    """Name a process so that the name can't be reused: pid, start time, and the boot it ran in.

    The start time (field 22 of ``/proc/PID/stat``, in clock ticks since boot) tells a new process
    that got an old pid from the old one; the boot id tells this boot from the last one. Returns
    ``[]`` if the process does not exist (or is a zombie: it has exited).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return []
    if fields[0] in "ZX":  # a zombie is dead, only its exit status waits to be collected
        return []
    return [str(pid), fields[19], boot]
# --8<-- [end:process_identity]


class Ipam:
    """The leases of one network, in ``DIRECTORY/ipam.json``, changed only under ``DIRECTORY/lock``.

    Hold :meth:`locked` around any sequence of calls that must see a consistent state.
    """

    def __init__(self, directory: Path, subnet: str) -> None:
        self.directory = Path(directory)
        self.network = ipaddress.IPv4Network(subnet)
        if self.network.num_addresses < 4:
            raise EngineError(f"subnet {subnet} is too small: it needs room for a gateway and a container")
        self.gateway = str(self.network.network_address + 1)
        self._lock = FileLock(self.directory / "lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the network's exclusive lock (it is re-entrant within one object)."""
        with self._lock:
            yield

    def leases(self) -> list[Lease]:
        """Every lease, in address order."""
        data = read_json(self.directory / "ipam.json", {}) or {}
        found = [Lease(**value) for value in data.get("leases", {}).values()]
        return sorted(found, key=lambda lease: ipaddress.IPv4Address(lease.ip))

    def lease(self, container_id: str) -> Lease | None:
        """The lease of ``container_id``, if it has one."""
        return next((lease for lease in self.leases() if lease.container_id == container_id), None)

    def _save(self, leases: list[Lease]) -> None:
        assert self._lock.held, "change the leases only under Ipam.locked()"
        data = {"subnet": str(self.network), "gateway": self.gateway,
                "leases": {lease.container_id: asdict(lease) for lease in leases}}
        write_json(self.directory / "ipam.json", data)

    # exercise 05.12: Lease the lowest free address of the subnet
    # hint: refuse a container that already has a lease; skip the gateway and every leased address
    #   while walking self.network.hosts(); save the new lease with the others (self._save).
    # --8<-- [start:allocate]
    def allocate(self, container_id: str, pid: int) -> Lease:
        """Lease the lowest free address of the subnet to ``container_id``, owned by process ``pid``.

        Call it under :meth:`locked`. The network address, the gateway (the bridge's own address)
        and the broadcast address are never leased.
        """
        leases = self.leases()
        if any(lease.container_id == container_id for lease in leases):
            raise EngineError(f"container {container_id[:12]} already has an address on {self.network}")
        used = {lease.ip for lease in leases} | {self.gateway}
        for address in self.network.hosts():
            if str(address) not in used:
                lease = Lease(container_id, str(address), process_identity(pid))
                self._save([*leases, lease])
                return lease
        raise EngineError(f"no free address left in {self.network}: remove containers or use a "
                          "larger subnet")
    # --8<-- [end:allocate]

    def update(self, lease: Lease) -> None:
        """Store changes to a lease (its veth name, its ports). Call it under :meth:`locked`."""
        self._save([lease if old.container_id == lease.container_id else old for old in self.leases()])

    def release(self, container_id: str) -> Lease | None:
        """Give the address of ``container_id`` back; return the lease it had, if any."""
        leases = self.leases()
        gone = next((lease for lease in leases if lease.container_id == container_id), None)
        if gone:
            self._save([lease for lease in leases if lease is not gone])
        return gone

    # --8<-- [start:reconcile]
    def reconcile(self) -> list[Lease]:
        """Release every lease whose owner is gone (a crash, a reboot); return those leases.

        A lease's owner is alive when a process with its pid exists *and* has the same start time
        and boot id: a new process that happens to get the old pid does not keep the address.
        """
        leases = self.leases()
        stale = [lease for lease in leases
                 if not lease.owner or process_identity(int(lease.owner[0])) != lease.owner]
        if stale:
            self._save([lease for lease in leases if lease not in stale])
        return stale
    # --8<-- [end:reconcile]
