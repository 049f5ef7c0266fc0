"""Chapter 12: ``--network NAME``: a container on user-defined networks, from its engine's side.

Chapter 05's network stage knows ``bridge``, ``none`` and ``host``, and keeps a registry of other
modes (``register_mode``) that it never names. This chapter fills it: a ``--network`` value that
is a user-defined network's name or id plugs the container into that network's bridge, and into
every other network its record lists (the daemon's ``docker run --network a --network b``,
``docker network connect`` on a stopped container): ``eth0``, ``eth1``, ... each with an address
of its network (``--ip``), the default route through the first that is not ``--internal``. Its
``/etc/resolv.conf`` names ``127.0.0.11``, where the daemon's embedded DNS answers (``dns.py``).

Run it (as root, with a network made by the daemon)::

    python -m minidocker.networks --network front busybox -- ip addr
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from minidocker.core import stage as _stage
from minidocker.core.atomic import read_json
from minidocker.core.paths import state_dir
from minidocker.core.spec import ContainerSpec
from minidocker.images import run as imagerun
from minidocker.network import netfiles, ports
from minidocker.network import stage as network
from minidocker.networks import driver, resolvconf
from minidocker.networks.store import Record, Store

__all__ = ["DNS_ADDRESS", "STAGES", "configure", "main", "resolv_conf", "resolver"]

DNS_ADDRESS = "127.0.0.11"


def resolv_conf(host_text: str) -> str:
    """The container's ``resolv.conf`` on a user-defined network: the embedded DNS, the host's search."""
    return resolvconf.for_container(host_text)


def endpoints_of(spec: ContainerSpec, mode: str, store: Store) -> list[tuple[Record, dict]]:
    """The networks of the container, the one of ``--network`` first, with their endpoint settings
    (``Aliases``, ``IPAMConfig``, ``MacAddress``) from the daemon's record of the container."""
    config = read_json(state_dir() / "containers" / spec.id / "config.json", {}) or {}
    primary = store.find(mode)
    found, seen = [(primary, {})], {primary.id}
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
def configure(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Plug the container into its user-defined networks once its network namespace exists."""
    store = Store()
    nets = endpoints_of(spec, args.network, store)
    mappings = [ports.parse_publish(text) for text in args.publish]
    held = ports.reserve(mappings)  # a host port in use fails now
    published = [m for m, _ in held]
    hostname = spec.hostname or spec.id[:12]
    directory = netfiles.files_dir(spec.id)
    cleanup.callback(netfiles.remove_files, directory)
    files = netfiles.write_files(directory, hostname, None, "bridge")
    (directory / "resolv.conf").write_text(resolv_conf(netfiles.host_resolv_conf()))
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
        (directory / "hosts").write_text(netfiles.hosts_file(hostname, first))

    def disconnect(*_: object) -> None:
        for record, _settings in nets:
            with contextlib.suppress(Exception):
                driver.detach(store, record, spec.id)
        for _m, sock in held:
            sock.close()
        held.clear()

    cleanup.callback(disconnect)
    spec.add_hook("on_created", connect)
    spec.add_hook("on_exit", disconnect)
# --8<-- [end:configure]


def resolver(mode: str) -> object:
    """Chapter 05's ``register_mode`` resolver: our configure for a user-defined network's name or id."""
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
