"""Chapter 05: networking: a bridge, a veth pair per container, NAT, published ports, DNS files.

Chapter 02 gave each container a network namespace with nothing but a loopback. This stage
connects it, as Docker's default ``bridge`` network does::

    container eth0 ══ veth ══╗                       ┌──────────── nftables (table minidocker) ───┐
    172.29.0.2               ║                       │ masquerade: containers -> the world        │
                        minidocker0 (bridge)  ──IP──▶ │ DNAT: HOSTPORT -> container:PORT           │
    container eth0 ══ veth ══╝  172.29.0.1           │ forward: only replies and published ports  │
    172.29.0.3                  (their gateway)      └────────────────────────────────────────────┘

The bridge and its nftables table are created with the first container that needs them and
deleted with the last one; addresses come from a small IPAM under the state directory.

Run it (as root)::

    python -m minidocker.network -p 8080:80 "$(python -m minidocker.rootfs)" -- \\
        httpd -f -p 80 -h /etc      # then, on the host: busybox wget -qO- http://127.0.0.1:8080/passwd

Options: ``--network bridge`` (default) | ``none`` (loopback only) | ``host`` (the host's network);
``-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]``, repeatable; and those of earlier chapters.
Names are configurable through the environment, so that test runs never collide:
``MINIDOCKER_BRIDGE`` (``minidocker0``), ``MINIDOCKER_SUBNET`` (``172.29.0.0/16``, the gateway is
its first address) and ``MINIDOCKER_NFT_TABLE`` (``minidocker``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import os
import sys
from collections import namedtuple
from collections.abc import Sequence

from minidocker.core import paths as _paths
from minidocker.core import stage as _stage
from minidocker.core import watchdog as _watchdog
from minidocker.core.paths import state_dir
from minidocker.core.process import EngineError
from minidocker.core.record import Record
from minidocker.core.spec import ContainerSpec
from minidocker.namespaces import stage as namespaces
from minidocker.network import netfiles, ports
from minidocker.network.ports import PortMapping
from minidocker.overlay import stage as overlay

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    import socket
    from typing import Any

    from minidocker.network.ipam import Lease

__all__ = ["MODES", "STAGES", "Endpoint", "Network", "NetworkConfig", "main", "register_mode"]

MODES = ("bridge", "none", "host")

# Network modes of later chapters (chapter 12's user-defined networks): each resolver gets the mode
# (``--network VALUE``) and returns a configure function for it, or None if the mode is not its own.
# This chapter never names them: they register themselves (see ``daemon/plugins.py``).
_RESOLVERS: list[Any] = []


def register_mode(resolver: Any) -> None:
    """Add a resolver ``mode -> configure | None`` for ``--network`` values other than MODES."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def _registered(mode: str) -> Any:
    for resolver in _RESOLVERS:
        if (configure := resolver(mode)) is not None:
            return configure
    return None


class NetworkConfig(namedtuple("NetworkConfig", "bridge subnet table",
                               defaults=("minidocker0", "172.29.0.0/16", "minidocker"))):
    """The names of one bridge network: they are global on the host, so they are configurable."""

    __slots__ = ()
    bridge: str
    subnet: str
    table: str

    @classmethod
    def from_env(cls) -> NetworkConfig:
        """The configuration from ``MINIDOCKER_BRIDGE``, ``MINIDOCKER_SUBNET``, ``MINIDOCKER_NFT_TABLE``."""
        default = cls()
        config = cls(os.environ.get("MINIDOCKER_BRIDGE") or default.bridge,
                     os.environ.get("MINIDOCKER_SUBNET") or default.subnet,
                     os.environ.get("MINIDOCKER_NFT_TABLE") or default.table)
        if not 0 < len(config.bridge) < 16 or "/" in config.bridge or " " in config.bridge:
            raise EngineError(f"invalid bridge name {config.bridge!r}: 1 to 15 characters, no '/' or space")
        if not config.table.replace("_", "").isalnum():
            raise EngineError(f"invalid nftables table name {config.table!r}: letters, digits and '_'")
        try:
            ipaddress.IPv4Network(config.subnet)
        except ValueError as e:
            raise EngineError(f"invalid subnet {config.subnet!r} (MINIDOCKER_SUBNET): {e}") from None
        return config


class Endpoint(Record):
    """A container's place on the network: what ``docker inspect`` shows under NetworkSettings."""

    _fields = ("container_id", "ip", "prefixlen", "gateway", "mac", "bridge", "veth", "mtu", "ports")
    __slots__ = _fields

    def __init__(self, container_id: str, ip: str, prefixlen: int, gateway: str, mac: str, bridge: str,
                 veth: str, mtu: int, ports: list[PortMapping] | None = None) -> None:
        self.container_id, self.ip, self.prefixlen, self.gateway = container_id, ip, prefixlen, gateway
        self.mac, self.bridge, self.veth, self.mtu = mac, bridge, veth, mtu
        self.ports = [] if ports is None else ports


class Network:
    """One bridge network: attach containers to it and detach them, safely from many processes.

    Every method takes the network's lock; pyroute2 is imported on first use only. The bridge
    and the nftables table exist while at least one container is attached.

    Example (as root; ``pid`` is a container's PID 1, in its own network namespace)::

        net = Network()                               # names from the environment
        endpoint = net.attach(container_id, pid, [ports.parse_publish("8080:80")])
        ...                                           # 127.0.0.1:8080 reaches the container
        net.detach(container_id)                      # the last one also removes the bridge
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        from minidocker.network.ipam import (
            Ipam,  # only for a bridge: --network none or host leases no address
        )

        self.config = config or NetworkConfig.from_env()
        self.ipam = Ipam(state_dir() / "networks" / self.config.bridge, self.config.subnet)
        self.prefixlen = self.ipam.network.prefixlen
        self._reserved: dict[str, list[tuple[PortMapping, socket.socket]]] = {}

    @property
    def alias(self) -> str:
        """The bridge's alias: it marks the bridge as this state directory's."""
        return f"minidocker:{state_dir()}"

    def reserve(self, container_id: str, mappings: Sequence[PortMapping]) -> list[PortMapping]:
        """Take the host ports now (see ``ports.reserve``); return the mappings with real host ports.

        Call it before the container exists to fail early; :meth:`attach` does it otherwise. The
        ports are held by this object until :meth:`detach`.
        """
        if container_id not in self._reserved:
            self._reserved[container_id] = ports.reserve(mappings)
        return [mapping for mapping, _ in self._reserved[container_id]]

    # --8<-- [start:attach]
    def attach(self, container_id: str, pid: int, mappings: Sequence[PortMapping] = (),
               mac: str | None = None) -> Endpoint:
        """Connect the container whose PID 1 is ``pid`` to the network, with its published ports.

        In order: take the host ports (a port in use fails here, before any change); under the
        lock, forget crashed containers, make sure the bridge and the table exist, lease an
        address and add the DNAT rules; then plug a veth pair into the bridge and the container.
        If anything fails, everything done so far is undone.
        """
        import secrets  # only when a container is attached: its veth gets a random name

        from pyroute2 import IPRoute

        from minidocker.network import bridge, firewall, veth

        published = self.reserve(container_id, mappings)
        try:
            with IPRoute() as ipr:
                with self.ipam.locked():
                    self._reconcile(ipr)
                    bridge_index = self._ensure_bridge(ipr)
                    lease = self.ipam.allocate(container_id, pid)
                    lease.veth = f"veth{secrets.token_hex(4)[:7]}"
                    lease.mtu = bridge.host_mtu(ipr)
                    lease.ports = [m._asdict() for m in published]
                    lease.mac = mac or ""
                    self.ipam.update(lease)
                    firewall.publish(self.config.table, container_id, lease.ip, published)
                veth.plug(ipr, pid, bridge_index, lease.veth, f"{lease.ip}/{self.prefixlen}",
                          self.ipam.gateway, lease.mtu, f"minidocker:{self.config.bridge}:{container_id}",
                          mac=mac)
        except BaseException as e:
            self.detach(container_id)
            if isinstance(e, Exception) and not isinstance(e, EngineError):
                raise EngineError(f"connecting the container to {self.config.bridge}: {e}") from e
            raise
        return self._endpoint(lease)
    # --8<-- [end:attach]

    # --8<-- [start:detach]
    def detach(self, container_id: str) -> None:
        """Undo :meth:`attach` (any part of it that was done); the last container takes the bridge.

        Safe to call twice, and for a container that was never attached.
        """
        for _, sock in self._reserved.pop(container_id, []):
            sock.close()
        with self.ipam.locked():
            lease = self.ipam.release(container_id)
            if lease is None and (self.ipam.leases() or not self._bridge_exists()):
                return  # nothing to undo: no need to pay for pyroute2
            from pyroute2 import IPRoute

            from minidocker.network import firewall, veth

            with IPRoute() as ipr:
                if lease and lease.ports:
                    firewall.unpublish(self.config.table, {container_id})
                if lease and lease.veth:
                    veth.unplug(ipr, lease.veth)
                self._remove_if_unused(ipr)
    # --8<-- [end:detach]

    def endpoints(self) -> list[Endpoint]:
        """The containers attached now (from any process), from the IPAM's records."""
        return [self._endpoint(lease) for lease in self.ipam.leases()]

    def endpoint(self, container_id: str) -> Endpoint | None:
        """The endpoint of one container, if it is attached: what ``docker inspect`` shows."""
        lease = self.ipam.lease(container_id)
        return self._endpoint(lease) if lease else None

    def _endpoint(self, lease: Lease) -> Endpoint:
        from minidocker.network.bridge import mac_for

        return Endpoint(lease.container_id, lease.ip, self.prefixlen, self.ipam.gateway,
                        lease.mac or mac_for(lease.ip),
                        self.config.bridge, lease.veth, lease.mtu, [PortMapping(**p) for p in lease.ports])

    def ensure_bridge(self) -> None:
        """Create the bridge and its firewall table now (:meth:`attach` does it when needed)."""
        from pyroute2 import IPRoute

        with IPRoute() as ipr, self.ipam.locked():
            self._ensure_bridge(ipr)

    def remove_bridge_if_unused(self) -> bool:
        """Delete the bridge and the table if no container is attached; return whether it did."""
        from pyroute2 import IPRoute

        with IPRoute() as ipr, self.ipam.locked():
            return self._remove_if_unused(ipr)

    def reconcile(self) -> list[str]:
        """Clean up after crashed engines: their addresses, rules, veths, DNS files; return their ids.

        The bridge goes too when nobody is left. :meth:`attach` does this first, every time; a killed
        engine's watchdog, and the daemon when it starts, do it too.
        """
        from minidocker.network import bridge

        with self.ipam.locked():
            if not self.ipam.leases() and not self._bridge_exists():
                bridge.forwarding_off_if_unused()
                return []  # nothing else to do: no need to pay for pyroute2
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                stale = self._reconcile(ipr)
                self._remove_if_unused(ipr)
        return stale

    def _bridge_exists(self) -> bool:
        return os.path.exists(f"/sys/class/net/{self.config.bridge}")

    def _foreign_bridge(self) -> bool:
        """Whether a device has our bridge's name but another alias (another state directory's)."""
        try:
            with open(f"/sys/class/net/{self.config.bridge}/ifalias") as f:
                return f.read().strip() != self.alias
        except FileNotFoundError:
            return False

    # --8<-- [start:ensure]
    def _ensure_bridge(self, ipr: Any) -> int:
        """Under the lock: the bridge, its table (with the published ports of live containers), forwarding."""
        from minidocker.network import bridge, firewall

        new = not self._bridge_exists()
        index = bridge.ensure_bridge(ipr, self.config.bridge, f"{self.ipam.gateway}/{self.prefixlen}",
                                     self.alias)
        if new or not firewall.table_exists(self.config.table):  # a new bridge gets a new table
            firewall.create_table(self.config.table, self.config.bridge, self.config.subnet)
            for lease in self.ipam.leases():
                firewall.publish(self.config.table, lease.container_id, lease.ip,
                                 [PortMapping(**p) for p in lease.ports])
        bridge.forwarding_on()
        return index
    # --8<-- [end:ensure]

    def _reconcile(self, ipr: Any) -> list[str]:
        from minidocker.network import firewall, veth

        stale = self.ipam.reconcile()
        for lease in stale:
            if lease.veth:
                veth.unplug(ipr, lease.veth)
            netfiles.remove_files(netfiles.files_dir(lease.container_id))
        live = {lease.container_id for lease in self.ipam.leases()}
        orphans = set(firewall.published(self.config.table)) - live
        firewall.unpublish(self.config.table, orphans)
        return sorted({lease.container_id for lease in stale} | orphans)

    def _remove_if_unused(self, ipr: Any) -> bool:
        from minidocker.network import bridge, firewall

        if self.ipam.leases() or self._foreign_bridge():  # theirs: its table is theirs too
            return False
        firewall.delete_table(self.config.table)
        if self._bridge_exists():
            bridge.delete_bridge(ipr, self.config.bridge)
        bridge.forwarding_off_if_unused()
        return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 05."""
    group = parser.add_argument_group("network (chapter 05)")
    group.add_argument("--network", default="bridge", metavar="MODE",
                       help="bridge (default: a private address, NAT to the outside), none (loopback "
                            "only) or host (the host's own network)")
    group.add_argument("-p", "--publish", action="append", default=[], metavar="[HOSTIP:][HOSTPORT:]PORT",
                       help="publish a container port on the host, e.g. 8080:80 or 127.0.0.1:5353:53/udp")
    group.add_argument("--mac-address", default=None, metavar="MAC",
                       help="the container's MAC address on the bridge (default: 02:42 and its IPv4 address)")
    netfiles.add_arguments(group)


# exercise 05.11: Configure the network stage
# hint: validate --network and -p; host: discard "net" from spec.namespaces and use the host's
#   hostname (os.uname().nodename); write the files and bind them before_pivot; bridge: reserve the
#   ports now, attach in on_created (then rewrite hosts with the address), detach in on_exit and on
#   cleanup.
# --8<-- [start:configure]
# --8<-- [start:configure_part1]
def configure(args: argparse.Namespace, spec: ContainerSpec,
              cleanup: contextlib.ExitStack) -> None:
    # --8<-- [end:configure_part1]
    """Plug the container into the network chosen by ``--network``, and give it its DNS files.

    The veth can only be created once the container's network namespace exists: that is the
    ``on_created`` hook. Its end is registered on ``cleanup`` *and* on ``on_exit``: the address and
    the ports are given back as soon as the container exits, or if it never started.
    """
    # --8<-- [start:configure_part2]
    if args.network not in MODES:
        if (other := _registered(args.network)) is not None:
            other(args, spec, cleanup)  # a later chapter's mode (a user-defined network)
            return
        raise EngineError(f"invalid --network {args.network!r}: use one of {', '.join(MODES)}")
    mappings = [ports.parse_publish(text) for text in args.publish]
    if mappings and args.network != "bridge":
        raise EngineError(f"-p needs --network bridge: with --network {args.network} there is nothing to "
                          "publish")
    custom, mac = netfiles.Custom.of(args), parse_mac(args.mac_address, args.network)
    if args.network == "host":
        spec.namespaces.discard("net")
        spec.hostname = spec.hostname or os.uname().nodename  # gethostname(2)
        spec.env["HOSTNAME"] = spec.hostname
    hostname = spec.hostname or spec.id[:12]
    directory = netfiles.files_dir(spec.id)
    cleanup.callback(netfiles.remove_files, directory)
    files = netfiles.write_files(directory, hostname, None, args.network, custom)
    if spec.id_map:  # its root, an unprivileged host user, bind-mounts them by path (core.paths)
        _paths.let_in(directory, spec.id_map.outside)
    spec.add_hook("before_pivot", lambda root: netfiles.bind_files(root, files))
    if args.network == "bridge":
        net = Network()
        net.reserve(spec.id, mappings)  # a port in use fails now, before any namespace exists
        detach_on_exit(net, spec.id, cleanup)

        def connect(pid: int) -> None:
            endpoint = net.attach(spec.id, pid, mappings, mac)
            extra = [(name, endpoint.gateway if ip == "host-gateway" else ip) for name, ip in custom.hosts]
            (directory / "hosts").write_text(netfiles.hosts_file(hostname, endpoint.ip, extra))

        spec.add_hook("on_created", connect)
        spec.add_hook("on_exit", functools.partial(_detach, net, spec.id))
# --8<-- [end:configure_part2]
# --8<-- [end:configure]


def _detach(net: Network, container_id: str, _status: int) -> None:
    """The ``on_exit`` hook: the address and ports go back as soon as PID 1 has exited."""
    net.detach(container_id)


def parse_mac(text: str | None, mode: str) -> str | None:
    """``--mac-address``: six hex bytes, unicast; only on a bridge (Docker's words otherwise)."""
    if not text:
        return None
    octets = text.split(":")
    if len(octets) != 6 or not all(len(o) == 2 and all(c in "0123456789abcdefABCDEF" for c in o)
                                   for o in octets):
        raise EngineError(f"invalid MAC address: {text}")
    if int(octets[0], 16) & 1:
        raise EngineError(f"invalid MAC address: {text}: a multicast address")
    if mode != "bridge":
        raise EngineError(f"conflicting options: mac-address and the network mode ({mode})")
    return text.lower()


# --8<-- [start:detach_on_exit]
def detach_on_exit(net: Network, container_id: str, cleanup: contextlib.ExitStack) -> None:
    """Detach the container when the engine is done. If the engine is killed, chapter 03's watchdog
    reconciles the network at once: a stale DNAT rule would swallow the traffic of the next server
    on the host to use the published port, and the bridge would stay."""
    config = net.config
    command = _watchdog.python_argv("from minidocker.network import stage; stage._reconcile_left()",
                                    container_id, config.bridge, config.subnet, config.table)
    cleanup.callback(_watchdog.start(command, "minidocker-network-watchdog"))  # disarm it, last
    cleanup.callback(net.detach, container_id)
# --8<-- [end:detach_on_exit]


def _reconcile_left() -> None:
    """``-c CODE PATH ID BRIDGE SUBNET TABLE``: after a dead engine, :meth:`Network.reconcile`.

    The container's PID 1, its lease's owner, dies a moment *after* its engine (``PR_SET_PDEATHSIG``):
    until then the lease is live and would be kept. So first wait for the owner to be gone (for a
    while: if it lives on, the next container's start reconciles).
    """
    import time

    from minidocker.network.ipam import process_identity

    container_id, bridge, subnet, table = sys.argv[2:]
    net = Network(NetworkConfig(bridge, subnet, table))
    lease, deadline = net.ipam.lease(container_id), time.monotonic() + 10
    while lease and lease.owner and process_identity(int(lease.owner[0])) == lease.owner:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    try:
        net.reconcile()
        if not net.ipam.lease(container_id):
            netfiles.remove_files(netfiles.files_dir(container_id))
    except Exception as e:  # a watchdog has no one else to tell
        print(f"minidocker: warning: the network of {container_id[:12]}: {e}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)


STAGES = (*overlay.STAGES, _stage.Stage("network", add_arguments, configure))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.network [OPTIONS] ROOTFS -- CMD [ARG...]``."""
    return _stage.main(argv, prog="python -m minidocker.network", doc=__doc__, stages=STAGES,
                       run=namespaces.run, rootfs_required=False)


if __name__ == "__main__":
    _stage.exit_now(main())
