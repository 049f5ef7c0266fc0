"""One ``GET /events`` stream to the daemon, fanned out to every open page; and each running
container's stats stream, boiled down to a CPU percentage and a memory figure.

Why one stream for all? Each page could ask the daemon for its own, but then N tabs are N streams
and N threads; the hub reads one and hands each event to every subscriber's queue (a page that falls
1000 messages behind is dropped: it reconnects and reloads). The page, told that something changed,
asks again for the lists (:mod:`.views`), so it never reloads and never polls. The same hub carries
the API-call log (:mod:`.apilog`) and the stats: one ``/containers/{id}/stats`` stream per running
container, opened on its ``start`` event and closed on ``die``.

Example::

    >>> hub = Hub(client, loop).start()
    >>> queue = hub.subscribe()
    >>> await queue.get()
    ('event', {'Type': 'container', 'Action': 'start', ...})
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from minidocker.client.client import Client
from minidocker.desktop.apilog import VIA, Call
from minidocker.desktop.pump import END, Pump, json_lines

__all__ = ["Hub", "cpu_percent"]

log = logging.getLogger("minidocker.desktop")
BACKLOG = 1000  # messages a page may fall behind before it is dropped


# --8<-- [start:cpu_percent]
def cpu_percent(stats: dict[str, Any]) -> float:
    """Docker's CPU %: the container's share of the host's CPU time since the previous sample, times
    the CPUs (100% = one CPU busy), as ``docker stats`` prints it."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    used = ((cpu.get("cpu_usage") or {}).get("total_usage", 0)
            - (pre.get("cpu_usage") or {}).get("total_usage", 0))
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    return used / system * cpus * 100 if system > 0 and used > 0 else 0.0
# --8<-- [end:cpu_percent]


class Hub:
    """The daemon's events, the API calls and the stats, each to every subscriber's queue."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop
        self.subscribers: set[asyncio.Queue] = set()
        self.events: Pump | None = None
        self.stats: dict[str, Pump] = {}
        self.stopping = False
        self.last_stats: dict[str, dict[str, Any]] = {}

    def publish(self, kind: str, data: Any) -> None:
        """Put ``(kind, data)`` in every subscriber's queue; a page too far behind is dropped."""
        for queue in list(self.subscribers):
            try:
                queue.put_nowait((kind, data))
            except asyncio.QueueFull:
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(("dropped", None))

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(BACKLOG)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def on_call(self, call: Call) -> None:
        """A call recorded (in any thread): to the pages, from the loop."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.publish, "call", call.as_json())

    # --8<-- [start:events]
    def start(self) -> Hub:
        """Open the one ``/events`` stream, and a stats stream for each container running now."""
        token = VIA.set("events hub")
        try:
            self.events = Pump(self.loop, lambda: self.client.request("GET", "/events"), json_lines,
                               self._on_event).start()
            for container in self.client.json("GET", "/containers/json"):
                self._watch(container["Id"])
        finally:
            VIA.reset(token)
        return self

    def _on_event(self, event: Any) -> None:
        if event is END or isinstance(event, Exception):
            if isinstance(event, Exception):
                log.warning("the daemon's event stream failed: %s", event)
            if event is END and not self.stopping:  # the daemon went away: try again in a second
                self.loop.call_later(1, self._reconnect)
            return
        self.publish("event", event)
        if event.get("Type") == "container":
            cid = event.get("id") or event.get("Actor", {}).get("ID", "")
            if event.get("Action") == "start":
                self._watch(cid)
            elif event.get("Action") in ("die", "destroy") and cid in self.stats:
                self.stats.pop(cid).close()
                self.last_stats.pop(cid, None)
    # --8<-- [end:events]

    def _reconnect(self) -> None:
        if not self.stopping:
            self.events = Pump(self.loop, lambda: self.client.request("GET", "/events"), json_lines,
                               self._on_event).start()
            self.publish("event", {"Type": "desktop", "Action": "reconnected"})

    def _watch(self, cid: str) -> None:
        """A stats stream for a container that runs: each sample to the pages as CPU % and memory."""
        if cid in self.stats or self.stopping:
            return

        def deliver(sample: Any) -> None:
            if sample is END or isinstance(sample, Exception):
                if self.stats.get(cid) is pump:
                    del self.stats[cid]
                return
            memory = sample.get("memory_stats") or {}
            point = {"id": cid, "cpu": round(cpu_percent(sample), 2), "memory": memory.get("usage", 0),
                     "limit": memory.get("limit", 0)}
            self.last_stats[cid] = point
            self.publish("stats", point)

        token = VIA.set("events hub (stats)")
        try:
            pump = Pump(self.loop, lambda: self.client.request("GET", f"/containers/{cid}/stats",
                                                               {"stream": True}), json_lines, deliver)
        finally:
            VIA.reset(token)
        self.stats[cid] = pump.start()

    def stop(self) -> None:
        """Close every stream; their threads end at once (the sockets are shut down)."""
        self.stopping = True
        for pump in [self.events, *self.stats.values()]:
            if pump is not None:
                pump.close()
        for pump in [self.events, *self.stats.values()]:
            if pump is not None:
                pump.thread.join(5)
        self.stats.clear()
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(("bye", None))
