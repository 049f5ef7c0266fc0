"""Chapter 09: the distribution API's own refusals, the statuses no error kind has (405, 413, 416).

Domain code raises the kinds of ``core/errors.py`` (NotFound is a 404 everywhere). A few answers
belong to HTTP and to the distribution spec alone: ``405`` for a method this registry does not
offer (a read-only registry, deletes switched off), ``413`` for a manifest too large to read, and
``416`` for a chunk that does not start where the upload ends. The HTTP layer raises them as a
:class:`ProtocolError` carrying its status; ``registry/server.py`` turns it into the spec's error
JSON in the same one place as every other kind.

Example::

    >>> e = ProtocolError(405, "deletes are disabled on this registry", code="UNSUPPORTED")
    >>> e.status, e.code
    (405, 'UNSUPPORTED')
"""

from __future__ import annotations

from typing import Any

from minidocker.core.errors import Kind

__all__ = ["ProtocolError"]


class ProtocolError(Kind):
    """A refusal with a status of the HTTP protocol itself (405, 413, 416), a spec ``code`` and ``detail``."""

    def __init__(self, status: int, message: str, *, code: str, detail: Any = None) -> None:
        super().__init__(message, code=code, detail=detail)
        self.status = status
