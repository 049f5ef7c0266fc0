"""Every call the dashboard makes to the daemon, recorded: method, path, status, time, and who asked.

Why record them? The dashboard is also a lesson: its "how it works" panel shows the Engine API
calls behind each click (``POST /v1.50/containers/3f2a/stop`` -> 204 in 412 ms), and the notebook
reads the same log to draw them. One place sees every call: :meth:`Client._exchange`, through which
``request``, ``json``, ``stream_json`` and ``hijack`` all go, so a subclass overrides it alone. The
page's request that caused a call (``via``) travels in a context variable, which ``asyncio.to_thread``
carries into the worker thread.

Example::

    >>> log = CallLog()
    >>> client = LoggedClient("unix:///run/minidocker.sock", None, log)
    >>> client.json("GET", "/containers/json")
    []
    >>> log.calls[-1].method, log.calls[-1].path, log.calls[-1].status
    ('GET', '/v1.50/containers/json', 200)
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from minidocker.client.client import Client, DaemonUnreachable

__all__ = ["VIA", "Call", "CallLog", "LoggedClient"]

VIA: contextvars.ContextVar[str] = contextvars.ContextVar("via", default="desktop server")


@dataclass(frozen=True)
class Call:
    """One request to the daemon: ``status`` 101 for a hijacked stream, 0 when it was unreachable."""

    method: str
    path: str
    status: int
    ms: float  # to the answer's head: a stream's body may last much longer
    via: str  # the page's request that caused it, or the server's own work ("events hub")
    at: float  # wall-clock time it was sent

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class CallLog:
    """The last ``size`` calls, and the listeners told of each new one (the hub, for the pages)."""

    def __init__(self, size: int = 500) -> None:
        self.calls: deque[Call] = deque(maxlen=size)
        self.listeners: list[Callable[[Call], None]] = []

    def record(self, call: Call) -> None:
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)


# --8<-- [start:LoggedClient]
class LoggedClient(Client):
    """The chapter 11 client, each exchange with the daemon recorded in a :class:`CallLog`."""

    def __init__(self, host: str | None, tls: dict[str, str] | None, log: CallLog) -> None:
        super().__init__(host, tls)
        self.log = log

    def _exchange(self, method: str, path: str, query: dict[str, Any] | None, headers: dict[str, str],
                  data: Any, timeout: float | None = None, upgrade: bool = False) -> Any:
        at, start = time.time(), time.monotonic()
        target = self.url(path, query)
        try:
            sock, answer = super()._exchange(method, path, query, headers, data, timeout, upgrade)
        except DaemonUnreachable:
            self.log.record(Call(method, target, 0, (time.monotonic() - start) * 1000, VIA.get(), at))
            raise
        status = 101 if answer is None else answer.status
        self.log.record(Call(method, self.url(path, query), status, (time.monotonic() - start) * 1000,
                             VIA.get(), at))
        return sock, answer
# --8<-- [end:LoggedClient]
