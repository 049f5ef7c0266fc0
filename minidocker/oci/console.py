"""Chapter 14: ``--console-socket``: hand a container's terminal to whoever drives the runtime.

With ``process.terminal`` the container's stdio is a pseudo-terminal. The runtime exits right
after ``create``, so it cannot relay the terminal itself: it sends the pty's master to a UNIX
socket the caller listens on (containerd's shim, ``runc``'s own recvtty), and the caller keeps it.
The message is runc's ``utils.SendFd``: one ``sendmsg(2)`` whose payload is the terminal's name
(``/dev/pts/N``) and whose ancillary data is the descriptor, as ``SCM_RIGHTS``. The runtime
connects on the host; the container's process opens the pty in its own ``/dev/pts`` and sends.

Example (the caller's side, in a test)::

    conn, _ = listener.accept()
    name, fds, _, _ = socket.recv_fds(conn, 4096, 1)     # b"/dev/pts/3", [master]
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios

from minidocker.core.process import EngineError

__all__ = ["connect", "open_terminal", "send_master", "take_terminal"]

TIOCGPTN, TIOCSPTLCK = 0x80045430, 0x40045431  # <asm-generic/ioctls.h>; Python's termios lacks them


def connect(socket_path: str) -> int:
    """Connect to the console socket now, on the host; the container's process sends on it later."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(30)
        conn.connect(socket_path)
    except OSError as e:
        conn.close()
        raise EngineError(f"console socket {socket_path}: {e.strerror or e}") from None
    return conn.detach()  # close-on-exec, as every socket Python makes


# --8<-- [start:open_terminal]
def open_terminal(size: tuple[int, int] | None = None) -> tuple[int, int, str]:
    """A new pty of *this* mount namespace's devpts: (master, slave, ``/dev/pts/N``), close-on-exec.

    Called in the container, after pivot_root: the terminal is the container's own, so ``tty``
    inside names a file that exists there (runc opens it in the container too).
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt(3)
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]  # ptsname(3)
    name = f"/dev/pts/{number}"
    slave = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if size and size[0] and size[1]:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave, name
# --8<-- [end:open_terminal]


# --8<-- [start:send_master]
def send_master(conn_fd: int, master: int, name: str) -> None:
    """Send ``master`` on the connected console socket: one message, the fd in SCM_RIGHTS. Closes both."""
    with socket.socket(fileno=conn_fd) as conn:
        conn.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    os.close(master)
# --8<-- [end:send_master]


# --8<-- [start:take_terminal]
def take_terminal(conn_fd: int | None, size: tuple[int, int] | None = None) -> None:
    """In the container, first thing before exec: a new pty becomes stdio and the controlling terminal.

    Its master goes to the console socket (``conn_fd``); without one (``run`` in a terminal) the
    process keeps the caller's terminal, which is already its stdin.
    """
    if conn_fd is None:
        slave = os.dup(0)
    else:
        master, slave, name = open_terminal(size)
        send_master(conn_fd, master, name)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
# --8<-- [end:take_terminal]
