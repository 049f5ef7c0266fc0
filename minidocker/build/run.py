"""Chapter 08: ``RUN``: a container of the image being built, whose changes become its next layer.

``RUN apt-get install -y curl`` is ``docker run`` then ``docker commit``: start a container on the
image as it is so far, let the command change its filesystem, and turn the container's upper
directory into a layer (chapter 04's :func:`~minidocker.overlay.changes.commit`). Nothing here re-implements
a container: the container is made by the very stages every chapter so far built (namespaces,
cgroups, overlayfs, the bridge network, chapter 06's hardening, chapter 07's image config, the ones
chapter 10's daemon will use), with one stage swapped: the image comes from the build, not from
the image store.

The containers run in a *build worker*, a process that imports the engine once and then runs one
step after another, like chapter 10's fork server. A worker process (not a thread of the builder)
because a daemon has threads, and forking a threaded Python process is unsafe; one per build
(not one per step) because importing the engine and pyroute2 costs most of a second.

The builder talks to its worker over a socket pair, one message per step: the step's command line
and, passed with it (SCM_RIGHTS), the write end of a pipe that becomes the container's stdout and
stderr, so the builder streams the output as it comes. The answer: the exit status and the new
layer's diff ID (``None`` when the command changed nothing).

Example::

    with Worker() as worker:
        answer = worker.run({"argv": [...], "tar": "/tmp/layer.tar", "holder": "build-cache:KEY"},
                            on_output=sys.stdout.buffer.write)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["Worker", "main", "step_argv"]

MESSAGE = 1 << 20  # a request or answer, one datagram (a config with a long history fits)
_running: dict[str, int] = {}  # in the worker: the pid of the container now running


def step_argv(state_config: dict[str, Any], diff_ids: list[str], command: list[str], env: dict[str, str],
              container_id: str, network: str = "bridge", extra_hosts: list[str] | tuple = ()) -> list[str]:
    """The engine's command line for one RUN: ``[OPTIONS] IMAGE -- CMD...``, as the daemon makes them.

    The image's own config (Env, WorkingDir, User) is merged by the engine's image-config stage;
    ``--entrypoint ""``: RUN never goes through the image's ENTRYPOINT. ``extra_hosts`` are
    ``docker build --add-host`` lines for the step's ``/etc/hosts`` (chapter 05's ``--add-host``).
    """
    image = json.dumps({"config": state_config, "diff_ids": diff_ids})
    argv = ["--build-image", image, "--hostname", container_id[:12], "--entrypoint", "", "--network", network]
    for host in extra_hosts:
        argv += ["--add-host", host]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, "build-step", "--", *command]


# ---- in the worker -----------------------------------------------------------------------------

def _add_build_image_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--build-image", required=True, help=argparse.SUPPRESS)


# exercise 08.8: Give the engine the build's image
# hint: args.build_image is JSON {config, diff_ids}: spec.image_config = {'config': ...} and
#   spec.layers = the diff IDs, bottom first (chapter 04's overlay stage stacks them).
# --8<-- [start:configure_build_image]
def configure_build_image(args: argparse.Namespace, spec: Any, cleanup: contextlib.ExitStack) -> None:
    """First stage, instead of chapter 07's: the image is the build's current state, not a stored one."""
    image = json.loads(args.build_image)
    spec.image_config = {"config": image["config"]}
    spec.layers = list(image["diff_ids"])  # sha256:... each, bottom first, for the overlay stage
# --8<-- [end:configure_build_image]


# exercise 08.9: Chapter 07's stages, the image's swapped
# hint: _stage.replace_stage(imagerun.STAGES, "image", Stage("build-image", _add_build_image_argument,
#   configure_build_image)).
# --8<-- [start:stages]
def stages() -> tuple:
    """Chapter 07's engine (the runtime of chapters 02 to 06 on an image) with the build's image
    instead of the store's; its overlay is chapter 04's plain one: the container's filesystem goes
    when the step ends, once its changes are committed."""
    from minidocker.core import stage as _stage
    from minidocker.images import run as imagerun

    build_image = _stage.Stage("build-image", _add_build_image_argument, configure_build_image)
    return _stage.replace_stage(imagerun.STAGES, "image", build_image)
# --8<-- [end:stages]


# --8<-- [start:run_step]
def run_step(request: dict[str, Any], output_fd: int) -> dict[str, Any]:
    """Run one RUN container, its stdout and stderr on ``output_fd``; commit its changes if it succeeds."""
    from minidocker.core.process import EngineError
    from minidocker.namespaces import stage as namespaces
    from minidocker.overlay import changes
    from minidocker.overlay.layers import LayerStore
    from minidocker.overlay.stage import ContainerFS

    with contextlib.ExitStack() as cleanup:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):  # the container's output, and the engine's own warnings, go to the builder
                os.dup2(output_fd, fd)
            spec = container_spec(request["id"], request["argv"], cleanup)
            container = namespaces.start(spec)
            _running["pid"] = container.pid
            code = container.wait()
        except EngineError as e:
            return {"exit": e.exit_code, "error": str(e)}
        finally:
            _running.clear()
            sys.stdout.flush(), sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            os.close(output_fd)
        if code != 0:
            return {"exit": code}
        fs = ContainerFS.open(LayerStore(), request["id"])
        try:
            if not changes.diff(fs):
                return {"exit": 0, "diff_id": None}
            committed = changes.commit(fs, fs.store, tar_path=request["tar"], holder=request["holder"])
        except EngineError as e:  # e.g. the command made a device node, which no layer may hold
            return {"exit": 0, "error": f"committing the changes of RUN: {e}", "commit_failed": True}
        return {"exit": 0, "diff_id": committed.diff_id}
# --8<-- [end:run_step]


def container_spec(container_id: str, argv: list[str], cleanup: contextlib.ExitStack) -> Any:
    """Parse ``argv`` with the options of :func:`stages` and let each configure a fresh spec."""
    from minidocker.images import run as imagerun

    return imagerun.container_spec(argv, cleanup, stages=stages(), container_id=container_id,
                                   prog="minidocker build worker")


def serve(sock: socket.socket) -> None:
    """The worker's loop: a request (and an output pipe) in, an answer out, until the builder closes."""
    while True:
        data, fds, _, _ = socket.recv_fds(sock, MESSAGE, 1)
        if not data:
            return
        try:
            answer = run_step(json.loads(data), fds[0])
        except Exception as e:  # a bug must reach the builder as a message, not a hang
            answer = {"exit": 125, "error": f"build worker: {type(e).__name__}: {e}",
                      "trace": traceback.format_exc()}
        try:
            sock.send(json.dumps(answer).encode())
        except OSError:
            return  # the builder is gone


def _stop(signum: int, frame: object) -> None:
    """SIGTERM from the builder (a cancelled build): kill the step's container, or just go."""
    if "pid" in _running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(_running["pid"], signal.SIGKILL)  # its PID 1 would ignore SIGTERM
    else:
        raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    """``python -m minidocker.build.run FD``: serve the builder on the socket ``FD`` (it starts us)."""
    from minidocker.core import syscalls as _syscalls

    argv = sys.argv[1:] if argv is None else argv
    _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive the builder
    signal.signal(signal.SIGTERM, _stop)
    sock = socket.socket(fileno=int(argv[0]))
    os.set_inheritable(sock.fileno(), False)  # containers must not inherit it
    with sock:
        serve(sock)
    return 0


# ---- in the builder ----------------------------------------------------------------------------

class Worker:
    """The builder's side: start the worker on first use, send it steps, stop it at the end."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.sock: socket.socket | None = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "minidocker.build.run", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        self.sock = mine

    # --8<-- [start:worker_run]
    def run(self, request: dict[str, Any], on_output: Callable[[bytes], None]) -> dict[str, Any]:
        """Run one step in the worker; call ``on_output`` with the container's output as it comes."""
        if self.process is None:
            self._start()
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [write_fd])  # type: ignore[arg-type]
        finally:
            os.close(write_fd)  # the worker and the container hold it now: EOF when they are done
        try:
            with open(read_fd, "rb", buffering=0) as output:
                while chunk := output.read(65536):
                    on_output(chunk)
        except BaseException:
            self.cancel()
            raise
        answer = self.sock.recv(MESSAGE)  # type: ignore[union-attr]
        if not answer:
            raise OSError(f"the build worker died (exit status {self.process.wait()})")  # type: ignore[union-attr]
        return json.loads(answer)
    # --8<-- [end:worker_run]

    def cancel(self) -> None:
        """Stop the running step now (its container is killed, its resources released)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """No more steps: the worker sees the socket close, and exits."""
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.process:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


if __name__ == "__main__":
    sys.exit(main())
