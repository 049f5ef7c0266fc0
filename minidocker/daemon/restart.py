"""Chapter 10: restart policies: which exited container the daemon starts again, and when.

``docker run --restart on-failure:3`` (``HostConfig.RestartPolicy`` ``{"Name": "on-failure",
"MaximumRetryCount": 3}``) asks the daemon to start the container again when it exits with a non-zero
code, three times at most; ``always`` whatever the code; ``unless-stopped`` the same, except after a
``docker stop``. A stopped (or killed) container is never restarted until it is started by hand;
``always`` ones come back when the daemon starts, even stopped ones, ``unless-stopped`` ones
only if they were not stopped.

As in dockerd's ``restartmanager``, it is the *daemon* that restarts, not the shim: a restart
goes through the whole start (the monitor, the networks' plug-ins, events), and a container that
exited while the daemon was down is restarted when it is back. Between restarts a back-off: 100 ms,
doubled at each restart, at most a minute, back to 100 ms after a run of 10 seconds or more.

What the daemon must remember across its restarts (``RestartCount``, the retries the policy has
used, the current delay, whether the container was stopped by hand) goes in ``restart.json`` in the
container's directory: the daemon's file, as ``state.json`` is the monitor's.

Example::

    >>> decide({"Name": "on-failure", "MaximumRetryCount": 2}, {"Retries": 2}, 1, 0.5)
    >>> decide({"Name": "always"}, {"Delay": 0.1}, 0, 0.5)
    0.2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minidocker.core import errors
from minidocker.core.atomic import read_json, write_json

__all__ = ["POLICIES", "decide", "load", "on_boot", "parse", "save", "validate"]

POLICIES = ("no", "always", "on-failure", "unless-stopped")
FIRST_DELAY, MAX_DELAY, RESET_AFTER = 0.1, 60.0, 10.0  # seconds, as dockerd's restartmanager


def parse(text: str) -> dict:
    """``--restart`` as the docker CLI reads it: ``on-failure:3`` -> ``{"Name": "on-failure", ...: 3}``."""
    name, _, count = text.partition(":")
    if name not in POLICIES:
        raise ValueError(f"invalid restart policy {name!r}: no, always, on-failure[:N] or unless-stopped")
    if count and (name != "on-failure" or not count.isdigit()):
        raise ValueError(f"invalid restart policy {text!r}: only on-failure takes a count (a number)")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def validate(policy: Any, auto_remove: bool) -> None:
    """``HostConfig.RestartPolicy`` checked as dockerd does at create (InvalidArgument, a 400)."""
    if policy is None:
        return
    if not isinstance(policy, dict):
        raise errors.InvalidArgument("invalid HostConfig.RestartPolicy: expected an object")
    name, count = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
    if name not in POLICIES:
        raise errors.InvalidArgument(f"invalid restart policy '{name}'")
    if not isinstance(count, int) or count < 0:
        raise errors.InvalidArgument("maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise errors.InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if auto_remove and name != "no":
        raise errors.InvalidArgument("can't create 'AutoRemove' container with restart policy")


def load(directory: Path) -> dict:
    """The container's restart record: ``RestartCount``, ``Retries``, ``Delay``, ``ManuallyStopped``."""
    return {"RestartCount": 0, "Retries": 0, "Delay": 0.0, "ManuallyStopped": False,
            **(read_json(directory / "restart.json") or {})}


def save(directory: Path, record: dict) -> None:
    write_json(directory / "restart.json", record)


# --8<-- [start:decide]
def decide(policy: dict | None, record: dict, exit_code: int, ran: float) -> float | None:
    """After an exit: the delay before the restart, or None for no restart (``record`` is updated).

    ``ran`` is how long the container ran, in seconds. dockerd's ``ShouldRestart``: the delay doubles
    from 100 ms up to a minute, and starts again from 100 ms after a run of ten seconds.
    """
    name = (policy or {}).get("Name") or "no"
    if record.get("ManuallyStopped") or name == "no":
        return None
    if name == "on-failure":
        limit = (policy or {}).get("MaximumRetryCount") or 0
        if exit_code == 0 or (limit and record.get("Retries", 0) >= limit):
            return None
    delay = FIRST_DELAY if ran >= RESET_AFTER or not record.get("Delay") else min(record["Delay"] * 2,
                                                                                   MAX_DELAY)
    record.update(Delay=delay, Retries=record.get("Retries", 0) + 1)
    return delay
# --8<-- [end:decide]


# --8<-- [start:on_boot]
def on_boot(policy: dict | None, record: dict, exit_code: int) -> bool:
    """Start this (not running) container when the daemon starts? ``always``: yes, even if stopped by
    hand; ``unless-stopped``: unless it was; ``on-failure``: if it failed and has retries left."""
    name = (policy or {}).get("Name") or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not record.get("ManuallyStopped")
    if name == "on-failure" and not record.get("ManuallyStopped") and exit_code != 0:
        limit = (policy or {}).get("MaximumRetryCount") or 0
        return not limit or record.get("Retries", 0) < limit
    return False
# --8<-- [end:on_boot]
