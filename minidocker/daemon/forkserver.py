"""Chapter 10: a fork server for monitors: the engine imported once, each monitor a fork away.

A monitor is a fresh Python process: starting the interpreter and importing the engine's stages
costs ~150 ms, and the network stage's netlink library (pyroute2) ~300 ms more, for every
container. Docker's shim is a small Go binary and starts in a few milliseconds. So the daemon
starts one *fork server* that imports everything once (its memory then shared copy-on-write by
all its forks), and asks it for each new monitor. The fork server forks twice, so that the
monitor is nobody's child but the daemon's (a subreaper) and lives on if the daemon goes; it is
single-threaded, so fork is safe. This is the same trick as ``multiprocessing``'s ``forkserver``
and Android's zygote.

Protocol, on a UNIX socket: the daemon sends ``CONTAINER_ID\\n``; the monitor itself answers
``ready PID\\n`` once it listens on its own socket.

Run it (the daemon does)::

    python -m minidocker.daemon.forkserver /run/minidocker/forkserver.sock
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from minidocker.core import syscalls as _syscalls
from minidocker.core.paths import run_dir, umask

__all__ = ["main", "preload", "serve"]


def preload() -> None:
    """Import what every monitor needs, once: the engine's stages, and netlink if it is there.

    Also what the stages import only when they run (the network's links and firewall, a veth's
    random name, the image stage's pull and its unpacking of layers): a module imported after the
    fork is a private copy in every monitor.
    """
    import concurrent.futures.thread  # noqa: F401  (the image stage's pull: its download threads)
    import gzip  # noqa: F401
    import secrets  # noqa: F401

    from minidocker.images import pull  # noqa: F401  (with its checks and progress)
    from minidocker.network import (
        veth,  # noqa: F401
    )

    with contextlib.suppress(ImportError):
        import pyroute2  # noqa: F401
    from minidocker.daemon import plugins

    plugins.discover()  # later chapters register their network modes (chapter 05's register_mode)
    from minidocker.security import capabilities, seccomp

    seccomp.default_filter(capabilities.DOCKER_DEFAULT, keep=True)  # compiled once, for every start
    from minidocker.daemon import engine
    from minidocker.images import run as imagerun

    engine.known_options()  # and the engine's parsers, made once
    imagerun.parse(["image"], stages=engine.STAGES, prog=engine.PROG)
    from minidocker.daemon import monitor

    scratch = Path(tempfile.mkdtemp(prefix="forkserver-", dir=run_dir()))
    try:
        monitor.rehearse(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    gc.collect()


# --8<-- [start:serve]
def serve(listener: socket.socket) -> NoReturn:
    """Accept ``CONTAINER_ID`` requests; for each, fork a monitor that answers on the same socket."""
    from minidocker.daemon import monitor

    while True:
        conn, _ = listener.accept()
        with conn:
            container_id = conn.recv(256).decode(errors="replace").strip()
            if not container_id.isalnum():
                continue
            child = os.fork()
            if child == 0:
                try:
                    listener.close()
                    os.setsid()  # a session of its own: no signal for the daemon reaches it
                    if os.fork():
                        os._exit(0)  # the grandchild is reparented to the daemon (a subreaper)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, 0)
                    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                    log = os.open(monitor.log_path(container_id), flags, 0o600)
                    os.dup2(log, 2)
                    os.close(log)
                    monitor.run(container_id, os.dup(conn.fileno()))
                except BaseException:
                    os._exit(1)
            os.waitpid(child, 0)
# --8<-- [end:serve]


def main(argv: list[str] | None = None) -> NoReturn:
    """``python -m minidocker.daemon.forkserver SOCKET``: preload, listen, serve until the daemon goes."""
    argv = sys.argv[1:] if argv is None else argv
    _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, signal.SIGTERM)  # it never outlives its daemon
    preload()
    gc.freeze()  # the collector never visits (so never writes to) what the monitors share
    with contextlib.suppress(FileNotFoundError):
        os.unlink(argv[0])
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with umask(0o177):  # 0600 from bind(2) on: a chmod after it leaves a moment open to all
        listener.bind(argv[0])
    listener.listen(64)
    os.write(1, b"ready\n")
    serve(listener)


if __name__ == "__main__":
    main()
