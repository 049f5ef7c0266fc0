"""Chapter 10: the daemon's containers: their records on disk, and the shapes the Docker API gives them.

A container is a directory, ``STATE/containers/ID/``, that survives the daemon:

* ``config.json``: what ``docker create`` asked for (written by the daemon, atomically);
* ``state.json``: running or exited, pid, exit code, times (written by the container's monitor);
* ``json.log``: its output (written by the monitor);
* its root filesystem.

Two writers, two files: the monitor can record an exit while the daemon is down, and the daemon
reads both when it comes back. This module turns them into what ``docker ps`` and ``docker inspect``
read: exact field names, integers where Go expects integers, RFC 3339 times.

Example::

    c = Container.load(state_dir() / "containers" / cid)
    c.summary()["Status"]          # 'Exited (0) 3 seconds ago'
"""

from __future__ import annotations

import asyncio
import calendar
import random
import re
import time
from pathlib import Path
from typing import Any

from minidocker.core.atomic import ZERO_TIME, read_json
from minidocker.daemon import freezer, health, restart
from minidocker.daemon.events import labels_match

__all__ = ["NAME", "Container", "human_duration", "pid_is_monitor", "random_name", "seconds", "start_time"]

NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_ADJECTIVES = ("brave", "calm", "eager", "fervent", "gifted", "happy", "jolly", "keen", "nifty",
               "quirky", "serene", "tender", "vibrant", "wizardly", "zealous")
_SCIENTISTS = ("hopper", "lovelace", "ritchie", "thompson", "torvalds", "kernighan", "liskov",
               "hamilton", "turing", "knuth", "dijkstra", "cerf", "perlman", "allen", "wing")


def random_name(taken: set[str]) -> str:
    """A Docker-style ``adjective_scientist`` name that is not taken yet."""
    while True:
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SCIENTISTS)}"
        if name not in taken:
            return name
        if random.random() < 0.3:
            name += str(random.randint(1, 99))
            if name not in taken:
                return name


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: "Less than a second", "3 seconds", "About a minute", ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _seconds(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time written by :func:`_atomic.rfc3339`."""
    if not stamp or stamp.startswith("0001"):
        return 0.0
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


seconds = _seconds


class Container:
    """One container as the daemon knows it: its config, its last known state, who waits for it."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.dir, self.config = directory, config
        self.id: str = config["Id"]
        self.state: dict[str, Any] = read_json(directory / "state.json") or {
            "Status": "created", "Pid": 0, "ExitCode": 0, "Error": "", "OOMKilled": False,
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}
        self.lock = asyncio.Lock()
        self.exited = asyncio.Condition()  # notified at each exit
        self.removed = asyncio.Event()
        self.exit_count = 0
        self.pending_attach: list[Any] = []  # attach requests waiting for the start
        self.monitor_pid = 0
        self.monitor_gone = asyncio.Event()
        self.left_clean_up: Any = None  # the task running what a dead monitor left (supervisor.py)
        self.removing = False
        self.exec_ids: list[str] = []
        self.restart = restart.load(directory)  # the restart policy's record (daemon/restart.py)
        self.restarting = False  # exited, and waiting for the back-off before the policy's restart
        self.restart_task: Any = None
        self.restart_waiting = False  # the restart task is in its back-off (not yet starting)

    @classmethod
    def load(cls, directory: Path) -> Container | None:
        config = read_json(directory / "config.json")
        return cls(directory, config) if config else None

    @property
    def name(self) -> str:
        return self.config["Name"]

    @property
    def running(self) -> bool:
        return self.state.get("Status") == "running"

    @property
    def paused(self) -> bool:
        """Whether ``docker pause`` froze it: asked of its cgroup (chapter 03's freezer) each time."""
        return self.running and freezer.is_paused(int(self.state.get("Pid") or 0))

    @property
    def tty(self) -> bool:
        return bool(self.config["Config"].get("Tty"))

    def reload_state(self) -> None:
        self.state = read_json(self.dir / "state.json") or self.state

    def status_text(self) -> str:
        """What ``docker ps`` shows in STATUS."""
        status = self.state.get("Status")
        if status == "running":
            up = human_duration(time.time() - _seconds(self.state.get('StartedAt', '')))
            return f"Up {up}{' (Paused)' if self.paused else health.suffix(self.health())}"
        if self.restarting:
            ago = human_duration(time.time() - _seconds(self.state.get("FinishedAt", "")))
            return f"Restarting ({self.state.get('ExitCode', 0)}) {ago} ago"
        if status == "exited":
            ago = human_duration(time.time() - _seconds(self.state.get("FinishedAt", "")))
            return f"Exited ({self.state.get('ExitCode', 0)}) {ago} ago"
        return "Removal In Progress" if self.removing else "Created"

    def summary(self) -> dict[str, Any]:
        """An entry of ``GET /containers/json`` (``docker ps``)."""
        cfg = self.config
        command = " ".join([cfg["Path"], *cfg["Args"]])
        return {
            "Id": self.id, "Names": [cfg["Name"]], "Image": cfg["ImageName"], "ImageID": cfg["Image"],
            "Command": command, "Created": int(_seconds(cfg["Created"])), "Ports": cfg.get("PortList", []),
            "Labels": cfg["Config"].get("Labels") or {},
            "State": "paused" if self.paused else self.state.get("Status", "created"),
            "Status": self.status_text(), "HostConfig": {"NetworkMode": cfg["HostConfig"].get(
                "NetworkMode") or "default"},
            "NetworkSettings": {"Networks": cfg.get("Networks", {})}, "Mounts": cfg.get("Mounts", []),
        }

    def inspect(self) -> dict[str, Any]:
        """``GET /containers/ID/json`` (``docker inspect``)."""
        cfg, st = self.config, self.state
        status = st.get("Status", "created")
        checked, paused = self.health(), self.paused
        return {
            "Id": self.id, "Created": cfg["Created"], "Path": cfg["Path"], "Args": cfg["Args"],
            "State": {"Status": "restarting" if self.restarting else "paused" if paused else status,
                      "Running": status == "running", "Paused": paused, "Restarting": self.restarting,
                      "OOMKilled": bool(st.get("OOMKilled")),
                      "Dead": False,
                      "Pid": int(st.get("Pid") or 0) if status == "running" else 0,
                      "ExitCode": int(st.get("ExitCode") or 0), "Error": st.get("Error", ""),
                      "StartedAt": st.get("StartedAt") or ZERO_TIME,
                      "FinishedAt": st.get("FinishedAt") or ZERO_TIME,
                      **({"Health": checked} if checked else {})},
            "Image": cfg["Image"], "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
            "LogPath": str(self.dir / "json.log"), "Name": cfg["Name"],
            "RestartCount": int(self.restart.get("RestartCount") or 0),
            "Driver": cfg.get("Driver", "dir"), "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": self.exec_ids or None, "HostConfig": cfg["HostConfig"],
            "GraphDriver": {"Name": cfg.get("Driver", "overlay2"), "Data": {}},
            "Mounts": cfg.get("Mounts", []), "Config": cfg["Config"],
            "NetworkSettings": cfg.get("NetworkSettings") or {
                "Bridge": "", "SandboxID": "", "Ports": {}, "IPAddress": "", "Gateway": "",
                "MacAddress": "", "Networks": cfg.get("Networks", {})},
        }

    def health(self) -> dict | None:
        """``State.Health`` as the monitor wrote it, if the container has a healthcheck."""
        if not health.command(self.config["Config"].get("Healthcheck")):
            return None
        return health.read(self.dir) or {"Status": "starting", "FailingStreak": 0, "Log": []}

    def matches(self, filters: dict[str, list[str]]) -> bool:
        """``docker ps --filter``: each key given must match, any of its values (``label``: all of them)."""
        labels = self.config["Config"].get("Labels") or {}
        host = self.config["HostConfig"]
        networks = {host.get("NetworkMode") or "default", *(self.config.get("Networks") or {})}
        if networks & {"default", "bridge"}:
            networks |= {"default", "bridge"}
        checked = (self.health() or {}).get("Status") or "none"  # health.json, as the monitor wrote it
        checks = {
            "status": lambda v: self.state.get("Status") == v,
            "name": lambda v: _search(v.lstrip("/"), self.name.lstrip("/")),
            "id": lambda v: self.id.startswith(v),
            "ancestor": lambda v: _ancestor(v, self.config["ImageName"], self.config["Image"]),
            "exited": lambda v: self.state.get("Status") == "exited" and str(self.state.get("ExitCode")) == v,
            "network": lambda v: v in networks,
            "volume": lambda v: any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                                    for m in self.config.get("Mounts") or []),
            "health": lambda v: checked == v,
            "publish": lambda v: any(v.split("/")[0] == str(p.get("PublicPort")) for p in self.config.get(
                "PortList") or []),
            "expose": lambda v: any(v.split("/")[0] == k.split("/")[0] for k in self.config["Config"].get(
                "ExposedPorts") or {}),
        }
        for key, values in filters.items():
            if not values:
                continue
            if key == "label":
                if not labels_match(values, labels):
                    return False
            elif key in checks and not any(checks[key](v) for v in values):
                return False
        return True


def _ancestor(ref: str, name: str, image_id: str) -> bool:
    """Docker's ancestor filter: the image as it was named (``busybox`` is ``busybox:latest``) or its id."""
    if ref in (name, image_id) or (":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" == name):
        return True
    short = ref.removeprefix("sha256:")
    return len(short) >= 4 and image_id.removeprefix("sha256:").startswith(short)


def _search(pattern: str, name: str) -> bool:
    """Docker's name filter: a regular expression searched in the name (a bad one: a substring)."""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def start_time(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot): with the pid, a unique name for it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return -1


def pid_is_monitor(pid: int, started: int) -> bool:
    """Is ``pid`` still the monitor that wrote ``started`` (and not a recycled pid)?"""
    return pid > 0 and started > 0 and start_time(pid) == started
