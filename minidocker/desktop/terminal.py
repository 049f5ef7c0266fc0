"""A shell in a container, in the page: exec + the hijacked stream, bridged to a WebSocket.

The daemon's side is what ``docker exec -it`` uses: ``POST /containers/{id}/exec`` creates the exec
(``Tty: true``, stdin attached), ``POST /exec/{id}/start`` with ``Upgrade: tcp`` turns the HTTP
connection into the terminal's raw bytes both ways (with a TTY there is no multiplexing: one
stream), and ``POST /exec/{id}/resize?h=ROWS&w=COLS`` tells the pseudo-terminal its size. The page's
side is xterm.js, which speaks a WebSocket. This module joins the two: each WebSocket message is
either keystrokes (binary, or text ``{"input": "..."}``) or ``{"resize": [cols, rows]}``; each chunk
from the socket goes to the page as a binary message. When either side ends, so does the other: a
daemon (Docker's too) keeps an exec running after its client has gone, so closing the page types
Ctrl-C and Ctrl-D into the shell first.

Example::

    ws = new WebSocket("ws://127.0.0.1:7015/api/containers/web/terminal")
    ws.send(JSON.stringify({resize: [80, 24]})); ws.send(JSON.stringify({input: "echo hi\\r"}))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

from aiohttp import WSMsgType, web

from minidocker.client.client import APIError, Client

__all__ = ["SHELL", "terminal"]

SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi"]
HANG_UP = b"\x03\x04"  # what the page's closing types: interrupt whatever runs, then end the shell
MAX_MESSAGE = 1 << 16  # keystrokes or a paste: more in one message is refused


def _reader(sock: socket.socket, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """In a thread: every chunk from the hijacked socket to the queue, then None."""
    try:
        while data := sock.recv(1 << 16):
            loop.call_soon_threadsafe(queue.put_nowait, data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, None)


# --8<-- [start:terminal]
# --8<-- [start:terminal_part1]
async def terminal(client: Client, request: web.Request, container: str) -> web.WebSocketResponse:
    """Open a shell in ``container`` and join it to the page's WebSocket until either side ends."""
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    created = await asyncio.to_thread(client.json, "POST", f"/containers/{container}/exec", None, {
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True,
        "Env": ["TERM=xterm-256color"], "Cmd": SHELL})
    exec_id = created["Id"]
    sock = await asyncio.to_thread(client.hijack, f"/exec/{exec_id}/start", None,
                                   {"Detach": False, "Tty": True})
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()
    reading = loop.run_in_executor(None, _reader, sock, loop, queue)

    async def to_page() -> None:  # the shell's output, as it comes
        with contextlib.suppress(ConnectionError):
            while (data := await queue.get()) is not None:
                await ws.send_bytes(data)
        await ws.close()

    sending = asyncio.ensure_future(to_page())
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await asyncio.to_thread(sock.sendall, message.data)
            elif message.type == WSMsgType.TEXT:
                command = json.loads(message.data)
                if "input" in command:
                    await asyncio.to_thread(sock.sendall, str(command["input"]).encode())
                elif "resize" in command:
                    # --8<-- [end:terminal_part1]
                    cols, rows = (int(n) for n in command["resize"])
                    with contextlib.suppress(APIError):  # a shell that just ended cannot be resized
                        await asyncio.to_thread(client.json, "POST", f"/exec/{exec_id}/resize",
                                                {"h": rows, "w": cols})
    # --8<-- [start:terminal_part2]
    finally:  # the page went away (or the shell ended): end the shell, then hang up
        with contextlib.suppress(OSError):  # a daemon keeps an exec running when its client goes, as
            await asyncio.to_thread(sock.sendall, HANG_UP)  # Docker's does: Ctrl-C, then Ctrl-D ends it
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        await reading
        sock.close()
        await sending
    return ws
# --8<-- [end:terminal_part2]
# --8<-- [end:terminal]
