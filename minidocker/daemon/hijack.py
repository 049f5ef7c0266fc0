"""Chapter 10: hijacked HTTP connections: after ``101 UPGRADED`` the socket is a raw, two-way pipe.

``docker attach`` and ``docker exec`` need what plain HTTP cannot give: the client's keystrokes and
the container's output flowing at the same time, for as long as the process lives. Docker asks
for it with ``Connection: Upgrade`` / ``Upgrade: tcp``; the server answers ``101 UPGRADED`` and from
then on both sides own the raw socket. One subtlety makes ``docker run`` work: when the client has
no more input it *half-closes* the socket (shutdown(SHUT_WR)). That is not a disconnect: output
must keep flowing until the process ends. So after the 101 the connection gets our own asyncio
protocol, which keeps the socket open on EOF (aiohttp's would close it).

Example (in an aiohttp handler)::

    raw = await hijack(request, "application/vnd.docker.raw-stream")
    await raw.write(b"hello\\n")
    data = await raw.read()       # b"" once the client half-closed (or went away)
    raw.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from typing import Any

from aiohttp import web

__all__ = ["MULTIPLEXED", "RAW", "RawStream", "hijack"]

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
OPEN: set[RawStream] = set()  # closed by the daemon when it shuts down


class RawStream(asyncio.Protocol):
    """A hijacked connection: read what the client sends, write what it should get."""

    def __init__(self, transport: asyncio.Transport, response: web.StreamResponse,
                 handler: asyncio.Protocol | None = None) -> None:
        self.transport, self.response = transport, response
        # aiohttp's protocol for this connection: it learns of the loss only through us, since the
        # transport now calls us. Told nothing, the server would keep it (and us) in its table of
        # open connections for good: about 16 KB for every attach or exec, a daemon growing forever.
        self.handler = handler
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost = asyncio.Event()  # the connection is gone both ways
        self._can_write = asyncio.Event()
        self._can_write.set()

    # The aiohttp protocol hands us the bytes it had already read past the request.
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.incoming.put_nowait(data)
        return False, b""

    def feed_eof(self) -> None:
        self.incoming.put_nowait(b"")

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(b"")  # a half-close: keep writing
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(b"")
        self.lost.set()
        self._can_write.set()
        OPEN.discard(self)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def read(self) -> bytes:
        """The next bytes from the client; ``b""`` once it has half-closed or gone."""
        return await self.incoming.get()

    async def write(self, data: bytes) -> bool:
        """Send ``data`` (waiting while the client reads slowly); False if the client is gone."""
        if self.lost.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self._can_write.wait()
        return not self.lost.is_set()

    def close(self) -> None:
        """Flush and close our side of the socket: the client reads EOF."""
        if not self.transport.is_closing():
            self.transport.close()
        OPEN.discard(self)


class _UntilClose(web.StreamResponse):
    """A ``200 OK`` whose body is everything up to the close: no length, no chunks (as dockerd's)."""

    _length_check = False


async def _headers_read(transport: Any, timeout: float = 1.0) -> None:
    """Wait (a moment at most) until the client has read our headers from a UNIX socket.

    Many clients (docker-py, anything on Python's http.client) read the headers through a buffer
    and then take the raw socket: bytes that arrived with the headers sit in that buffer, lost.
    dockerd's first bytes rarely come that fast; a log replayed at once (``attach?logs=1``) or a
    quick exec's output do here. On a UNIX socket SIOCOUTQ counts what the peer has not read yet.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return
    deadline = asyncio.get_running_loop().time() + timeout
    with contextlib.suppress(OSError):
        while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] > 0:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.002)


# --8<-- [start:hijack]
async def hijack(request: web.Request, content_type: str) -> RawStream:
    """Answer ``101 UPGRADED`` and take the socket over from the HTTP server.

    A client that did not ask for the upgrade (a plain ``POST``, ``curl``) gets ``200 OK`` and the
    same bytes, the body ending when the connection closes.
    """
    if "upgrade" in request.headers.get("Connection", "").lower():
        response = web.StreamResponse(status=101, reason="UPGRADED", headers={
            "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
    else:
        response = _UntilClose(headers={"Content-Type": content_type})
        response.force_close()  # "Connection: close"
    await response.prepare(request)  # sends the status line and headers now
    transport: Any = request.transport
    raw = RawStream(transport, response, request.protocol)
    request.protocol.set_parser(raw)  # bytes already read past the request come to us
    transport.set_protocol(raw)  # and from now on, everything
    if not transport.is_reading():
        transport.resume_reading()
    OPEN.add(raw)
    await _headers_read(transport)  # before the first byte of the stream
    return raw
# --8<-- [end:hijack]


def finished(request: web.Request, raw: RawStream) -> web.StreamResponse:
    """End a hijacked request: close the socket, and tell aiohttp the connection is done."""
    raw.close()
    with contextlib.suppress(Exception):
        request.protocol.force_close()
    return raw.response
