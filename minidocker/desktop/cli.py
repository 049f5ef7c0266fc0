"""``minidocker desktop``: serve the dashboard on a loopback address and print its URL with a token.

Why refuse a public address unless asked? The dashboard is HTTP without TLS: on another interface,
anyone on the network who sees one request sees the token, and with it root on this host. So an
``--addr`` that is not loopback needs ``--public`` too (and gets a warning); the loopback default
needs nothing. The URL goes to standard output, one line, the rest to standard error, so a script
can read it (``minidocker desktop | head -1``).

Example::

    $ minidocker desktop --addr 127.0.0.1:0
    minidocker desktop: serving the daemon at unix:///run/minidocker.sock (Ctrl-C stops)
    http://127.0.0.1:40117/?token=<TOKEN>
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

from minidocker.client.client import Client, DaemonUnreachable

__all__ = ["DEFAULT_ADDR", "main", "parse_addr"]

DEFAULT_ADDR = "127.0.0.1:7015"


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> ``(host, port)``; a ValueError says what is wrong."""
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"bad --addr {text!r}: use HOST:PORT, like {DEFAULT_ADDR}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"bad --addr {text!r}: the host must be an IP address (or localhost)") from None
        host = "127.0.0.1"
    return host, int(port)


def _loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror} (choose another with --addr "
                         f"{host}:0)") from None
    sock.listen(128)
    return sock


# --8<-- [start:serve]
async def serve(client: Client, sock: socket.socket, public: bool) -> None:
    """Serve the dashboard on ``sock`` until SIGINT or SIGTERM; then close every stream."""
    from aiohttp import web

    from minidocker.desktop.apilog import CallLog, LoggedClient
    from minidocker.desktop.guard import Guard
    from minidocker.desktop.server import make_app

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(64, thread_name_prefix="desktop"))  # streams wait there
    host, port = sock.getsockname()[:2]
    guard = Guard(host, port, public)
    logged = LoggedClient(client.host, client.tls, CallLog())
    await asyncio.to_thread(logged.negotiate)  # once, before threads race to learn an older daemon's version
    runner = web.AppRunner(make_app(logged, guard), access_log=None, shutdown_timeout=2)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"minidocker desktop: serving the daemon at {client.host} (Ctrl-C stops)", file=sys.stderr)
    print(guard.url(), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
# --8<-- [end:serve]


def main(client: Client | None, argv: list[str]) -> int:
    """Parse ``argv``, check the address, and serve until stopped; 0, or 1 with one line."""
    p = argparse.ArgumentParser(prog="minidocker desktop", description="Serve the dashboard in a browser.")
    p.add_argument("--addr", default=DEFAULT_ADDR, help=f"where to listen (default {DEFAULT_ADDR})")
    p.add_argument("--public", action="store_true", help="allow an address other than loopback")
    p.add_argument("-H", "--host", help="the daemon (default: minidocker's -H, $MINIDOCKER_HOST, the socket)")
    opts = p.parse_args(argv)
    try:
        host, port = parse_addr(opts.addr)
        if not _loopback(host) and not opts.public:
            raise ValueError(f"refusing to serve on {host}, which is not loopback: the token would cross "
                             "the network in clear text (add --public if you mean it)")
        if not _loopback(host):
            print(f"minidocker desktop: WARNING: serving on {host}: anyone who sees the URL is root "
                  "on this host", file=sys.stderr)
        sock = _bind(host, port)
    except ValueError as e:
        print(f"minidocker desktop: {e}", file=sys.stderr)
        return 1
    if opts.host or client is None:
        client = Client(opts.host, client.tls if client else None)
    logging.basicConfig(level=logging.WARNING, format="minidocker desktop: %(message)s")
    try:
        asyncio.run(serve(client, sock, opts.public))
    except DaemonUnreachable as e:  # checked once at the start: the page would show nothing
        print(f"minidocker desktop: {e}", file=sys.stderr)
        return 1
    finally:
        sock.close()
    return 0
