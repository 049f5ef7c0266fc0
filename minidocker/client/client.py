"""Chapter 11: the client side of the API: HTTP over a UNIX socket (or TCP with TLS), stdlib only.

The ``minidocker`` command must start instantly, so this module uses nothing but sockets and
JSON, and ``wire`` for the little of HTTP/1.1 it speaks (``http.client`` alone would double the
time ``minidocker ps`` takes; ``ssl`` is imported only for a TLS host). Even ``socket`` and
``json`` cost ``ps`` a third of its time (both import ``enum``, ``json`` also ``re``): a request
on a UNIX socket (hijacked ones too) uses the C module ``_socket``, and ``core.jsonscan`` writes
its body and reads its answer; ``socket`` is imported for TCP only, ``json`` never. It knows where
the daemon is (``-H``, ``$MINIDOCKER_HOST``, else the default socket), speaks JSON, reads streams
of JSON lines, and *hijacks* a connection for attach and exec: it sends ``Upgrade: tcp`` and,
after the ``101 UPGRADED``, uses the raw socket both ways.

It speaks the lower of its API version and the daemon's, as the docker CLI does, so it also drives
an older dockerd (20.10 speaks 1.41), unless ``$DOCKER_API_VERSION`` sets the version. The docker
CLI pings first (``/_ping``'s ``Api-Version`` header); we read that header from the first answer
instead, so a command costs no extra round trip: a daemon older than us refuses that first request
("client version 1.50 is too new") with its version in the header, and it is sent again, once.

Example::

    >>> c = Client("unix:///run/minidocker.sock")
    >>> c.json("GET", "/version")["ApiVersion"]
    '1.50'
"""

from __future__ import annotations

import _socket
import os

from minidocker.client.wire import Response, read_head, read_line, read_response, reader, send_request
from minidocker.core.api import API_VERSION, default_socket
from minidocker.core.jsonscan import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    import socket
    from collections.abc import Iterator
    from typing import Any

__all__ = ["MIN_DAEMON_API_VERSION", "APIError", "Client", "DaemonTooOld", "DaemonUnreachable",
           "default_host"]

# The oldest daemon API our requests work with (not core.api.MIN_API_VERSION, the oldest *client*
# our daemon serves): `run` waits with condition=next-exit|removed (1.30) and
# `builder prune` is POST /build/prune (1.31). What is newer (ConsoleSize, stop's signal: 1.42) an
# older daemon ignores. Tested against 1.41 (Debian's dockerd 20.10) and 1.50 (ours).
MIN_DAEMON_API_VERSION = "1.31"
# What a query value may hold unquoted (``urllib.parse.quote``'s always-safe set).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _dumps(body: Any) -> bytes:
    return dumps(body).encode()


def default_host() -> str:
    return os.environ.get("MINIDOCKER_HOST") or f"unix://{default_socket()}"


class DaemonUnreachable(Exception):
    """No daemon answers at the address: the message says how to start one."""


class DaemonTooOld(DaemonUnreachable):
    """The daemon's API is older than :data:`MIN_DAEMON_API_VERSION`: our requests would not work."""


class APIError(Exception):
    """The daemon answered with an error status: its ``message`` is for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _version(text: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``, to compare versions as numbers (1.9 < 1.41)."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _quote(value: str, keep: frozenset[int] = _UNRESERVED) -> str:
    """Percent-encode the bytes of ``value`` (UTF-8) that are not in ``keep``."""
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in value.encode())


class _Answer(Response):
    """A response whose body, if the connection breaks, raises :class:`DaemonUnreachable`."""

    def read1(self, amount: int = 1 << 16) -> bytes:
        try:
            return super().read1(amount)
        except OSError as e:
            raise DaemonUnreachable(f"lost the connection to the minidocker daemon: {e}") from None


class Client:
    """A connection factory for one daemon, and the few ways we talk to it."""

    def __init__(self, host: str | None = None, tls: dict[str, str] | None = None) -> None:
        self.host = host or default_host()
        self.tls = tls or {}
        scheme, _, self.address = self.host.partition("://")
        if scheme not in ("unix", "tcp"):
            raise DaemonUnreachable(f"unsupported host {self.host!r}: use unix:///PATH or tcp://HOST:PORT")
        self.scheme = scheme
        # The version in our paths: $DOCKER_API_VERSION as given (never negotiated, as the docker
        # CLI does), else ours until the first answer's Api-Version header says the daemon's.
        pinned = os.environ.get("DOCKER_API_VERSION", "").removeprefix("v")
        if pinned and not (pinned.count(".") == 1 and pinned.replace(".", "").isdigit()):
            raise DaemonUnreachable(f"bad DOCKER_API_VERSION {pinned!r}: use MAJOR.MINOR, like 1.41")
        self.version = pinned or API_VERSION
        self._negotiating = not pinned

    def _connect(self, timeout: float | None = None, bare: bool = False) -> socket.socket:
        """A connected socket to the daemon (TLS-wrapped for a TLS host), or :class:`DaemonUnreachable`.

        ``bare``: on a UNIX socket, a ``_socket.socket`` (no ``makefile``; ``wire`` reads it alike).
        """
        if not (bare and self.scheme == "unix"):
            import socket
        sock = None
        try:
            if self.scheme == "unix":
                family, kind = _socket.AF_UNIX, _socket.SOCK_STREAM
                sock = _socket.socket(family, kind) if bare else socket.socket(family, kind)
                sock.settimeout(timeout)
                sock.connect(self.address)
                return sock
            host, _, port = self.address.rpartition(":")
            host = host.strip("[]")  # tcp://[::1]:2376
            sock = socket.create_connection((host, int(port)), timeout)
            if not self.tls:
                return sock
            import ssl  # only here: importing it costs every other command ~7 ms

            context = ssl.create_default_context(cafile=self.tls.get("ca"))
            if self.tls.get("cert"):
                context.load_cert_chain(self.tls["cert"], self.tls.get("key"))
            return context.wrap_socket(sock, server_hostname=host)
        except OSError as e:
            if sock is not None:
                sock.close()
            raise self._unreachable(e) from None
        except ValueError:  # the port is not a number
            raise DaemonUnreachable(f"bad host {self.host!r}: use unix:///PATH or tcp://HOST:PORT") from None

    def _unreachable(self, e: OSError) -> DaemonUnreachable:
        if isinstance(e, PermissionError):
            return DaemonUnreachable(f"permission denied on {self.host}: run as root (or join the "
                                     "'minidocker' group)")
        return DaemonUnreachable(f"cannot reach the minidocker daemon at {self.host} ({e.strerror or e}): "
                                 "start it with 'minidocker daemon start' (as root)")

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """``/vVERSION/PATH?QUERY``: booleans as 1/0, None left out, a list as the key repeated."""
        pairs = []
        for key, value in (query or {}).items():
            for item in value if isinstance(value, list | tuple) else [value]:
                if item is not None:
                    item = ("1" if item else "0") if isinstance(item, bool) else str(item)
                    pairs.append(f"{_quote(key)}={_quote(item)}")
        # A name in the path (spaces, UTF-8) must not break the request line; / : ? stay as given.
        target = _quote(f"/v{self.version}{path}", frozenset(range(0x21, 0x7f)))
        return target + (f"?{'&'.join(pairs)}" if pairs else "")

    def _headers(self) -> dict[str, str]:
        return {"Host": "docker" if self.scheme == "unix" else self.address, "User-Agent": "minidocker"}

    # --8<-- [start:send]
    def _send(self, method: str, target: str, headers: dict[str, str], data: Any,
              timeout: float | None = None,
              upgrade: bool = False) -> tuple[socket.socket, _Answer | None, dict[str, str]]:
        """One request on a new connection: the socket, the answer (None after a 101) and its headers."""
        sock = self._connect(timeout, bare=True)  # on a UNIX socket a _socket.socket, hijacked too
        unsent = None
        try:
            try:
                send_request(sock, method, target, headers, data)
            except OSError as e:  # the daemon may have answered (an error) before taking it all
                unsent = e
            if not upgrade:
                answer = read_response(sock, _Answer)
                return sock, answer, answer.headers
            # read_line(sock) reads byte by byte: not one byte of the stream after the head is eaten
            status, reason, answer_headers = read_head(lambda: read_line(sock))
        except OSError as e:
            sock.close()
            raise self._unreachable(unsent or e) from None
        if status == 101:
            return sock, None, answer_headers
        return sock, _Answer(sock, reader(sock), status, reason, answer_headers), answer_headers
    # --8<-- [end:send]

    # --8<-- [start:negotiate]
    # --8<-- [start:negotiate_part1]
    def _exchange(self, method: str, path: str, query: dict[str, Any] | None, headers: dict[str, str],
                  data: Any, timeout: float | None = None,
                  upgrade: bool = False) -> tuple[socket.socket, _Answer | None]:
        """:meth:`_send` at the API version negotiated on the way, from the first answer's header."""
    # --8<-- [end:negotiate_part1]
        start = None
        if self._negotiating and data is not None and not isinstance(data, bytes | bytearray):
            if hasattr(data, "seekable") and data.seekable():
                start = data.tell()  # a file: sent again from there if the daemon refuses our version
            else:
                self.negotiate()  # a body we could not send twice (a pipe): ask first
        # --8<-- [start:negotiate_part2]
        used = self.version
        sock, answer, answer_headers = self._send(method, self.url(path, query), headers, data, timeout,
                                                  upgrade)
        if self._negotiating:
            try:
                self._settle(answer_headers.get("api-version", ""))
            except DaemonTooOld:
                (answer or sock).close()
                raise
            if answer is not None and answer.status == 400 and self.version != used:  # "... is too new"
                answer.close()
                if start is not None:
                    data.seek(start)
                sock, answer, _ = self._send(method, self.url(path, query), headers, data, timeout, upgrade)
        return sock, answer

    def negotiate(self) -> str:
        """The API version we speak; asked first (``GET /_ping``, the docker CLI's way) if not known yet."""
        if self._negotiating:
            _, answer, answer_headers = self._send("GET", "/_ping", self._headers(), None)
            assert answer is not None
            answer.close()
            self._settle(answer_headers.get("api-version", ""))
        return self.version

    def _settle(self, theirs: str) -> None:
        """Speak the lower of the daemon's version and ours (ours if it does not say), once."""
        if _version(theirs) and _version(theirs) < _version(API_VERSION):
            if _version(theirs) < _version(MIN_DAEMON_API_VERSION):
                raise DaemonTooOld(f"the daemon at {self.host} speaks Docker API {theirs}, older than the "
                                   f"{MIN_DAEMON_API_VERSION} minidocker needs (or set DOCKER_API_VERSION "
                                   "to try)")
            self.version = theirs
        self._negotiating = False
        # --8<-- [end:negotiate_part2]
    # --8<-- [end:negotiate]

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
        """Send one request; return the response (its status checked: errors raise :class:`APIError`)."""
        data = body if isinstance(body, bytes) or hasattr(body, "read") else (
            _dumps(body) if body is not None else None)
        all_headers = {**self._headers(), "Content-Type": "application/json", **(headers or {})}
        _, answer = self._exchange(method, path, query, all_headers, data, timeout)
        assert answer is not None
        if method == "HEAD":  # an answer to HEAD has no body, whatever its Content-Length says
            answer.close()
            if answer.status >= 400:
                raise APIError(answer.status, answer.reason)
            return answer
        return self._checked(answer)

    @staticmethod
    def _checked(response: Response) -> Response:
        """``response`` if its status is not an error; else :class:`APIError` with the daemon's message."""
        if response.status < 400:
            return response
        raw = response.read()
        try:
            message = loads(raw)["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace").strip() or response.reason
        raise APIError(response.status, message)

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        """A request whose answer is one JSON value (None for an empty body)."""
        raw = self.request(method, path, query, body).read()
        return loads(raw) if raw.strip() else None

    def stream_json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                    headers: dict[str, str] | None = None) -> Iterator[dict]:
        """A streamed answer of JSON lines (pull progress); an ``error`` line raises :class:`APIError`."""
        response = self.request(method, path, query, body, headers)
        for line in response:
            if line.strip():
                message = loads(line)
                if "error" in message:
                    raise APIError(500, message["error"])
                yield message

    # --8<-- [start:hijack]
    def hijack(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> socket.socket:
        """POST with ``Upgrade: tcp``; after ``101 UPGRADED`` return the raw socket, both ways open."""
        headers = {**self._headers(), "Content-Type": "application/json",
                   "Connection": "Upgrade", "Upgrade": "tcp"}
        data = _dumps(body) if body is not None else b""
        # _send reads the 101's head byte by byte: not one byte of the stream after it is eaten
        sock, answer = self._exchange("POST", path, query, headers, data, upgrade=True)
        if answer is not None:  # no 101: an error, whose body is the message
            self._checked(answer)
            answer.close()
            raise APIError(answer.status, f"the daemon did not upgrade the connection "
                                          f"({answer.status} {answer.reason})")
        return sock
    # --8<-- [end:hijack]
