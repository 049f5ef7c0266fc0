"""Chapter 12: the embedded DNS's sockets, made before the container runs and handed to the daemon.

A container's first instruction may be a lookup (``wget http://web/``): 127.0.0.11:53 must exist in
its network namespace before its command is exec'd, as Docker's resolver does. The daemon learns
that a container started only once it runs, too late. The engine, though, holds the namespace
before PID 1 is told to go (chapter 02's ``on_created`` hooks). So chapter 12's stage binds the UDP
and TCP sockets there (:func:`sockets_in`, in a thread of its own that steps into the namespace)
and sends them, with a pidfd of PID 1 and the container's id, to its daemon: one datagram on the
daemon's ``EXEC_ROOT/dns.sock`` carrying the three descriptors (``SCM_RIGHTS``). No answer is
awaited; a query that comes before the daemon reads them waits in the sockets' own buffers (the
UDP queue, the TCP backlog) and is answered a moment later.

When no daemon listens (the engine run by hand, or the daemon down while a container starts) the
sockets are closed again and the daemon binds fresh ones when it comes (``EmbeddedDNS.attach``).

The socket is root's alone (0600 from bind on), and the daemon also checks the sender's
credentials (``SCM_CREDENTIALS``): uid 0 only. Every descriptor received is closed unless the
message is whole and well-formed.

Example::

    hand_over(container_id, pid)       # the engine, in an on_created hook: True if the daemon has them
    sock = listen()                    # the daemon, once
    for handed in receive(sock): ...   # Handed(container_id, udp, tcp, pidfd), ours to close
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import re
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from minidocker.core.paths import run_dir, umask
from minidocker.core.syscalls import CLONE_NEWNET, setns
from minidocker.networks.resolvconf import EMBEDDED

__all__ = ["BACKLOG", "Handed", "hand_over", "listen", "netns_of", "receive", "socket_path", "sockets_in"]

PORT = 53
BACKLOG = 64  # TCP connections that may wait for the daemon (dns.py's TCP_CONNECTIONS)
SIOCGSKNS = 0x894C  # ioctl: a descriptor of the network namespace a socket belongs to
_ID = re.compile(r"^[0-9a-f]{64}$")
_FDS = 3  # UDP socket, TCP socket, pidfd of PID 1


def socket_path() -> Path:
    """Where the daemon takes the sockets: in its own exec root (one per daemon)."""
    return run_dir() / "dns.sock"


# --8<-- [start:sockets_in]
def sockets_in(pid: int, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to ``address:port`` in the network namespace of ``pid``.

    Run in a thread of its own that ends afterwards: setns(2) moves only the calling thread, and
    a thread that failed to step back must not serve anything else.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(own)
        raise
    made: list[socket.socket] = []
    try:
        setns(target, CLONE_NEWNET)
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_INET, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
                made.append(sock)
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
        finally:
            setns(own, CLONE_NEWNET)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    finally:
        os.close(own)
        os.close(target)
    return made[0], made[1]
# --8<-- [end:sockets_in]


def netns_of(sock: socket.socket) -> tuple[int, int]:
    """(st_dev, st_ino) of the network namespace ``sock`` was made in (as ``os.stat`` of /proc/PID/ns/net)."""
    fd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return info.st_dev, info.st_ino


def _in_thread(pid: int, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """:func:`sockets_in` in a thread that ends afterwards, waited for (the engine is single-threaded)."""
    result: list[object] = []

    def body() -> None:
        try:
            result.append(sockets_in(pid, address, port))
        except BaseException as e:
            result.append(e)

    thread = threading.Thread(target=body, name="dns-setns")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]  # type: ignore[return-value]


# --8<-- [start:hand_over]
def hand_over(container_id: str, pid: int, *, address: str = EMBEDDED, port: int = PORT) -> bool:
    """In the engine, before PID 1 runs: bind ``address:port`` in its namespace, give the daemon the sockets.

    True when the daemon has them (it serves them as soon as it reads its socket; queries wait in
    theirs until then). False when no daemon listens, or the sockets could not be made: the
    daemon attaches once the container runs, as it does after its own restart.
    """
    path = socket_path()
    if not path.exists():  # no daemon here (the engine run by hand): nothing to bind
        return False
    try:
        udp, tcp = _in_thread(pid, address, port)
    except OSError:
        return False  # the daemon's attach will say why (the address in use: a 409)
    pidfd = -1
    try:
        tcp.listen(BACKLOG)  # connections wait in the backlog, not refused
        pidfd = os.pidfd_open(pid)
        kind = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        with socket.socket(socket.AF_UNIX, kind) as s:
            message = json.dumps({"id": container_id}).encode()
            fds = array.array("i", [udp.fileno(), tcp.fileno(), pidfd])
            s.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, str(path))
        return True  # the daemon holds its own copies now
    except OSError:  # nobody listens (a daemon killed), or its queue is full
        return False
    finally:
        udp.close()
        tcp.close()
        if pidfd >= 0:
            os.close(pidfd)
# --8<-- [end:hand_over]


# ---- the daemon's side ---------------------------------------------------------------------------
@dataclass
class Handed:
    """What one engine handed over: its container's id, the two bound sockets, a pidfd of its PID 1."""

    container_id: str
    udp: socket.socket
    tcp: socket.socket
    pidfd: int

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def listen() -> socket.socket:
    """The daemon's ``dns.sock`` (root's alone), non-blocking, passing the senders' credentials."""
    path = socket_path()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        with umask(0o177):
            sock.bind(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


_CONTROL = socket.CMSG_SPACE(_FDS * 4) + socket.CMSG_SPACE(struct.calcsize("3i"))


def receive(sock: socket.socket) -> list[Handed]:
    """Every whole, well-formed hand-over waiting on ``sock`` (the rest: descriptors closed, dropped)."""
    found = []
    while True:
        try:
            data, ancillary, flags, _ = sock.recvmsg(512, _CONTROL, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return found
        fds: list[int] = []
        uid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                items = array.array("i")
                items.frombytes(payload[:len(payload) - len(payload) % items.itemsize])
                fds.extend(items)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                uid = struct.unpack("3i", payload[:12])[1]
        handed = _parse(data, fds, uid, flags)
        if handed is None:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        else:
            found.append(handed)


def _parse(data: bytes, fds: list[int], uid: int, flags: int) -> Handed | None:
    if uid != 0 or len(fds) != _FDS or flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        return None
    try:
        container_id = json.loads(data)["id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(container_id, str) or not _ID.match(container_id):
        return None
    try:
        if not all(stat.S_ISSOCK(os.fstat(fd).st_mode) for fd in fds[:2]):
            return None
        if os.readlink(f"/proc/self/fd/{fds[2]}") != "anon_inode:[pidfd]":
            return None
    except OSError:
        return None
    udp, tcp = socket.socket(fileno=fds[0]), socket.socket(fileno=fds[1])
    if (udp.family, udp.type, tcp.family, tcp.type) != (socket.AF_INET, socket.SOCK_DGRAM,
                                                          socket.AF_INET, socket.SOCK_STREAM):
        udp.detach(), tcp.detach()  # closed by the caller, with the pidfd
        return None
    return Handed(container_id, udp, tcp, fds[2])
