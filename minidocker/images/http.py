"""A small HTTP/1.1 client on the standard library, with what talking to registries needs.

Why not ``urllib``? It forwards *every* header on a redirect, and registries redirect blob downloads
to a CDN or a storage bucket: our ``Authorization`` header must not follow (Go's client strips it
too). Why not ``requests``/``httpx``? The CLI imports this module; ``http.client`` costs a few ms.

What it adds to ``http.client``:

* keep-alive connections reused per thread (a pull makes dozens of requests to one host);
* redirects followed by hand, dropping ``Authorization`` when the origin changes;
* retries with exponential backoff for dropped connections and for 429/5xx answers, honouring
  ``Retry-After``; a failure after the last attempt is an :class:`HTTPFailure` with one clear line.

Example::

    >>> client = Client()
    >>> with client.request("GET", "http://127.0.0.1:5000/v2/") as response:
    ...     response.status, response.json()
    (200, {})
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

__all__ = ["Client", "HTTPFailure", "Response", "is_loopback"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
USER_AGENT = "minidocker/0.1 (python http.client)"
ATTEMPTS = 4  # tries per request: the first and three retries...
BACKOFF = 0.5  # ...after 0.5, 1 and 2 seconds (tests make it shorter)


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (with or without a port): spoken to over plain HTTP.

    Nothing sent to a loopback address leaves the machine, so it needs no TLS (Docker's rule too).

        >>> is_loopback("127.0.0.1:5000"), is_loopback("[::1]:5000"), is_loopback("registry.example")
        (True, True, False)
    """
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HTTPFailure(OSError):
    """The server could not be reached (or kept failing) after every retry: one line for the user."""


class Response:
    """An answer whose body has not been read yet: ``read()``/``json()`` it, or ``iter_chunks()`` it.

    Use it as a context manager (or call ``close``): a body read to the end lets the connection
    be reused, one abandoned half-way closes it.
    """

    def __init__(self, raw: http.client.HTTPResponse, url: str, release: Any) -> None:
        self._raw = raw
        self._release = release
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """One response header (case-insensitive)."""
        return self.headers.get(name, default)

    def read(self, limit: int = 64 << 20) -> bytes:
        """The whole body (refusing more than ``limit`` bytes: manifests are small, blobs stream)."""
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise HTTPFailure(f"answer from {self.url} is larger than {limit} bytes")
        self.close()
        return data

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.read())

    def iter_chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The body in chunks of at most ``size`` bytes: never all of it in memory."""
        while chunk := self._raw.read(size):
            yield chunk
        self.close()

    def close(self) -> None:
        """Give the connection back (reusable only when the body was read to the end)."""
        if self._release:
            reusable = self._raw.isclosed() or self._raw.length == 0
            if reusable:
                self._raw.close()  # done with this answer: the connection may carry the next one
            self._release(reusable)
            self._release = None

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Client:
    """HTTP requests with connection reuse, safe redirects and retries (one per registry session).

    ``attempts`` and ``backoff`` (seconds, doubled each retry) bound the retries; ``max_wait`` caps
    any single wait, including a server's ``Retry-After``. ``verify=False`` accepts any TLS
    certificate (Docker's "insecure registries").
    """

    def __init__(self, *, verify: bool = True, timeout: float = 30, attempts: int | None = None,
                 backoff: float | None = None, max_wait: float = 30) -> None:
        self.verify = verify
        self.timeout = timeout
        self.attempts = ATTEMPTS if attempts is None else attempts
        self.backoff = BACKOFF if backoff is None else backoff
        self.max_wait = max_wait
        self._local = threading.local()
        self._ssl: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context() if self.verify else ssl._create_unverified_context()
        return self._ssl

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._local.__dict__.setdefault("pool", {})
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            return conn, True
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._context()), False
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self.timeout), False
        raise HTTPFailure(f"unsupported URL scheme {scheme!r} in {scheme}://{netloc}")

    def _send(self, method: str, url: str, headers: Mapping[str, str],
              body: bytes | BinaryIO | None) -> Response:
        """One request on a pooled connection; a stale kept-alive connection is retried once."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for _ in range(2):
            conn, reused = self._connection(parts.scheme, parts.netloc)
            try:
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
                conn.request(method, target or "/", body=body, headers=dict(headers))
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused:
                    continue  # the server closed an idle connection: try a fresh one at once
                raise
            except BaseException:
                conn.close()
                raise

            def release(reusable: bool, conn: http.client.HTTPConnection = conn,
                        raw: http.client.HTTPResponse = raw) -> None:
                if reusable and not raw.will_close:
                    self._local.__dict__.setdefault("pool", {})[(parts.scheme, parts.netloc)] = conn
                else:
                    conn.close()

            if method == "HEAD":
                raw.length = 0
            return Response(raw, url, release)
        raise AssertionError("unreachable")

    # --8<-- [start:request]
    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: bytes | BinaryIO | None = None, *, retry: bool | None = None) -> Response:
        """Send a request, follow redirects, retry what can be retried; return the final response.

        A redirect to another origin (scheme, host or port) is followed *without* the
        ``Authorization`` header: credentials are for the registry, not for the CDN it sends us to.
        Connection failures and 429/5xx answers are retried with exponential backoff, waiting
        what ``Retry-After`` asks for; other answers (401, 404...) are returned for the caller.
        """
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        retry = method in IDEMPOTENT if retry is None else retry
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts or not retry
            try:
                response = self._follow(method, url, headers, body)
            except (OSError, http.client.HTTPException) as e:
                if last:
                    raise HTTPFailure(f"cannot reach {urlsplit(url).netloc}: {_describe(e)}") from e
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_wait))
                continue
            if response.status in RETRY_STATUSES and not last:
                wait = _retry_after(response.header("Retry-After"))
                response.close()
                time.sleep(min(self.backoff * 2 ** (attempt - 1) if wait is None else wait, self.max_wait))
                continue
            return response
        raise AssertionError("unreachable")
    # --8<-- [end:request]

    def _follow(self, method: str, url: str, headers: dict[str, str],
                body: bytes | BinaryIO | None) -> Response:
        origin = urlsplit(url)[:2]
        for _ in range(10):
            response = self._send(method, url, headers, body)
            location = response.header("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            url = urljoin(url, location)
            if urlsplit(url)[:2] != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status == 303:
                method, body = "GET", None
        raise HTTPFailure(f"too many redirects, last to {url}")


def _describe(error: BaseException) -> str:
    """A short reason for a network error: 'connection refused', 'timed out', ..."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the registry running?)"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error} (an insecure registry must be configured as such)"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection was cut in the middle of an answer"
    if isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return "the connection was closed by the server"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
