"""Chapter 10: what the stages set up, handed from a short-lived start worker to the monitor as data.

A monitor lives as long as its container, so what it holds is paid for once per container. Running
the stages (parse the options, read the image, make the cgroup, mount the overlay, plug in the
network, compile the seccomp filter) writes to thousands of the fork server's objects, if only to
count references, and every page written is the monitor's own copy from then on: about 6 MiB per
container, 10 on a bridge. So the monitor forks a *start worker* that runs the stages and starts
PID 1 as the monitor's child (``namespaces.start(spec, reap=False)``), then hands over what must
still happen when the container exits, and exits: its pages go with it.

What must still happen is the stages' clean-up (a :class:`RecordingStack`) and their ``on_exit``
hooks: module-level functions and picklable objects (a cgroup, a filesystem, a network). The worker
writes them to the container's directory (:data:`LEFT`, root-only) and sends them to the monitor;
the stages' watchdogs (chapter 03), one ``sh`` each per container, are then disarmed. When the
container has exited, the monitor does the clean-up with :func:`run` as it exits, every module
already imported, and removes the file. If the monitor itself dies, the daemon runs
what the file says (``python -m minidocker.daemon.handover DIR``), at once or, if it is down too, as
it starts: as containerd cleans up after a dead shim. A stage whose clean-up is not data (a
closure) is not handed over: its worker stays, with its watchdogs, and cleans up when told the
container's status or when the monitor's end of their socket closes.

Example (in the start worker, then in the monitor after the container exited)::

    stack = RecordingStack()
    spec = engine.container_spec(cid, argv, stack)
    blob, fds = pack(stack, spec, directory)    # NotData if a clean-up is a closure
    ...
    run(blob, wait_status, fds)
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minidocker.core.atomic import atomic_write
from minidocker.core.spec import ContainerSpec
from minidocker.core.watchdog import Disarm

__all__ = ["LEFT", "NotData", "RecordingStack", "main", "pack", "run", "run_left"]


class NotData(Exception):
    """A clean-up step that cannot be handed to another process (a closure, an open connection)."""


class RecordingStack(contextlib.ExitStack):
    """An ``ExitStack`` that also keeps each step as ``(function, args, kwargs)``, to be pickled."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[Callable[..., Any], tuple, dict]] = []

    def callback(self, callback: Callable[..., Any], /, *args: Any, **kwds: Any) -> Callable[..., Any]:
        self.steps.append((callback, args, kwds))
        return super().callback(callback, *args, **kwds)

    def enter_context(self, cm: Any) -> Any:
        result = super().enter_context(cm)
        self.steps.append((type(cm).__exit__, (cm, None, None, None), {}))
        return result

    def push(self, exit: Any) -> Any:
        self.steps.append((exit, (None, None, None), {}))
        return super().push(exit)


LEFT = "teardown.pickle"  # in the container's directory, while a handed-over clean-up is pending
MAX_LEFT = 1 << 20


# --8<-- [start:pack]
def pack(stack: RecordingStack, spec: ContainerSpec, directory: Path) -> tuple[bytes, list[int]]:
    """The clean-up and the ``on_exit`` hooks as bytes, also kept in ``directory``, and the descriptors
    they hold (a published port's socket); then the watchdogs go.

    Their watchdogs guarded the worker; from now on the file and whoever runs it (the monitor, or
    the daemon if the monitor dies) do. The descriptors go to the monitor beside the bytes.
    """
    disarms: list[Disarm] = []
    fds: list[int] = []

    class Packer(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, Disarm):  # disarmed below: the file takes over from the watchdog
                disarms.append(obj)
                return "disarmed"
            if isinstance(obj, socket.socket):  # it holds a port: the monitor holds it from now on
                fds.append(obj.fileno())
                return ("socket", len(fds) - 1)
            return None

    out = io.BytesIO()
    try:
        Packer(out, protocol=pickle.HIGHEST_PROTOCOL).dump((stack.steps, spec.hooks("on_exit")))
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise NotData(str(e)) from None
    blob = out.getvalue()
    # whole or not at all, root's alone; no fsync: after a crash of the host there is nothing to clean up
    atomic_write(directory / LEFT, blob, 0o600, durable=False)
    for disarm in disarms:
        disarm()
    return blob, fds
# --8<-- [end:pack]


# --8<-- [start:run]
def run(blob: bytes, status: int, fds: list[int] | None = None) -> None:
    """After PID 1 exited with wait status ``status``: its ``on_exit`` hooks, then the clean-up, last first.

    ``fds`` are the descriptors :func:`pack` gave (None: they died with the monitor); they are all
    closed when it returns. Each step runs even if one before it failed (as an ``ExitStack`` does);
    a failure is logged.
    """
    sockets: list[socket.socket] = []

    class Unpacker(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid == "disarmed":
                return _disarmed
            if fds is None:
                return _Closed()
            sockets.append(socket.socket(fileno=fds[pid[1]]))
            return sockets[-1]

    try:
        steps, on_exit = Unpacker(io.BytesIO(blob)).load()
        for hook in on_exit:
            _guarded(hook, (status,), {})
        for callback, args, kwds in reversed(steps):
            _guarded(callback, args, kwds)
    finally:
        for sock in sockets:
            sock.close()
# --8<-- [end:run]


def run_left(directory: Path) -> bool:
    """Run the clean-up a dead monitor left in ``directory``, if any (True), and remove it."""
    try:
        fd = os.open(directory / LEFT, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    with os.fdopen(fd, "rb") as f:
        blob = f.read(MAX_LEFT + 1)
    try:
        if len(blob) > MAX_LEFT:
            raise ValueError(f"over {MAX_LEFT} bytes")
        run(blob, signal.SIGKILL)  # the monitor is gone: PID 1 died with it (PR_SET_PDEATHSIG)
    except (pickle.UnpicklingError, ValueError, EOFError, AttributeError, ImportError) as e:
        print(f"minidocker: cannot run the clean-up left in {directory / LEFT}: {e}", file=sys.stderr)
    (directory / LEFT).unlink(missing_ok=True)
    return True


class _Closed:
    """A socket that was closed when the monitor holding it died."""

    def close(self) -> None:
        pass


def _disarmed() -> None:
    """A watchdog's ``disarm()`` in a clean-up that was handed over: it was disarmed then."""


def _guarded(callback: Callable[..., Any], args: tuple, kwds: dict) -> None:
    try:
        callback(*args, **kwds)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """``python -m minidocker.daemon.handover DIR``: the daemon's clean-up after a dead monitor."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m minidocker.daemon.handover CONTAINER_DIRECTORY", file=sys.stderr)
        return 2
    run_left(Path(argv[0]))
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
