"""Chapter 10: healthchecks: a command run in the container now and then, and what its exit code says.

A running container is not a working one: a web server may be up and answer nothing. A healthcheck
(``HEALTHCHECK`` in a Dockerfile, ``--health-cmd`` for ``docker run``, ``Config.Healthcheck`` in the
API) names a command; every ``Interval`` it runs *inside* the container, as ``docker exec`` would,
and its exit code decides: 0 is healthy, anything else (or no answer within ``Timeout``) a failure,
and ``Retries`` failures in a row make the container ``unhealthy``. Failures in the first
``StartPeriod`` do not count; a success then already makes it healthy.

Who runs it? Not the daemon: the container's *monitor* (:mod:`minidocker.daemon.monitor`), which
already starts execs. So checks go on while the daemon restarts, as Docker's go on in its shim...
almost: in Docker it is dockerd that runs probes, and they pause while it is down. The monitor writes
``State.Health`` to ``health.json`` in the container's directory (atomically, a third file beside
``config.json`` and ``state.json``), where the daemon reads it for ``inspect`` and ``ps``.

Example::

    >>> merge({"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9}, {"Retries": 1})
    {'Retries': 1, 'Test': ['CMD-SHELL', 'true'], 'Interval': 5000000000}
    >>> command({"Test": ["CMD-SHELL", "curl -f localhost"]})
    ['/bin/sh', '-c', 'curl -f localhost']
    >>> suffix({"Status": "starting"})
    ' (health: starting)'
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from minidocker.core import errors
from minidocker.core.atomic import read_json, rfc3339, write_json

__all__ = ["DEFAULTS", "MAX_LOG", "MAX_OUTPUT", "Prober", "command", "merge", "read", "record", "suffix",
           "validate"]

SECOND = 10**9
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "Retries": 3, "StartPeriod": 0}  # Docker's
MAX_LOG = 5  # entries kept in State.Health.Log
MAX_OUTPUT = 4096  # bytes of a probe's output kept
FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def path(directory: Path) -> Path:
    return directory / "health.json"


def read(directory: Path) -> dict | None:
    """``State.Health`` as the monitor last wrote it (None: no healthcheck ran in this container)."""
    return read_json(path(directory))


# --8<-- [start:merge]
def merge(image: dict | None, requested: dict | None) -> dict | None:
    """The container's healthcheck: the request's fields, the image's where the request says nothing
    (dockerd's rule: an empty ``Test`` or a zero duration means "as the image says")."""
    if not requested:
        return dict(image) if image else None
    check = dict(requested)
    if not check.get("Test"):
        check["Test"] = (image or {}).get("Test")
    for key in FIELDS:
        if not check.get(key) and (image or {}).get(key):
            check[key] = image[key]
    return {k: v for k, v in check.items() if v is not None}
# --8<-- [end:merge]


def validate(check: Any) -> None:
    """A create body's ``Healthcheck``, checked as dockerd does (InvalidArgument, a 400)."""
    if check is None:
        return
    if not isinstance(check, dict):
        raise errors.InvalidArgument("invalid Healthcheck: expected an object")
    test = check.get("Test")
    if test is not None and not (isinstance(test, list) and all(isinstance(t, str) for t in test)):
        raise errors.InvalidArgument("invalid Healthcheck.Test: expected a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise errors.InvalidArgument(f"invalid Healthcheck.Test[0] {test[0]!r}: NONE, CMD or CMD-SHELL")
    if test and test[0] == "CMD-SHELL" and len(test) != 2:
        raise errors.InvalidArgument("invalid Healthcheck.Test: CMD-SHELL takes one string")
    for key in FIELDS:
        value = check.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.InvalidArgument(f"invalid Healthcheck.{key}: expected an integer")
        if key == "Retries" and value < 0:
            raise errors.InvalidArgument("Retries in Healthcheck cannot be negative")
        if key != "Retries" and value != 0 and value < 1_000_000:
            raise errors.InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")


def command(check: dict | None) -> list[str] | None:
    """The argv a probe runs; None when there is no check (none set, or ``NONE``)."""
    test = (check or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:]) or None


def setting(check: dict, key: str) -> float:
    """One of Docker's durations in seconds (its default when unset or zero), or Retries."""
    value = check.get(key) or DEFAULTS[key]
    return value if key == "Retries" else value / SECOND


def suffix(health: dict | None) -> str:
    """What ``docker ps`` adds to ``Up 5 seconds``."""
    status = (health or {}).get("Status")
    if status == "starting":
        return " (health: starting)"
    return f" ({status})" if status in ("healthy", "unhealthy") else ""


# --8<-- [start:record]
def record(health: dict, check: dict, start: float, end: float, code: int, output: str,
           started_at: float) -> dict:
    """Docker's ``handleProbeResult``: one result into ``State.Health`` (a new dict).

    Exit code 0 is healthy and resets the streak. A failure while the container is still in its
    start period does not count (the status stays ``starting``); after it, ``Retries`` of them in a
    row make it ``unhealthy``. The log keeps the last five results.
    """
    entry = {"Start": rfc3339(start), "End": rfc3339(end), "ExitCode": code, "Output": output}
    new = {"Status": health.get("Status", "starting"), "FailingStreak": health.get("FailingStreak", 0),
           "Log": [*(health.get("Log") or []), entry][-MAX_LOG:]}
    if code == 0:
        new.update(Status="healthy", FailingStreak=0)
    elif not (new["Status"] == "starting" and start - started_at < setting(check, "StartPeriod")):
        new["FailingStreak"] += 1
        if new["FailingStreak"] >= setting(check, "Retries"):
            new["Status"] = "unhealthy"
    return new
# --8<-- [end:record]


class _Output:
    """Collects a probe's output (it comes as Docker's frames, as an exec's would go to a client)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def send(self, framed: bytes) -> None:
        room = MAX_OUTPUT - len(self.data)
        if room > 0:
            self.data += framed[8:][:room]


class Prober:
    """The monitor's side: when to run the next probe, the one running, and what to do with results.

    The monitor is one thread: it asks :meth:`wait` how long it may sleep, calls :meth:`tick` after
    each turn of its loop, and :meth:`exited` when the probe's pidfd is readable.
    """

    def __init__(self, check: dict, directory: Path) -> None:
        self.check, self.dir, self.id = check, directory, directory.name
        self.argv = command(check)
        self.interval, self.timeout = setting(check, "Interval"), setting(check, "Timeout")
        self.next = 0.0
        self.session: Any = None
        self.began = self.deadline = 0.0
        self.timed_out = False
        self.started_at = 0.0
        self.health: dict = {}

    @classmethod
    def of(cls, config: dict, directory: Path) -> Prober | None:
        check = config["Config"].get("Healthcheck")
        return cls(check, directory) if command(check) else None

    def container_started(self) -> None:
        self.started_at, self.next = time.time(), time.monotonic() + self.interval
        self.health = {"Status": "starting", "FailingStreak": 0, "Log": []}
        write_json(path(self.dir), self.health)

    def wait(self) -> float:
        """Seconds until the prober needs the loop again."""
        now = time.monotonic()
        return max(0.0, (self.deadline if self.session else self.next) - now)

    # --8<-- [start:tick]
    def tick(self, start: Any) -> None:
        """Start a probe if one is due (``start(argv)`` gives its ExecSession); kill one past its timeout."""
        now = time.monotonic()
        if self.session is None and now >= self.next:
            self.began, self.deadline, self.timed_out = time.time(), now + self.timeout, False
            try:
                self.session = start(self.argv)
            except Exception as e:  # the command cannot start: a failed probe, as dockerd counts it
                self._result(-1, f"starting the healthcheck: {e}")
                return
            self.session.conn = _Output()
        elif self.session is not None and now >= self.deadline and not self.timed_out:
            self.timed_out = True
            kill_tree(self.session.pid)
    # --8<-- [end:tick]

    def exited(self) -> None:
        """The probe's process exited: record its result."""
        session, self.session = self.session, None
        code, problem = session.finish()
        output = bytes(session.conn.data).decode(errors="replace")
        if self.timed_out:
            code, output = -1, f"Health check exceeded timeout ({_go_duration(self.timeout)})"
        elif problem:
            output += problem
        self._result(code, output)

    def _result(self, code: int, output: str) -> None:
        before = self.health.get("Status")
        self.health = record(self.health, self.check, self.began, time.time(), code, output, self.started_at)
        write_json(path(self.dir), self.health)
        self.next = time.monotonic() + self.interval
        if self.health["Status"] != before:  # Docker's event, when the status changes
            from minidocker.daemon import events  # the daemon's /events (its notify needs no daemon)

            events.notify(self.id, f"health_status: {self.health['Status']}")

    def close(self) -> None:
        if self.session is not None:
            kill_tree(self.session.pid)
            self.session.close()
            self.session = None


def kill_tree(pid: int) -> None:
    """SIGKILL the command an exec's helper runs in the container, or the helper if it has none yet.

    Only the command: the helper, which waits for it, reaps it and exits. Killing both would orphan
    the command, and an orphan is handed to the monitor (the nearest subreaper in the helper's
    namespace), which does not wait for it: a zombie in the container's PID namespace that its PID 1,
    when it exits, waits for forever (``zap_pid_ns_processes``) -- and ``docker rm -f`` hangs.
    """
    children: list[str] = []
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{pid}/children") as f:
        children = f.read().split()
    for child in children:
        with contextlib.suppress(OSError):
            os.kill(int(child), signal.SIGKILL)
    if not children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _go_duration(seconds: float) -> str:
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"
