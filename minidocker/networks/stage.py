"""Chapter 12: ``--network NAME``: a container on user-defined networks, from its engine's side.

Chapter 05's network stage knows ``bridge``, ``none`` and ``host``, and keeps a registry of other
modes (``register_mode``) that it never names. This chapter fills it: a ``--network`` value that
is a user-defined network's name or id plugs the container into that network's bridge, and into
every other network its record lists (the daemon's ``docker run --network a --network b``,
``docker network connect`` on a stopped container): ``eth0``, ``eth1``, ... each with an address
of its network (``--ip``), the default route through the first that is not ``--internal``. Its
``/etc/resolv.conf`` names ``127.0.0.11``, where the daemon's embedded DNS answers (``dns.py``):
the engine binds its sockets in the new namespace before PID 1 runs and hands them to the daemon
(``handoff.py``), so that even the container's first instruction finds it.

``--network container:ID`` shares the network namespace of another running container (its
interfaces, addresses, ports, its ``127.0.0.11``), and its ``hosts``, ``hostname`` and
``resolv.conf``, as Docker does.

Run it (as root, with a network made by the daemon)::

    python -m minidocker.networks --network front busybox -- ip addr
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Sequence

from minidocker.core import stage as _stage
from minidocker.core import syscalls as _syscalls
from minidocker.core.atomic import read_json
from minidocker.core.paths import state_dir
from minidocker.core.process import EngineError
from minidocker.core.spec import ORDER_FIRST, ContainerSpec
from minidocker.images import run as imagerun
from minidocker.network import netfiles, ports
from minidocker.network import stage as network
from minidocker.networks import driver, handoff, resolvconf
from minidocker.networks.store import Record, Store

__all__ = ["DNS_ADDRESS", "STAGES", "configure", "configure_joined", "main", "resolv_conf", "resolver",
           "running_container"]

DNS_ADDRESS = "127.0.0.11"


def resolv_conf(host_text: str) -> str:
    """The container's ``resolv.conf`` on a user-defined network: the embedded DNS, the host's search."""
    return resolvconf.for_container(host_text)


def custom_resolv_conf(text: str, custom: netfiles.Custom) -> str:
    """``--dns-search`` and ``--dns-option`` replace those lines, as dockerd does on a user-defined network.

    The nameserver stays the embedded DNS: ``--dns`` servers are where *it* forwards what it does
    not know (:meth:`minidocker.networks.dns.EmbeddedDNS.set_upstreams`), as dockerd's resolver does.
    Example: ``--dns-option ndots:2`` -> ``options ndots:2`` instead of ``options ndots:0``.
    """
    return netfiles.custom_resolv_conf(text, netfiles.Custom(search=custom.search, options=custom.options))


def endpoints_of(spec: ContainerSpec, mode: str, store: Store) -> list[tuple[Record, dict]]:
    """The networks of the container, the one of ``--network`` first, with their endpoint settings
    (``Aliases``, ``IPAMConfig``, ``MacAddress``) from the daemon's record of the container."""
    config = read_json(state_dir() / "containers" / spec.id / "config.json", {}) or {}
    primary = store.find(mode)
    found, seen = [(primary, {})], {primary.id}
    listed = config.get("Networks")
    if isinstance(listed, dict) and primary.name not in listed and not any(
            (s or {}).get("NetworkID") == primary.id for s in listed.values()):
        found = []  # disconnected from its --network (and not connected again): not plugged in
    for name, settings in (config.get("Networks") or {}).items():
        record = store.get(settings.get("NetworkID") or name) or store.get(name)
        if record is None:
            continue
        if record.id == primary.id:
            found[0] = (primary, settings)
        elif record.id not in seen:
            seen.add(record.id)
            found.append((record, settings))
    return found


# --8<-- [start:configure]
# --8<-- [start:configure_part1]
def configure(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Plug the container into its user-defined networks once its network namespace exists."""
    store = Store()
    nets = endpoints_of(spec, args.network, store)
    mappings = [ports.parse_publish(text) for text in args.publish]
    held = ports.reserve(mappings)  # a host port in use fails now
    published = [m for m, _ in held]
    hostname = spec.hostname or spec.id[:12]
    custom = netfiles.Custom.of(args)  # --add-host, --dns-search, --dns-option; --dns: the DNS's upstreams
    directory = netfiles.files_dir(spec.id)
    cleanup.callback(netfiles.remove_files, directory)
    files = netfiles.write_files(directory, hostname, None, "bridge")
    resolv = custom_resolv_conf(resolv_conf(netfiles.host_resolv_conf()), custom)
    (directory / "resolv.conf").write_text(resolv)
    spec.add_hook("before_pivot", lambda root: netfiles.bind_files(root, files))
    routed = next((r.id for r, _ in nets if not r.internal), None)

    def connect(pid: int) -> None:
        first = ""
        for i, (record, settings) in enumerate(nets):
            wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address") or ""
            lease = driver.attach(store, record, spec.id, pid, f"eth{i}", default_route=record.id == routed,
                                  ip=wanted, mac=settings.get("MacAddress") or "",
                                  published=published if i == 0 else ())
            first = first or lease.ip
        gateway = nets[0][0].gateway if nets else ""
        extra = [(name, gateway if ip == "host-gateway" else ip) for name, ip in custom.hosts]
        (directory / "hosts").write_text(netfiles.hosts_file(hostname, first, extra))
    # --8<-- [end:configure_part1]

    # --8<-- [start:configure_part2]
    # data, not a closure: chapter 10's monitor hands it from process to process (daemon/handover.py)
    unplug = functools.partial(disconnect, store, [record for record, _ in nets], spec.id, held)
    cleanup.callback(unplug)
    spec.add_hook("on_created", connect)
    if nets:  # 127.0.0.11 answers from PID 1's first instruction: the sockets go to the daemon now
        spec.add_hook("on_created", lambda pid: handoff.hand_over(spec.id, pid))
    spec.add_hook("on_exit", unplug)
# --8<-- [end:configure_part2]
# --8<-- [end:configure]


def disconnect(store: Store, records: list[Record], container_id: str, held: list, *_: object) -> None:
    """Take the container off its networks and free its published ports; the second call does nothing."""
    for record in records:
        with contextlib.suppress(Exception):
            driver.detach(store, record, container_id)
    for _m, sock in held:
        sock.close()
    held.clear()


def running_container(ref: str) -> tuple[str, int]:
    """The id and PID 1 of the running container ``ref`` (id, unique id prefix or name) of this state
    directory, from what its monitor recorded (``state.json``); EngineError if there is none."""
    root = state_dir() / "containers"
    ref = ref.lstrip("/")
    try:
        ids = [e for e in os.listdir(root) if len(e) == 64]
    except FileNotFoundError:
        ids = []
    found = [ref] if ref in ids else [
        cid for cid in ids if (read_json(root / cid / "config.json", {}) or {}).get("Name") == f"/{ref}"]
    found = found or ([cid for cid in ids if cid.startswith(ref)] if len(ref) >= 4 else [])
    if len(found) != 1:
        raise EngineError(f"no such container: {ref}" if not found else f"ambiguous container: {ref}")
    state = read_json(root / found[0] / "state.json", {}) or {}
    if state.get("Status") != "running" or not state.get("Pid"):
        raise EngineError(f"cannot join network of a non running container: {found[0]}")
    return found[0], int(state["Pid"])


# --8<-- [start:configure_joined]
def configure_joined(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """``--network container:ID``: PID 1 is made in the other container's network namespace.

    No new namespace: the engine itself steps into the other's (setns(2), as ``ip netns exec``
    does) just before PID 1 is forked, which inherits it, and steps back as soon as PID 1 exists
    (the first ``on_created`` hook). The container gets the other's DNS files, and its hostname.
    """
    if args.publish:
        raise EngineError("conflicting options: port publishing and the container type network mode")
    other, pid = running_container(args.network.partition(":")[2])
    theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    ours = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if os.path.samestat(os.fstat(theirs), os.fstat(ours)):  # its PID 1 is gone and the pid is the host's
        os.close(theirs), os.close(ours)
        raise EngineError(f"cannot join network of a non running container: {other}")
    spec.namespaces.discard("net")
    directory = netfiles.files_dir(other)
    files = {f"/etc/{name}": str(directory / name) for name in netfiles.NAMES if (directory / name).exists()}
    with contextlib.suppress(OSError):
        spec.hostname = (directory / "hostname").read_text().strip() or spec.hostname
        spec.env["HOSTNAME"] = spec.hostname
    spec.add_hook("before_pivot", lambda root: netfiles.bind_files(root, files))

    step_back = StepBack(theirs, ours)
    cleanup.callback(step_back)  # if the start fails before PID 1 exists
    _syscalls.setns(theirs, _syscalls.CLONE_NEWNET)  # the last thing: later stages set up no network
    spec.add_hook("on_created", step_back, order=ORDER_FIRST)
# --8<-- [end:configure_joined]


class StepBack:
    """Back into the engine's own network namespace, once (an object: see :func:`disconnect`)."""

    def __init__(self, theirs: int, ours: int) -> None:
        self.held = [theirs, ours]

    def __call__(self, *_: object) -> None:
        if self.held:
            _syscalls.setns(self.held[1], _syscalls.CLONE_NEWNET)
            for fd in self.held:
                os.close(fd)
            self.held.clear()


def resolver(mode: str) -> object:
    """Chapter 05's ``register_mode`` resolver: our configure for a user-defined network's name or id,
    and for ``container:ID``."""
    if mode.startswith("container:") and len(mode) > len("container:"):
        return configure_joined
    if mode in network.MODES or ":" in mode or not mode:
        return None
    try:
        return configure if Store().get(mode) is not None else None
    except OSError:
        return None


network.register_mode(resolver)

STAGES = imagerun.STAGES


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.networks [OPTIONS] IMAGE -- CMD [ARG...]``: chapter 07's run, our networks."""
    return imagerun.main(argv)  # the stages are chapter 07's: this module's import registered the mode


if __name__ == "__main__":
    _stage.exit_now(main())
