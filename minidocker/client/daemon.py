"""Chapter 11: ``minidocker daemon start|stop|status``: run ``minidockerd`` in the background, on demand.

There is no systemd here to keep the daemon running, so the client can start one: a detached
``python -m minidocker.daemon`` in its own session, its output in ``RUN/minidockerd.log``; we wait
until it answers ``/_ping``. ``stop`` sends SIGTERM: the daemon goes, containers keep running
(their monitors hold them), and a new daemon finds them again.

Which daemon? The one this client talks to: on a UNIX socket the kernel names the process that
listens there (``SO_PEERCRED``); else its pidfile (``--pidfile``, default ``RUN/minidockerd.pid``),
which each daemon has its own of (``minidocker.daemon.places``).

Example::

    $ minidocker daemon start
    minidockerd is running (pid 4242) on unix:///run/minidocker.sock
    $ minidocker -H unix:///run/md2.sock daemon stop
    minidockerd (pid 4343) stopped
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from minidocker.client.client import Client, DaemonUnreachable

__all__ = ["main", "start", "stop"]


def _listener(client: Client) -> int | None:
    """The pid of the process listening on the client's UNIX socket, if one does."""
    if client.scheme != "unix":
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(client.address)
            creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    return struct.unpack("3i", creds)[0] or None


def _pid(client: Client, pidfile: str | None = None) -> int | None:
    """The daemon's pid: the given pidfile's, else the socket's listener, else the default pidfile's."""
    from minidocker.core.paths import run_dir

    if pidfile is None and (pid := _listener(client)):
        return pid
    try:
        pid = int(Path(pidfile or run_dir() / "minidockerd.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _alive(client: Client) -> bool:
    try:
        client.request("GET", "/_ping", timeout=2).read()
        return True
    except (DaemonUnreachable, OSError):
        return False


def start(client: Client, extra: list[str]) -> int:
    """Start a daemon unless one answers already; wait (10 s at most) until it does."""
    from minidocker.core.paths import run_dir

    if _alive(client):
        print(f"minidockerd is already running on {client.host}")
        return 0
    if os.geteuid() != 0:
        print("minidocker: the daemon runs containers: start it as root", file=sys.stderr)
        return 1
    hosts = ["-H", client.host] if client.scheme == "unix" else []
    log = open(run_dir() / "minidockerd.log", "ab")  # noqa: SIM115 (handed to the daemon)
    daemon = subprocess.Popen([sys.executable, "-m", "minidocker.daemon", *hosts, *extra],
                              stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            print(f"minidocker: the daemon exited with status {daemon.returncode}: see "
                  f"{run_dir() / 'minidockerd.log'}", file=sys.stderr)
            return 1
        if _alive(client):
            print(f"minidockerd is running (pid {daemon.pid}) on {client.host}")
            return 0
        time.sleep(0.05)
    print("minidocker: the daemon did not answer within 10 seconds", file=sys.stderr)
    return 1


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: gone, or a zombie its parent has not reaped yet, is not running."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def stop(client: Client, pidfile: str | None = None) -> int:
    """SIGTERM the daemon ``client`` talks to (or ``pidfile``'s) and wait for it to go (containers keep
    running)."""
    pid = _pid(client, pidfile)
    if pid is None:
        print("minidockerd is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not _running(pid):
            break
        time.sleep(0.05)
    print(f"minidockerd (pid {pid}) stopped")
    return 0


def main(argv: list[str], client: Client) -> int:
    """``minidocker daemon start|stop|status``, for the daemon ``client`` speaks to."""
    action = argv[0] if argv else "status"
    if action == "start":
        return start(client, argv[1:])
    if action == "stop" and len(argv) in (1, 3) and argv[1:2] in ([], ["--pidfile"]):
        return stop(client, argv[2] if len(argv) == 3 else None)
    if action == "status":
        alive = _alive(client)
        pid = f" (pid {_pid(client)})" if alive and _pid(client) else ""
        print(f"minidockerd is {'running' if alive else 'not running'}{pid} on {client.host}")
        return 0 if alive else 1
    print("usage: minidocker daemon start [DAEMON OPTIONS]|stop [--pidfile PATH]|status", file=sys.stderr)
    return 2
