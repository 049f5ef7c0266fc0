"""Chapter 10: events: what happened in the daemon, as ``docker events`` and Compose read it.

Every change of a container, image, volume or network is an *event*: a small JSON object with what
changed (``Type``, ``Actor.ID``), what happened (``Action``) and when (``time``, ``timeNano``). The
daemon keeps the last :data:`RING_SIZE` in memory, so that ``GET /events?since=T`` can replay them,
and sends each new one to every client streaming ``GET /events``. Docker keeps 256 and nothing on
disk: a daemon restart forgets them; so do we (with a larger ring, for Compose's bursts).

Who emits: the code where the thing happens calls :func:`emit` with the application (the routes, the
supervisor, chapter 12's plug-in through ``hooks.emit``). A container's *monitor*, which runs without
the daemon, reports what only it sees (``health_status: healthy``) with :func:`notify`: one datagram
on the daemon's ``events.sock`` (best effort: when the daemon is down there is nobody to tell).

Example::

    events.emit(app, "container", "start", cid, {"name": "web", "image": "busybox"})
    # GET /events?filters={"type":["container"]} streams:
    # {"status": "start", "id": cid, "from": "busybox", "Type": "container", "Action": "start",
    #  "Actor": {"ID": cid, "Attributes": {"image": "busybox", "name": "web"}},
    #  "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from minidocker.core import errors
from minidocker.core.paths import run_dir, umask

__all__ = ["RING_SIZE", "Broker", "container_event", "emit", "matches", "notify", "parse_filters",
           "parse_time", "routes", "serve_notifications"]

log = logging.getLogger("minidockerd")
RING_SIZE = 1024
TYPES = ("container", "image", "volume", "network", "daemon", "plugin", "node", "service", "secret",
         "config", "builder")
# Actions of which Docker matches a filter event=X on the prefix: their action is "X: details".
_FUZZY = ("health_status", "exec_create", "exec_start", "exec_die")
# What a monitor may report through events.sock (the daemon adds the container's attributes).
_MONITOR_ACTIONS = re.compile(r"^(health_status: (starting|healthy|unhealthy)|health_status|oom)$")


# --8<-- [start:broker]
class Broker:
    """The recent events (a bounded ring, for ``since``) and the queues of the streaming clients."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self.ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self.subscribers: set[asyncio.Queue] = set()

    def publish(self, event: dict[str, Any]) -> None:
        self.ring.append(event)
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a client that does not read: it loses its stream, not our memory
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells its handler to end

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=RING_SIZE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def since(self, since_ns: int, until_ns: int | None = None) -> list[dict[str, Any]]:
        """The remembered events from ``since_ns`` (and up to ``until_ns``), oldest first."""
        return [e for e in self.ring
                if e["timeNano"] >= since_ns and (until_ns is None or e["timeNano"] <= until_ns)]
# --8<-- [end:broker]


def message(kind: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None,
            now_ns: int | None = None) -> dict[str, Any]:
    """One event in Docker's ``EventMessage`` shape, with the legacy ``status``/``id``/``from`` of
    containers and images (``docker events`` before API 1.22, and docker-py's users, read them)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    attributes = {str(k): str(v) for k, v in (attributes or {}).items()}
    event: dict[str, Any] = {}
    if kind in ("container", "image"):
        event.update(status=action, id=actor_id)
        if kind == "container" and "image" in attributes:
            event["from"] = attributes["image"]
    event.update({"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes},
                  "scope": "local", "time": now_ns // 1_000_000_000, "timeNano": now_ns})
    return event


# --8<-- [start:emit]
def emit(app: Any, kind: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None) -> None:
    """Record one event and send it to every ``GET /events`` stream (nothing if ``app`` has no broker)."""
    broker = app.get("events") if app is not None else None
    if broker is None:
        return
    try:
        broker.publish(message(kind, action, actor_id, attributes))
    except Exception:  # an event lost is not worth the operation that caused it
        log.exception("emitting %s %s", kind, action)


def container_event(app: Any, c: Any, action: str, **extra: Any) -> None:
    """A container's event, its attributes as Docker gives them: its labels, ``image`` and ``name``."""
    config = c.config
    attributes = {**(config["Config"].get("Labels") or {}),
                  "image": config.get("ImageName") or config["Image"], "name": config["Name"].lstrip("/"),
                  **{k: v for k, v in extra.items() if v is not None}}
    emit(app, "container", action, c.id, attributes)
# --8<-- [end:emit]


# ---- the query: since, until, filters -----------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time(value: str, now: float | None = None) -> int:
    """``since``/``until`` as Docker takes them -> nanoseconds since the epoch: a UNIX time
    (``1700000000``, ``1700000000.5``, ``1700000000.000000001``), an RFC 3339 time
    (``2024-01-02T03:04:05Z``, ``2024-01-02``) or a duration before now (``10m``, ``1h30m``)."""
    text = value.strip()
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d*)?", text):
        whole, _, fraction = text.partition(".")
        return int(whole) * 1_000_000_000 + int((fraction + "0" * 9)[:9])
    if (match := re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+", text)) and match:
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        return int((now - seconds) * 1_000_000_000)
    stamp = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", text)
    if stamp:
        day, clock, fraction, zone = stamp.groups()
        clock = clock or "00:00:00"
        clock = clock if clock.count(":") == 2 else clock + ":00"
        seconds = calendar.timegm(time.strptime(f"{day}T{clock}", "%Y-%m-%dT%H:%M:%S"))
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        elif not zone:  # no zone: local time, as Docker's CLI reads it
            seconds += time.timezone if not time.localtime(seconds).tm_isdst else time.altzone
        return seconds * 1_000_000_000 + int(((fraction or ".0")[1:] + "0" * 9)[:9])
    raise errors.InvalidArgument(f"invalid time {value!r}: a UNIX time, an RFC 3339 date or a duration "
                                 "(10m)")


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query parameter (``{"type": ["container"]}``, or the older
    ``{"type": {"container": true}}``) as ``{key: [values]}``; InvalidArgument if it is neither."""
    try:
        found = json.loads(text or "{}")
        if not isinstance(found, dict):
            raise ValueError
        return {str(k): [str(x) for x in (v if isinstance(v, list) else [x for x, on in v.items() if on])]
                for k, v in found.items()}
    except (ValueError, AttributeError, TypeError):
        raise errors.InvalidArgument(f"invalid filters: {text!r}: a JSON object of lists is expected") \
            from None


def _fuzzy(values: list[str], source: str) -> bool:
    return any(source == v or source.startswith(v) for v in values)


def _strip_tag(ref: str) -> str:
    name = ref.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def labels_match(wanted: Iterable[str], labels: dict[str, str]) -> bool:
    """Docker's ``label`` filters: *every* ``key`` present, every ``key=value`` equal."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


# --8<-- [start:matches]
def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's events filter (daemon/events/filter.go): each key given must match; within a key any
    value may, but ``label`` wants all of its values."""
    kind, action, actor = event["Type"], event["Action"], event["Actor"]
    attributes = actor["Attributes"]
    if filters.get("type") and kind not in filters["type"]:
        return False
    if filters.get("scope") and "local" not in filters["scope"]:
        return False
    if wanted := filters.get("event"):
        if any(v in _FUZZY for v in wanted):
            if not _fuzzy(wanted, action):
                return False
        elif action not in wanted:
            return False
    for key in ("container", "volume", "network", "plugin", "service", "node", "secret", "config", "daemon"):
        wanted = filters.get(key)  # an event of another type never matches
        if wanted and (kind != key or not (_fuzzy(wanted, actor["ID"]) or
                                           _fuzzy(wanted, attributes.get("name", "")))):
            return False
    if wanted := filters.get("image"):
        name = attributes.get("name" if kind == "image" else "image", "")
        if not ({actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name)} & set(wanted)):
            return False
    return labels_match(filters.get("label") or [], attributes)
# --8<-- [end:matches]


# ---- the route ----------------------------------------------------------------------------------
routes = web.RouteTableDef()


# --8<-- [start:route]
@routes.get("/events")
async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /events``: the remembered events from ``since`` (if given), then the new ones as they
    come, one JSON object a line, until ``until`` (if given) or until the client goes away."""
    broker: Broker = request.app["events"]
    filters = parse_filters(request.query.get("filters"))
    now = time.time()
    since = parse_time(request.query["since"], now) if request.query.get("since") else None
    until = parse_time(request.query["until"], now) if request.query.get("until") else None
    if since is not None and until is not None and since > until:
        raise errors.InvalidArgument(f"`since` time ({request.query['since']}) cannot be after `until` time "
                                     f"({request.query['until']})")
    # The replay and the subscription at the same instant (no await between): nothing missed, nothing twice.
    replay = broker.since(since or 0, until) if since is not None or until is not None else []
    queue = broker.subscribe() if until is None or until > time.time_ns() else None
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # the headers now: `docker events` waits for them
        for event in replay:
            if matches(event, filters):
                await response.write(json.dumps(event).encode() + b"\n")
        while queue is not None:
            left = None if until is None else (until - time.time_ns()) / 1e9
            if left is not None and left <= 0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            if event is None or (until is not None and event["timeNano"] > until):
                break
            if matches(event, filters):
                await response.write(json.dumps(event).encode() + b"\n")
    finally:
        if queue is not None:
            broker.unsubscribe(queue)
    await response.write_eof()
    return response
# --8<-- [end:route]


# ---- from the monitors: a datagram socket -------------------------------------------------------
def socket_path() -> Path:
    return run_dir() / "events.sock"


# --8<-- [start:notify]
def notify(container_id: str, action: str, attributes: dict[str, Any] | None = None) -> bool:
    """From a container's monitor: tell the daemon about an event only the monitor sees, e.g.
    ``notify(cid, "health_status: healthy")`` after writing the new health to ``state.json``.

    Best effort, never blocking: False if no daemon listens (it reads ``state.json`` when it comes
    back, and the event is simply not in its history)."""
    data = json.dumps({"id": container_id, "action": action, "attributes": attributes or {}}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        try:
            s.sendto(data, str(socket_path()))
            return True
        except OSError:
            return False
# --8<-- [end:notify]


class _Notifications(asyncio.DatagramProtocol):
    def __init__(self, app: Any) -> None:
        self.app = app

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            note = json.loads(data)
            action = str(note["action"])
            c = self.app["supervisor"].containers.get(str(note["id"]))
        except (ValueError, KeyError, TypeError):
            return
        if c is None or not _MONITOR_ACTIONS.match(action):
            return
        c.reload_state()  # what the monitor wrote before it told us (the health, say)
        extra = {str(k): str(v) for k, v in (note.get("attributes") or {}).items()} \
            if isinstance(note.get("attributes"), dict) else {}
        container_event(self.app, c, action, **extra)
        for callback in list(self.app.get("events.listeners") or []):  # e.g. restart policies
            with contextlib.suppress(Exception):
                callback(c, action)


async def serve_notifications(app: Any) -> Any:
    """Listen on ``events.sock`` (root's alone) for the monitors' reports; returns the transport."""
    path = socket_path()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with umask(0o177):
        sock.bind(str(path))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Notifications(app), sock=sock)
    return transport
