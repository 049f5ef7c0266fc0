"""Errors classified once: what went wrong, in kinds every part raises and every front end maps.

Domain code (the image store, the supervisor, the registry's repositories) knows *what* went
wrong: an image that does not exist, a container that is running when it should not, a name
that is malformed. It does not know who asked: a stage on a terminal, the daemon answering
HTTP, the registry answering the distribution API. So it raises one of these kinds and never a
status code; each front end maps the kinds in one place, with :func:`http_status` (the daemon's
middleware: NotFound is a 404, Conflict a 409 ...; the registry's: the same statuses with the
distribution spec's error JSON). That is moby's ``errdefs``. Anything else that reaches a front
end is a bug: a 500 with its traceback in the log, never a guessed status.

Every kind is an :class:`~minidocker.core.process.EngineError`, so a runtime stage that meets one
still prints one line and exits 125, and old ``except EngineError`` clauses still catch them.
``code`` is an optional machine-readable reason for clients that want one (the registry's
``MANIFEST_INVALID``, ``BLOB_UNKNOWN`` ...), ``detail`` optional data that goes with it.

Docker's own wordings are written here once, as subclasses: ``NoSuchImage("busybox:latest")``
reads "No such image: busybox:latest" wherever it is raised.

Example::

    >>> try:
    ...     raise NoSuchContainer("web")
    ... except NotFound as e:
    ...     print(type(e).__name__, e, e.exit_code)
    NoSuchContainer No such container: web 125
    >>> http_status(NoSuchContainer("web"))
    404
"""

from __future__ import annotations

from typing import Any

from minidocker.core.process import EngineError

__all__ = ["HTTP_STATUS", "Conflict", "Failed", "Forbidden", "InvalidArgument", "Kind", "NoSuchContainer",
           "NoSuchExec", "NoSuchImage", "NoSuchVolume", "NotFound", "NotModified", "NotRunning",
           "Unauthorized", "Unavailable", "Unsupported", "http_status"]


class Kind(EngineError):
    """The base of the classified errors: a one-line message, an optional ``code`` and ``detail``."""

    def __init__(self, message: str, *, code: str = "", detail: Any = None) -> None:
        super().__init__(message)
        self.code, self.detail = code, detail


class NotFound(Kind):
    """The thing named does not exist (HTTP 404)."""


class Conflict(Kind):
    """The request contradicts the current state: a running container, a name in use (HTTP 409)."""


class InvalidArgument(Kind):
    """The caller's input is malformed or not allowed (HTTP 400)."""


class Unauthorized(Kind):
    """Who the caller is is unknown or wrong (HTTP 401); ``challenge`` says how to authenticate."""

    def __init__(self, message: str, *, code: str = "", detail: Any = None, challenge: str = "") -> None:
        super().__init__(message, code=code, detail=detail)
        self.challenge = challenge


class Forbidden(Kind):
    """The caller is known but may not do this (HTTP 403)."""


class Unsupported(Kind):
    """A feature this engine does not have (HTTP 501; named so as not to shadow ``NotImplemented``)."""


class Unavailable(Kind):
    """Something the request needs is down or busy right now; trying again may work (HTTP 503)."""


class NotModified(Kind):
    """Nothing to do: the state asked for is already the state (HTTP 304, no body)."""


class Failed(Kind):
    """The engine tried and failed for a reason it can state (HTTP 500, logged without a traceback)."""


class NoSuchContainer(NotFound):
    """Docker's "No such container: REF"."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


class NoSuchImage(NotFound):
    """Docker's "No such image: REF"."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class NoSuchExec(NotFound):
    """Docker's "No such exec instance: ID"."""

    def __init__(self, exec_id: str) -> None:
        super().__init__(f"No such exec instance: {exec_id}")


class NoSuchVolume(NotFound):
    """Docker's "get NAME: no such volume"."""

    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")


class NotRunning(Conflict):
    """Docker's "Container ID is not running" (a kill, an exec or a monitor request on a stopped one)."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"Container {container_id} is not running")


# The one table from kind to HTTP status (moby's errdefs -> httpstatus); the first match wins.
HTTP_STATUS: tuple[tuple[type[Kind], int], ...] = (
    (NotFound, 404), (Conflict, 409), (InvalidArgument, 400), (Unauthorized, 401), (Forbidden, 403),
    (Unsupported, 501), (Unavailable, 503), (NotModified, 304))


def http_status(error: BaseException) -> int:
    """The HTTP status of an error: its kind's; 500 for ``Failed``, an unclassified one, or a bug."""
    return next((status for kind, status in HTTP_STATUS if isinstance(error, kind)), 500)
