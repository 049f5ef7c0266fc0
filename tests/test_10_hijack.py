"""Chapter 10: a hijacked connection, once closed, leaves nothing in the HTTP server (the soak's leak).

After ``101 UPGRADED`` the transport talks to our :class:`~minidocker.daemon.hijack.RawStream`, not to
aiohttp's protocol, so aiohttp would never hear that the connection is gone: its server kept every
attach and exec's protocol (and our stream) in its table of connections, 16 KB per ``run --rm``,
for the daemon's whole life. Here an aiohttp server with one hijacking route, in-process, serves
twenty such connections; afterwards its table must be empty, and so must ``hijack.OPEN``.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web

from minidocker.daemon import hijack

REQUEST = (b"POST /attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
           b"Content-Length: 0\r\n\r\n")


async def _echo(request: web.Request) -> web.StreamResponse:
    raw = await hijack.hijack(request, hijack.RAW)
    while data := await raw.read():  # until the client half-closes
        await raw.write(data.upper())
    return hijack.finished(request, raw)


def _client(path: str, closes_first: bool) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(REQUEST)
        answer = b""
        while b"\r\n\r\n" not in answer:  # as docker does: the stream starts after the 101
            answer += sock.recv(4096)
        sock.sendall(b"hello")
        while b"HELLO" not in answer:
            answer += sock.recv(4096)
        if closes_first:  # the client goes away without a half-close: the server learns of it by EOF
            return answer
        sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(4096):
            answer += data
        return answer


async def _serve_and_count(path: str) -> tuple[int, int, list[bytes]]:
    app = web.Application()
    app.router.add_post("/attach", _echo)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    try:
        loop = asyncio.get_running_loop()
        answers = [await loop.run_in_executor(None, _client, path, i % 2 == 1) for i in range(20)]
        server = runner.server
        assert server is not None
        for _ in range(200):  # the closes reach the loop a moment after the clients return
            if not server.connections and not hijack.OPEN:
                break
            await asyncio.sleep(0.01)
        return len(server.connections), len(hijack.OPEN), answers
    finally:
        await runner.cleanup()


def test_closed_hijacked_connections_leave_the_servers_table(tmp_path: Path) -> None:
    connections, still_open, answers = asyncio.run(_serve_and_count(str(tmp_path / "h.sock")))
    assert all(a.startswith(b"HTTP/1.1 101 UPGRADED\r\n") and a.endswith(b"HELLO") for a in answers)
    assert (connections, still_open) == (0, 0)
