"""The command line every stage shares: ``python -m minidocker.STAGE [OPTIONS] ROOTFS -- CMD...``.

Each chapter's module is also a runnable engine: the engine *as of that chapter*, with the options of
every earlier chapter. A chapter contributes a :class:`Stage`: the options it adds and how they
configure the container. A later chapter's entry point is the earlier list plus its own stage, so
the engine grows by adding code, never by copying or rewriting the previous stage.

This module also keeps the promise users see most: a user error is one line on stderr and exit
status 125, never a traceback.

Example (``cgroups/stage.py`` building on ``namespaces/stage.py``)::

    STAGES = (*namespaces.STAGES, Stage("cgroups", add_arguments, configure))

    def main(argv=None):
        return _stage.main(argv, prog="python -m minidocker.cgroups", doc=__doc__,
                           stages=STAGES, run=namespaces.run)

Stages hand on what they work out through the spec's typed fields (:mod:`minidocker.core.spec`),
never through each other's options: a stage's ``configure`` reads its own options only. A later
chapter that must change how one earlier stage works swaps it by name (:func:`replace_stage`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from collections import namedtuple
from collections.abc import Callable, Sequence

from minidocker.core.helpformat import help_formatter
from minidocker.core.process import EXIT_ENGINE, EngineError
from minidocker.core.spec import ContainerSpec

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every start of a stage 3 ms
    from typing import Any, NoReturn

__all__ = ["Stage", "configure_spec", "exit_now", "guarded", "main", "parse_command_line", "replace_stage",
           "run_stage"]


class Stage(namedtuple("Stage", "name add_arguments configure")):
    """One chapter's contribution to the engine's command line and to the container it runs.

    ``configure(args, spec, cleanup)`` reads the parsed options, changes the container spec (adds
    hooks, replaces the rootfs, ...) and registers on ``cleanup`` (an ``ExitStack``) whatever must
    be undone when the container is gone, even if starting it fails.
    """

    __slots__ = ()
    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    configure: Callable[[argparse.Namespace, ContainerSpec, contextlib.ExitStack], None]


def replace_stage(stages: Sequence[Stage], name: str, stage: Stage) -> tuple[Stage, ...]:
    """``stages`` with the one called ``name`` replaced by ``stage``, in its place.

    How a later chapter changes one step of an earlier engine without copying the others: the
    daemon's overlay stage keeps a container's files between starts, a build's image stage takes
    the image being built. A name that is not there is a bug, said at once.

    Example::

        STAGES = replace_stage(imagerun.STAGES, "overlay", Stage("overlay", add_arguments, configure))
    """
    if name not in [s.name for s in stages]:
        raise ValueError(f"no stage {name!r} to replace in {[s.name for s in stages]}")
    return tuple(stage if s.name == name else s for s in stages)


def configure_spec(stages: Sequence[Stage], args: argparse.Namespace, cleanup: contextlib.ExitStack,
                   spec: ContainerSpec | None = None) -> ContainerSpec:
    """Let each of ``stages``, in order, configure ``spec`` (a fresh one by default) from ``args``."""
    spec = ContainerSpec() if spec is None else spec
    for stage in stages:
        stage.configure(args, spec, cleanup)
    return spec


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is an :class:`EngineError` (one line, exit 125) as in Docker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", help_formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise EngineError(f"{message} (see '{self.prog} --help')")


def parse_command_line(argv: Sequence[str] | None, prog: str, doc: str | None,
                       stages: Sequence[Stage] = (), rootfs_required: bool = True) -> argparse.Namespace:
    """Parse ``[OPTIONS] ROOTFS -- CMD...``; the command is everything after the first ``--``.

    Without ``--`` the first word that is not an option is ROOTFS and the rest is the command,
    so ``python -m minidocker.chroot ROOTFS sh`` works too.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    summary = (doc or "").strip().splitlines()[0] if doc else None
    parser = _Parser(prog=prog, description=summary,
                     usage=f"{prog} [OPTIONS] {'ROOTFS' if rootfs_required else '[ROOTFS]'} -- CMD [ARG...]")
    for stage in stages:
        stage.add_arguments(parser)
    parser.add_argument("rootfs", nargs=None if rootfs_required else "?", metavar="ROOTFS",
                        help="directory holding the container's root filesystem")
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        args.command = argv[cut + 1:]
    else:
        parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
        args = parser.parse_args(argv)
    if not args.command:
        raise EngineError(f"no command given: {prog} [OPTIONS] ROOTFS -- CMD [ARG...]")
    return args


def guarded(body: Callable[[], int]) -> int:
    """Run ``body``; turn user errors into one line on stderr and the right exit status."""
    try:
        return body()
    except EngineError as e:
        print(f"minidocker: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"minidocker: {e}", file=sys.stderr)
        return EXIT_ENGINE
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None, *, prog: str, doc: str | None, stages: Sequence[Stage],
         run: Callable[[ContainerSpec], int], rootfs_required: bool = True) -> int:
    """Parse the options of all ``stages``, let each configure a fresh spec, run it, clean up."""

    def body() -> int:
        args = parse_command_line(argv, prog, doc, stages, rootfs_required)
        with contextlib.ExitStack() as cleanup:
            return run(configure_spec(stages, args, cleanup))

    return guarded(body)


def exit_now(status: int) -> NoReturn:
    """End a ``python -m minidocker.STAGE`` process with ``status`` once its output is flushed.

    For the ``if __name__ == "__main__":`` line of a stage only, never for a library caller. By
    then :func:`main` has cleaned up everything it made; what the interpreter would still do
    (tear down every module, collect garbage: about 4 ms) serves no one, so ``os._exit`` skips it.
    Unless someone needs the normal exit: an ``atexit`` handler (logging, coverage), a profiler
    (``python -m cProfile``), or output that cannot be flushed (a closed pipe, reported as always).
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(status)
    if atexit._ncallbacks() or sys.getprofile() or sys.gettrace():
        sys.exit(status)
    os._exit(status)


def run_stage(module: str, *args: str, timeout: float = 120, **kwargs: Any) -> Any:
    """Run ``python -m minidocker.MODULE ARGS...`` in a new process and capture its output as text.

    The way tests and notebooks start a stage: exactly what a reader would type, and the stage's
    signal handling and exits stay out of the caller's process (a notebook kernel, pytest).
    """
    import subprocess  # only tests and notebooks use this: keep it off the stages' import path

    return subprocess.run([sys.executable, "-m", f"minidocker.{module}", *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)
