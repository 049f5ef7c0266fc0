"""Chapter 07: the client side of the API: HTTP over a UNIX socket (or TCP with TLS), stdlib only.

The ``minidocker`` command must start instantly, so this module uses nothing but ``http.client``
and ``socket`` (no HTTP framework, no SDK). It knows where the daemon is (``-H``,
``$MINIDOCKER_HOST``, else the default socket), speaks JSON, reads streams of JSON lines, and
*hijacks* a connection for attach and exec: it sends ``Upgrade: tcp`` and, after the
``101 UPGRADED``, uses the raw socket both ways.

Example::

    >>> c = Client("unix:///run/minidocker.sock")
    >>> c.json("GET", "/version")["ApiVersion"]
    '1.50'
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

__all__ = ["API_VERSION", "APIError", "Client", "DaemonUnreachable", "default_host", "default_socket"]

API_VERSION = "1.50"


def default_socket() -> str:
    """``$MINIDOCKER_RUN/minidocker.sock`` if the run dir is moved (tests), else ``/run/minidocker.sock``."""
    run = os.environ.get("MINIDOCKER_RUN")
    return f"{run}/minidocker.sock" if run else "/run/minidocker.sock"


def default_host() -> str:
    return os.environ.get("MINIDOCKER_HOST") or f"unix://{default_socket()}"


class DaemonUnreachable(Exception):
    """No daemon answers at the address: the message says how to start one."""


class APIError(Exception):
    """The daemon answered with an error status: its ``message`` is for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Client:
    """A connection factory for one daemon, and the few ways we talk to it."""

    def __init__(self, host: str | None = None, tls: dict[str, str] | None = None) -> None:
        self.host = host or default_host()
        self.tls = tls or {}
        scheme, _, self.address = self.host.partition("://")
        if scheme not in ("unix", "tcp"):
            raise DaemonUnreachable(f"unsupported host {self.host!r}: use unix:///PATH or tcp://HOST:PORT")
        self.scheme = scheme

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return _UnixConnection(self.address, timeout)
        host, _, port = self.address.rpartition(":")
        if not self.tls:
            return http.client.HTTPConnection(host, int(port), timeout=timeout)
        import ssl

        context = ssl.create_default_context(cafile=self.tls.get("ca"))
        if self.tls.get("cert"):
            context.load_cert_chain(self.tls["cert"], self.tls.get("key"))
        return http.client.HTTPSConnection(host, int(port), context=context, timeout=timeout)

    def _unreachable(self, e: OSError) -> DaemonUnreachable:
        if isinstance(e, PermissionError):
            return DaemonUnreachable(f"permission denied on {self.host}: run as root (or join the "
                                     "'minidocker' group)")
        return DaemonUnreachable(f"cannot reach the minidocker daemon at {self.host} ({e.strerror or e}): "
                                 "start it with 'minidocker daemon start' (as root)")

    @staticmethod
    def url(path: str, query: dict[str, Any] | None = None) -> str:
        params = {k: (("1" if v else "0") if isinstance(v, bool) else v) for k, v in (query or {}).items()
                  if v is not None}
        return f"/v{API_VERSION}{path}" + (f"?{urllib.parse.urlencode(params, doseq=True)}" if params else "")

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                headers: dict[str, str] | None = None,
                timeout: float | None = None) -> http.client.HTTPResponse:
        """Send one request; return the response (its status checked: errors raise :class:`APIError`)."""
        conn = self._connection(timeout)
        data = body if isinstance(body, bytes) or hasattr(body, "read") else (
            json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            conn.request(method, self.url(path, query), body=data, headers=all_headers)
            response = conn.getresponse()
        except OSError as e:
            raise self._unreachable(e) from None
        if response.status >= 400:
            raw = response.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace").strip() or response.reason
            raise APIError(response.status, message)
        return response

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        """A request whose answer is one JSON value (None for an empty body)."""
        raw = self.request(method, path, query, body).read()
        return json.loads(raw) if raw.strip() else None

    def stream_json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                    headers: dict[str, str] | None = None) -> Iterator[dict]:
        """A streamed answer of JSON lines (pull progress); an ``error`` line raises :class:`APIError`."""
        response = self.request(method, path, query, body, headers)
        for line in response:
            if line.strip():
                message = json.loads(line)
                if "error" in message:
                    raise APIError(500, message["error"])
                yield message

    # --8<-- [start:hijack]
    def hijack(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> socket.socket:
        """POST with ``Upgrade: tcp``; after ``101 UPGRADED`` return the raw socket, both ways open."""
        conn = self._connection()
        try:
            conn.connect()
        except OSError as e:
            raise self._unreachable(e) from None
        sock = conn.sock
        data = json.dumps(body).encode() if body is not None else b""
        sock.sendall(f"POST {self.url(path, query)} HTTP/1.1\r\nHost: docker\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode() + data)
        head = bytearray()
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: not one byte of the stream is eaten
            byte = sock.recv(1)
            if not byte:
                raise APIError(500, "the daemon closed the connection")
            head += byte
        status = int(head.split(None, 2)[1])
        if status != 101:
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            raw = b""
            while len(raw) < length and (chunk := sock.recv(length - len(raw))):
                raw += chunk
            sock.close()
            try:
                raise APIError(status, json.loads(raw)["message"])
            except (ValueError, KeyError):
                raise APIError(status, raw.decode(errors="replace")) from None
        return sock
    # --8<-- [end:hijack]
