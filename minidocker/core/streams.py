"""Docker's stream multiplexing: stdout and stderr on one connection, each chunk behind an 8-byte header.

A hijacked attach or exec connection without a terminal carries both output streams on one socket.
Docker frames each chunk: byte 0 names the stream (0 stdin, 1 stdout, 2 stderr, 3 a system error),
bytes 1-3 are zero, bytes 4-7 the payload's length, big-endian. With a terminal (``Tty``) there is
only one stream and no framing at all. minidocker's monitor speaks the same framing to the daemon,
plus a ``CONTROL`` stream of JSON messages (an exec's exit code, a resize, "stdin closed").

Example::

    >>> frame(STDOUT, b"hi\\n")
    b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03hi\\n'
    >>> d = Demux(); d.feed(frame(STDERR, b"oops") + frame(STDOUT, b"o")[:5])
    [(2, b'oops')]
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: a client's pump (run without -t) imports this module
    import socket
    from typing import Any

__all__ = ["CONTROL", "STDERR", "STDIN", "STDOUT", "SYSTEM", "Conn", "Demux", "frame"]

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3
CONTROL = 9  # between the daemon and a monitor only: one JSON object per frame
_HEADER = struct.Struct(">BxxxL")


# exercise 10.4: One frame of a multiplexed stream
# hint: a byte for the stream, three zero bytes, the payload's length as 4 big-endian bytes (_HEADER),
#   then the payload.
# --8<-- [start:frame]
def frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed frame: ``[stream, 0, 0, 0, size (4 bytes, big-endian)]`` then the payload."""
    return _HEADER.pack(stream, len(payload)) + payload
# --8<-- [end:frame]


# --8<-- [start:Demux]
class Demux:
    """Split a byte stream of frames back into ``(stream, payload)`` pairs, whatever the read sizes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes just read; return the frames now complete (a partial one waits for more)."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break
            frames.append((stream, bytes(self._buffer[_HEADER.size:_HEADER.size + size])))
            del self._buffer[:_HEADER.size + size]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still waiting."""
        return len(self._buffer)
# --8<-- [end:Demux]


class Conn:
    """One connection to a monitor: a request line first, then frames both ways (buffered)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.inbuf, self.outbuf = sock, bytearray(), bytearray()
        self.kind = "request"  # then "attach", "exec" or "done"
        self.streams: set[int] = set()
        self.target: Any = None  # the Stdio (container) or ExecSession whose stdin we feed
        self.demux = Demux()
        self.closing = False

    def send(self, data: bytes) -> None:
        self.outbuf += data
