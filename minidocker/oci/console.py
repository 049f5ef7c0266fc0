"""Chapter 14: ``--console-socket``: hand a container's terminal to whoever drives the runtime.

With ``process.terminal`` the container's stdio is a pseudo-terminal. The runtime exits right
after ``create``, so it cannot relay the terminal itself: it sends the pty's master to a UNIX
socket the caller listens on (containerd's shim, ``runc``'s own recvtty), and the caller keeps it.
The message is runc's ``utils.SendFd``: one ``sendmsg(2)`` whose payload is the terminal's name
(``/dev/pts/N``) and whose ancillary data is the descriptor, as ``SCM_RIGHTS``.

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

__all__ = ["open_terminal", "send_master", "take_terminal"]


def open_terminal(size: tuple[int, int] | None = None) -> tuple[int, int, str]:
    """A new pty: (master, slave, the slave's name), both close-on-exec, ``size`` = (rows, columns)."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    if size and size[0] and size[1]:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave, os.ttyname(slave)


# --8<-- [start:send_master]
def send_master(socket_path: str, master: int, name: str) -> None:
    """Send ``master`` to the UNIX socket at ``socket_path``: one message, the fd in SCM_RIGHTS."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(socket_path)
        conn.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
# --8<-- [end:send_master]


# --8<-- [start:take_terminal]
def take_terminal(slave: int) -> None:
    """In the container, first thing before exec: the pty becomes stdio and the controlling terminal."""
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
# --8<-- [end:take_terminal]
