"""Chapter 10: ``minidockerd``, the daemon: the engine behind a Docker-compatible REST API.

Why a daemon at all? Containers outlive the command that started them (``docker run -d``); many
clients (a CLI, an SDK, a CI system) must see the same containers, images and volumes; and some
work is best done once by a long-lived process (a registry login, importing pyroute2). So one
process owns the engine's state and the others ask it, over HTTP on a UNIX socket, optionally on
TCP with mutual TLS. We speak enough of the Docker Engine API that the real ``docker`` CLI and the
``docker`` Python SDK can drive it.

Run it (as root)::

    python -m minidocker.daemon                       # listens on /run/minidocker.sock
    python -m minidocker.daemon -H unix:///tmp/d.sock -H tcp://0.0.0.0:2376 \\
        --tlscacert ca.pem --tlscert server.pem --tlskey server-key.pem
    python -m minidocker.daemon --userns-remap default  # every container's root is uid 100000 outside
    python -m minidocker.daemon --data-root /srv/md2 -H unix:///run/md2.sock \\
        --bridge md2br0 --bip 10.99.0.1/24 --nft-table md2    # a second daemon beside the first
    DOCKER_HOST=unix:///run/minidocker.sock docker run --rm busybox echo hi
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core import syscalls as _syscalls
from minidocker.core.api import API_VERSION, MIN_API_VERSION, default_socket
from minidocker.core.paths import run_dir, state_dir, umask
from minidocker.core.process import EngineError
from minidocker.daemon import engine, events, hijack, memdebug, places, plugins, runtimes, stats
from minidocker.daemon.routes import archive as api_archive
from minidocker.daemon.routes import build as api_build
from minidocker.daemon.routes import containers as api_containers
from minidocker.daemon.routes import images as api_images
from minidocker.daemon.routes import networks as api_networks
from minidocker.daemon.routes import streams as api_streams
from minidocker.daemon.routes import swarm as api_swarm
from minidocker.daemon.routes import system as api_system
from minidocker.daemon.supervisor import Supervisor

__all__ = ["create_app", "main", "serve"]

log = logging.getLogger("minidockerd")
DEFAULT_CONFIG = "/etc/minidocker/daemon.json"


def error_response(status: int, message: str) -> web.Response:
    """Docker's error shape; ``Content-Type`` exactly ``application/json`` or the CLI shows raw text."""
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        headers={"Content-Type": "application/json"})


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


# exercise 10.1: Check the API version and turn every failure into Docker's error JSON
# hint: a /vX.YY newer than API_VERSION or older than MIN_API_VERSION: 400 (_version_tuple); await the
#   handler; an EngineError: error_response(errors.http_status(e), message) (304 stays bare; a 500 is
#   logged in one line); an HTTPException of 400 and up: its status ('page not found' for 404); let
#   ConnectionError and CancelledError through; anything else is a bug: log its traceback, 500
#   'internal error: TYPE: message'.
# --8<-- [start:middleware]
@web.middleware
async def docker_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Check the ``/vX.YY`` prefix, and turn every failure into Docker's ``{"message": ...}``."""
    version = request.match_info.get("version", "")[1:]
    if version and _version_tuple(version) > _version_tuple(API_VERSION):
        return error_response(400, f"client version {version} is too new. Maximum supported API "
                                   f"version is {API_VERSION}")
    if version and _version_tuple(version) < _version_tuple(MIN_API_VERSION):
        return error_response(400, f"client version {version} is too old. Minimum supported API "
                                   f"version is {MIN_API_VERSION}, please upgrade your client")
    try:
        return await handler(request)
    except EngineError as e:  # classified by the code that raised it (minidocker.core.errors)
        status = errors.http_status(e)
        if status == 304:
            return web.Response(status=304)
        if status == 500:
            log.error("%s %s: %s", request.method, request.path, e)
        return error_response(status, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, "page not found" if e.status == 404 else e.reason)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception as e:  # a bug: it costs this request, not the daemon; its traceback goes to the log
        log.exception("%s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")
# --8<-- [end:middleware]


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Docker-Experimental"] = "false"
    response.headers["Server"] = "minidockerd"


# --8<-- [start:create_app]
def create_app(config: dict[str, Any] | None = None) -> web.Application:
    """The application: every route served with and without a ``/vX.YY`` prefix."""
    app = web.Application(middlewares=[docker_errors], client_max_size=16 << 20)
    app["config"] = config or {}
    app["supervisor"] = Supervisor()
    app["images"] = engine.images(in_use=lambda image_id: [
        c.id[:12] for c in app["supervisor"].containers.values() if c.config["Image"] == image_id])
    app["execs"] = {}
    app["events"] = events.Broker()  # GET /events, and what the others emit (daemon/events.py)
    app["daemon_id"] = _daemon_id()
    app["runtimes"] = runtimes.Runtimes()  # ours; plug-ins add theirs (daemon/runtimes.py)
    app.on_response_prepare.append(_headers)
    hooks = plugins.install(app)  # later chapters (first: their routes win over the built-in ones)
    app["supervisor"].hooks, app["supervisor"].app = hooks, app
    try:  # --default-runtime: ours, or one a plug-in added
        app["runtimes"].default = app["runtimes"].find(app["config"].get("default-runtime")).name
    except errors.InvalidArgument as e:
        raise SystemExit(f"minidockerd: --default-runtime: {e}") from None
    api_build.register(app)  # chapter 08 (first: its /build/prune replaces the placeholder below)
    for table in (api_system.routes, api_containers.routes, api_streams.routes, api_images.routes,
                  api_networks.routes, api_archive.routes, api_swarm.routes, stats.routes, events.routes):
        for route in table:
            for prefix in ("", "/{version:v[0-9]+[.][0-9]+}"):
                app.router.add_route(route.method, prefix + route.path, route.handler)
    app.on_startup.append(_restore)
    app.on_shutdown.append(_close_streams)
    return app
# --8<-- [end:create_app]


def _daemon_id() -> str:
    path = state_dir() / "daemon-id"
    if not path.exists():
        path.write_text(os.urandom(16).hex())
    return path.read_text().strip()


async def _restore(app: web.Application) -> None:
    sup: Supervisor = app["supervisor"]

    async def release(c: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, app["images"].release_rootfs, c.config)

    sup.on_removed.append(release)
    # Monitors are forked by the fork server and reparented to us: we reap them.
    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)
    await asyncio.get_running_loop().run_in_executor(None, sup.start_forkserver)
    await asyncio.get_running_loop().run_in_executor(None, _sweep)
    app["events.socket"] = await events.serve_notifications(app)  # the monitors' reports (health)
    await sup.restore()
    for hook in app["hooks"].daemon_restore:
        try:
            await hook(app)
        except Exception:  # a plug-in's failure costs its feature, not the daemon
            log.exception("restoring a plug-in")
    await sup.start_on_boot()  # restart policies: `always` containers come back with the daemon


def _sweep() -> None:
    """Clean up what engines killed with their watchdogs left (chapters 04 and 05): addresses,
    published ports and the bridge of dead containers, and claimed container filesystems."""
    from minidocker.network.stage import Network
    from minidocker.overlay.layers import LayerStore
    from minidocker.overlay.stage import ContainerFS

    for what, sweep in (("network", lambda: Network().reconcile()),
                        ("filesystems", lambda: ContainerFS.remove_abandoned(LayerStore()))):
        try:
            if cleaned := sweep():
                log.info("cleaned up after dead engines (%s): %s", what, " ".join(c[:12] for c in cleaned))
        except Exception as e:  # a host without nftables, say: the daemon runs on
            log.warning("cleaning up after dead engines (%s): %s", what, e)


async def _close_streams(app: web.Application) -> None:
    for raw in list(hijack.OPEN):
        raw.close()
    if "events.socket" in app:
        app["events.socket"].close()
    for queue in list(app["events"].subscribers):  # `docker events` ends rather than hold us up
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
    app["supervisor"].stop_forkserver()
    for hook in app["hooks"].daemon_close:
        with contextlib.suppress(Exception):
            await hook(app)


def tls_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by ``ca`` (Docker's ``--tlsverify``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# --8<-- [start:serve]
async def serve(hosts: Sequence[str], config: dict[str, Any], ready: Any = None) -> None:
    """Listen on every ``unix://`` and ``tcp://`` host until SIGTERM or SIGINT; containers run on."""
    for host in hosts:  # a live daemon's socket is not ours to take over (a stale file is)
        if host.startswith("unix://") and _answers(host[7:]):
            raise SystemExit(f"minidockerd: another daemon listens on {host}: give another -H")
    runner = web.AppRunner(create_app(config), handle_signals=False, access_log=None,
                           shutdown_timeout=2)
    await runner.setup()
    sockets: dict[str, int] = {}  # the UNIX sockets we made, by inode: removed when we stop
    for host in hosts:
        scheme, _, where = host.partition("://")
        if scheme == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with umask(0o117):  # 0660 from bind(2) on: root and the minidocker group
                listener.bind(where)
            await web.SockSite(runner, listener).start()
            sockets[where] = os.stat(where).st_ino
            with contextlib.suppress(KeyError):
                os.chown(where, 0, grp.getgrnam("minidocker").gr_gid)
        elif scheme == "tcp":
            address, _, port = where.rpartition(":")
            context = None
            if config.get("tlscacert"):
                context = tls_context(config["tlscacert"], config["tlscert"], config["tlskey"])
            elif not (config.get("insecure-tcp") and address in ("127.0.0.1", "localhost", "::1")):
                raise SystemExit(f"minidockerd: refusing to listen on {host} without TLS: give "
                                 "--tlscacert/--tlscert/--tlskey (or --insecure-tcp on 127.0.0.1 only)")
            await web.TCPSite(runner, address or "127.0.0.1", int(port), ssl_context=context).start()
        else:
            raise SystemExit(f"minidockerd: unsupported host {host!r}: use unix:///PATH or tcp://ADDR:PORT")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    memdebug.install(run_dir())  # with PYTHONTRACEMALLOC=N set: allocation snapshots on SIGUSR2
    if ready:
        ready()
    await stop.wait()
    await runner.cleanup()
    for path, inode in sockets.items():  # unless a newer daemon has taken the path since
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)
# --8<-- [end:serve]


def _answers(path: str) -> bool:
    """Whether a process listens on the UNIX socket ``path`` (a stale file from a dead one does not)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
            return True
        except OSError:
            return False


def parse_args(argv: Sequence[str] | None) -> tuple[list[str], dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="minidockerd", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", action="append", default=[], help="unix:///PATH or tcp://ADDR:PORT")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help="JSON config (like daemon.json)")
    parser.add_argument("--data-root", help="state directory (default: /var/lib/minidocker)")
    parser.add_argument("--exec-root", help="runtime files: sockets, locks (default: /run/minidocker; "
                                            "/run/minidocker-HASH for another --data-root)")
    parser.add_argument("--pidfile", help="the daemon's pid, for 'minidocker daemon stop' "
                                          "(default: EXEC_ROOT/minidockerd.pid)")
    parser.add_argument("--bridge", help="the default network's bridge (default: minidocker0)")
    parser.add_argument("--bip", metavar="CIDR", help="the default network's subnet, its gateway the first "
                                                      "address (default: 172.29.0.0/16)")
    parser.add_argument("--nft-table", help="the nftables table of its rules (default: minidocker)")
    parser.add_argument("--cgroup-parent", help="the cgroup above the containers' (default: minidocker)")
    parser.add_argument("--tlscacert")
    parser.add_argument("--tlscert")
    parser.add_argument("--tlskey")
    parser.add_argument("--insecure-tcp", action="store_true", help="allow plain TCP on 127.0.0.1")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="URL")
    parser.add_argument("--default-network", help="network for containers that name none")
    parser.add_argument("--userns-remap", metavar="default",
                        help="run every container in a user namespace, its root uid 100000 on the host "
                             "(docker run --userns=host opts out)")
    parser.add_argument("--debug", action="store_true")
    plugins.add_daemon_arguments(parser)  # later chapters' options (--add-runtime ...)
    args = parser.parse_args(argv)
    config: dict[str, Any] = {}
    if os.path.exists(args.config_file):
        with open(args.config_file) as f:
            config = json.load(f)
    for key in ("data_root", "exec_root", "pidfile", "bridge", "bip", "nft_table", "cgroup_parent",
                "tlscacert", "tlscert", "tlskey", "default_network", "userns_remap"):
        if getattr(args, key):
            config[key.replace("_", "-")] = getattr(args, key)
    if config.get("userns-remap") not in (None, "", "default"):
        parser.error(f"--userns-remap {config['userns-remap']!r}: only 'default' is supported here (uids "
                     "100000-165535, without /etc/subuid)")
    config["insecure-tcp"] = args.insecure_tcp or config.get("insecure-tcp", False)
    config["registry-mirrors"] = config.get("registry-mirrors", []) + args.registry_mirror
    config["debug"] = args.debug or config.get("debug", False)
    plugins.read_daemon_arguments(args, config)
    hosts = args.host or config.get("hosts") or [f"unix://{default_socket()}"]
    return hosts, config


# The daemon's flags, handed to its fork server, monitors and engines as the variables core.paths and
# the network stage read (so that `python -m minidocker.network` alone takes them too).
_ENVIRONMENT = {"data-root": "MINIDOCKER_STATE", "exec-root": "MINIDOCKER_RUN", "bridge": "MINIDOCKER_BRIDGE",
                "bip": "MINIDOCKER_SUBNET", "nft-table": "MINIDOCKER_NFT_TABLE",
                "cgroup-parent": "MINIDOCKER_CGROUP_PARENT"}


def _configure_places(config: dict[str, Any]) -> None:
    """Set the exec root (derived from another data root: :mod:`minidocker.daemon.places`) and pass
    every place flag on through the environment; the subnet of ``--bip`` is checked here."""
    config["exec-root"] = config.get("exec-root") or places.exec_root(
        config.get("data-root"), inherited_state=os.environ.get("MINIDOCKER_STATE") or "/var/lib/minidocker",
        inherited_run=os.environ.get("MINIDOCKER_RUN") or "/run/minidocker")
    if config.get("bip"):
        import ipaddress

        try:
            config["bip"] = str(ipaddress.ip_interface(config["bip"]).network)
        except ValueError as e:
            raise SystemExit(f"minidockerd: invalid --bip {config['bip']!r}: {e}") from None
    for key, variable in _ENVIRONMENT.items():
        if config.get(key):
            os.environ[variable] = str(config[key])


def main(argv: Sequence[str] | None = None) -> int:
    """``minidockerd [-H HOST]... [OPTIONS]``: run the daemon in the foreground."""
    hosts, config = parse_args(argv)
    _configure_places(config)
    if config["registry-mirrors"]:  # the daemon's own flags and file win over what it inherited
        os.environ["MINIDOCKER_REGISTRY_MIRRORS"] = ",".join(config["registry-mirrors"])  # for pulls
    logging.basicConfig(level=logging.DEBUG if config["debug"] else logging.INFO,
                        format="%(asctime)s minidockerd %(levelname)s %(message)s")
    pidfile = Path(config.get("pidfile") or run_dir() / "minidockerd.pid")
    try:  # held while we run: two daemons never share a root (minidocker.daemon.places)
        locks = [places.claim(state_dir(), "data root"), places.claim(run_dir(), "exec root")]
        places.write_pidfile(pidfile)
    except errors.Conflict as e:
        print(f"minidockerd: {e}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(hosts, config, ready=lambda: log.info("listening on %s", " ".join(hosts))))
    finally:
        with contextlib.suppress(OSError, ValueError):  # unless another daemon has written it since
            if int(pidfile.read_text().split()[0]) == os.getpid():
                pidfile.unlink()
        for lock in locks:
            lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
