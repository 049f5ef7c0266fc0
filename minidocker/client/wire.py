"""HTTP/1.1 on a connected socket, for the ``minidocker`` client: write one request, read its answer.

Why not the standard library's ``http.client``? Importing it costs about 30 ms (it imports the
``email`` package to parse headers, and ``ssl``), which doubled the time ``minidocker ps`` takes.
The client needs little of HTTP: one request per connection; a body given as bytes (sent with
``Content-Length``) or as a file (sent chunked); and an answer whose body ends where its
``Content-Length`` says, at the last chunk of a chunked body, or when the server closes.

Example::

    >>> sock = socket.socket(socket.AF_UNIX)
    >>> sock.connect("/run/minidocker.sock")
    >>> send_request(sock, "GET", "/_ping", {"Host": "docker"})
    >>> response = read_response(sock)
    >>> response.status, response.read()
    (200, b'OK')
"""

from __future__ import annotations

import io

TYPE_CHECKING = False
if TYPE_CHECKING:  # the client may hand us a bare _socket.socket: importing socket costs ps ~4 ms
    import socket
    from collections.abc import Callable, Iterator

__all__ = ["ProtocolError", "Response", "read_head", "read_line", "read_response", "reader", "send_request"]

MAX_LINE = 65536  # the longest status, header or chunk-size line we accept
MAX_HEADERS = 100


class ProtocolError(ConnectionError):
    """The peer did not speak HTTP/1.1, or closed the connection in the middle of an answer."""


# --8<-- [start:send_request]
def send_request(sock: socket.socket, method: str, target: str, headers: dict[str, str],
                 body: bytes | io.BufferedIOBase | None = None) -> None:
    """Write the request line, the headers and the body: bytes, ``None``, or a file (sent chunked)."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if isinstance(body, bytes | bytearray | None):
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        if body and len(body) > 1 << 16:  # a big body (a tar to load) is not copied to join the head
            sock.sendall(head)
            sock.sendall(body)
        else:
            sock.sendall(head + (body or b""))
        return
    lines.append("Transfer-Encoding: chunked")  # a file: its size may not be known in advance
    sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")
    while chunk := body.read(1 << 16):
        sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
    sock.sendall(b"0\r\n\r\n")
# --8<-- [end:send_request]


# exercise 11.1: Read an answer's status line and headers
# hint: lines from readline() until an empty one; the first is 'HTTP/1.x CODE REASON' (else ProtocolError,
#   as for b"" and a header line without a colon); names in lower case, a repeated header joined with
#   ', '; a 100 Continue head is skipped: read the next one.
# --8<-- [start:read_head]
def read_head(readline: Callable[[], bytes]) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers (names in lower case) from a source of lines; ``100 Continue`` skipped."""
    while True:
        line = readline()
        if not line:
            raise ProtocolError("the connection was closed without an answer")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
            raise ProtocolError(f"not an HTTP/1.1 answer: {line[:80]!r}")
        headers: dict[str, str] = {}
        while (line := readline()) not in (b"\r\n", b"\n"):
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or len(headers) >= MAX_HEADERS:
                raise ProtocolError(f"bad header line in the answer: {line[:80]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if code != "100":
            return int(code), reason, headers
# --8<-- [end:read_head]


def read_line(source: io.BufferedReader | socket.socket) -> bytes:
    """One line, ``b""`` at the end of the stream; a line cut short or too long is an error.

    From a socket it reads byte by byte, never past the line: what follows stays in the socket.
    """
    if hasattr(source, "recv"):
        line = bytearray()
        while not line.endswith(b"\n") and len(line) <= MAX_LINE and (byte := source.recv(1)):
            line += byte
        line = bytes(line)
    else:
        line = source.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("a line of the answer is too long")
    if line and not line.endswith(b"\n"):
        raise ProtocolError("the connection was closed in the middle of a line of the answer")
    return line


class Response:
    """An answer: ``status``, ``reason``, ``headers``; a body to :meth:`read` or iterate line by line.

    The socket is closed once the body has been read to its end (or by :meth:`close`).
    """

    def __init__(self, sock: socket.socket, file: io.BufferedReader, status: int, reason: str,
                 headers: dict[str, str]) -> None:
        self.sock, self.status, self.reason, self.headers = sock, status, reason, headers
        self._file: io.BufferedReader | None = file
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        if not self._chunked and length and not length.isdigit():
            raise ProtocolError(f"bad Content-Length in the answer: {length[:20]!r}")
        # Bytes left: of the current chunk (chunked), of the body (Content-Length), or None: the
        # body ends when the server closes the connection.
        self._left: int | None = 0 if self._chunked else int(length) if length else None
        self._in_chunk = False  # a chunk was started: its CRLF comes before the next size line
        if status in (204, 304) or (self._left == 0 and not self._chunked):
            self.close()

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def read1(self, amount: int = 1 << 16) -> bytes:
        """What has arrived of the body, at most ``amount`` bytes (waiting for one); ``b""`` at its end."""
        if self._file is None:
            return b""
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        data = self._file.read1(amount if self._left is None else min(amount, self._left))
        if not data:
            self.close()
            if self._left is None:  # the end of a body that lasts until the server closes
                return b""
            raise ProtocolError("the connection was closed in the middle of the answer")
        if self._left is not None:
            self._left -= len(data)
            if self._left == 0 and not self._chunked:
                self.close()
        return data

    def _next_chunk(self) -> bool:
        """Read a chunk's size line (after the previous chunk's CRLF); False after the last one."""
        if self._in_chunk and self._line() not in (b"\r\n", b"\n"):
            raise self._broken("a chunk of the answer is longer than its size says")
        size = self._line().split(b";")[0].strip()
        try:
            self._left, self._in_chunk = int(size, 16), True
        except ValueError:
            raise self._broken(f"bad chunk size in the answer: {size[:20]!r}") from None
        if self._left:
            return True
        while self._line() not in (b"\r\n", b"\n"):  # trailers, up to the empty line that ends all
            pass
        self.close()
        return False

    def _line(self) -> bytes:
        assert self._file is not None
        line = read_line(self._file)
        if not line:
            raise self._broken("the connection was closed in the middle of the answer")
        return line

    def _broken(self, message: str) -> ProtocolError:
        self.close()
        return ProtocolError(message)

    def read(self, amount: int = -1) -> bytes:
        """The body: all of it, or ``amount`` bytes (fewer only at its end)."""
        parts, size = [], 0
        while amount < 0 or size < amount:
            data = self.read1(1 << 16 if amount < 0 else min(1 << 16, amount - size))
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        """The body line by line, each ending in ``\\n`` (the last one maybe not): for JSON streams."""
        parts: list[bytes] = []
        while data := self.read1():
            start = 0
            while (end := data.find(b"\n", start)) >= 0:
                yield b"".join([*parts, data[start:end + 1]])
                parts, start = [], end + 1
            if start < len(data):
                parts.append(data[start:])
        if parts:
            yield b"".join(parts)

    def close(self) -> None:
        """Close the connection (the rest of the body, if any, is not read)."""
        if self._file is not None:
            self._file.close()
            self.sock.close()
            self._file = None

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Receiver(io.RawIOBase):
    """A socket's receiving side as a raw file: ``socket.makefile("rb")`` for a bare ``_socket.socket``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


def reader(sock: socket.socket) -> io.BufferedReader:
    """A buffered reader of ``sock``: its ``makefile``, or for a bare ``_socket.socket`` our own."""
    return sock.makefile("rb") if hasattr(sock, "makefile") else io.BufferedReader(_Receiver(sock))


def read_response(sock: socket.socket, cls: type[Response] = Response) -> Response:
    """Read the status line and headers from ``sock``; the body is left to the :class:`Response`."""
    file = reader(sock)
    try:
        return cls(sock, file, *read_head(lambda: read_line(file)))
    except BaseException:
        file.close()
        raise
