"""A blocking stream from the daemon, read in a thread, each item handed to the event loop.

Why threads? The dashboard reuses chapter 11's client, which is blocking (plain sockets, so the
``minidocker`` command starts fast) and already knows the daemon's address, TLS and API version
negotiation. A stream that lasts (``/events``, a container's logs or stats, a pull's progress) gets
a thread of its own, which hands each item to the loop with ``call_soon_threadsafe``; the loop
never blocks. :meth:`Pump.close` shuts the socket down, which wakes the thread from its ``recv``.

Example::

    >>> pump = Pump(loop, lambda: client.request("GET", "/events"), json_lines, queue.put_nowait)
    >>> pump.start()   # queue gets each event, then END
    >>> pump.close()   # from the loop: the thread ends at once
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from minidocker.client.wire import Response

__all__ = ["END", "Pump", "json_lines"]

END = object()  # the last item a pump delivers: the stream ended, or failed (then an Exception before)


def json_lines(response: Response) -> Iterator[Any]:
    """Each non-empty line of a JSON-lines answer, parsed."""
    for line in response:
        if line.strip():
            yield json.loads(line)


class Pump:
    """``items(open())`` in a thread; ``deliver`` each in the loop, then an Exception if any, then END."""

    def __init__(self, loop: asyncio.AbstractEventLoop, open_stream: Callable[[], Response],
                 items: Callable[[Response], Iterable[Any]], deliver: Callable[[Any], None]) -> None:
        self.loop, self.open_stream, self.items, self.deliver = loop, open_stream, items, deliver
        self.response: Response | None = None
        self.closed = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,), daemon=True)

    def start(self) -> Pump:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            response = self.open_stream()
            with self._lock:
                self.response = response
                if self.closed:
                    response.close()
                    return
            for item in self.items(response):
                if self.closed:
                    break
                self._hand(item)
        except Exception as e:  # handed to the loop, which reports it
            if not self.closed:
                self._hand(e)
        finally:
            if self.response is not None:
                self.response.close()
            self._hand(END)

    def _hand(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self.loop.call_soon_threadsafe(self.deliver, item)

    def close(self) -> None:
        """Stop reading: shut the socket down (the thread's ``recv`` returns) and let the thread end."""
        with self._lock:
            self.closed = True
            response = self.response
        if response is not None:
            with contextlib.suppress(OSError):
                response.sock.shutdown(socket.SHUT_RDWR)
