"""Chapter 07: ``docker run IMAGE [CMD...]``: the engine of every earlier chapter, on an image.

Two stages wrap the earlier ones. The first, before them all, finds the image (pulling it if
needed) and hands its layers to chapter 04's overlay stage as if they had been given with
``--layer``; the last, after them all, turns the image's config into the container's command,
environment, working directory and user, merged with the options exactly as Docker merges them
(``imageconfig.merge``). Everything in between (namespaces, cgroups, the overlay filesystem,
the network) is the earlier chapters' own code, untouched.

Run it (as root)::

    python -m minidocker.images run --hostname box -e GREETING=hi busybox sh -c 'echo $GREETING'
    python -m minidocker.images run --entrypoint /bin/ls -u nobody -w /tmp busybox -la

Exit status: the command's, as every stage (125 engine error, 126 not executable, 127 not found).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from minidocker.cgroups import stage as cgroups
from minidocker.core import stage as _stage
from minidocker.core.process import EngineError
from minidocker.images import config as imageconfig
from minidocker.images.cli import ensure_image
from minidocker.images.store import ImageStore, marked_in_use
from minidocker.namespaces import stage as namespaces
from minidocker.network import stage as network
from minidocker.overlay import stage as overlay

__all__ = ["STAGES", "main", "stages"]

PROG = "python -m minidocker.images run"


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 07 (docker run's names)."""
    group = parser.add_argument_group("images (chapter 07)")
    group.add_argument("--entrypoint", default=None, metavar="CMD",
                       help="overwrite the image's ENTRYPOINT ('' for none: then the image's CMD goes too)")
    group.add_argument("-u", "--user", default=None, metavar="USER[:GROUP]",
                       help="user name or uid (and group), looked up in the image's /etc/passwd, /etc/group")
    group.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                       help="pull the image before running: missing (default), always or never")
    group.add_argument("--platform", default=None, metavar="OS/ARCH",
                       help="which platform of a multi-platform image")


# --8<-- [start:configure_image]
def configure_image(args: argparse.Namespace, spec: namespaces.ContainerSpec,
                    cleanup: contextlib.ExitStack) -> None:
    """First stage: find (or pull) the image, and give its layers to chapter 04's overlay stage."""
    image = ensure_image(args.image, store=ImageStore(), policy=args.pull, platform=args.platform)
    args.image_config = image.config
    args.rootfs = None
    args.layer = list(image.diff_ids)  # as if typed: --layer sha256:... for each, bottom first
    cleanup.enter_context(marked_in_use(image.id, spec.id))
# --8<-- [end:configure_image]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """No new options: ``-w`` of chapter 02 now defaults to the image's WorkingDir."""
    parser.set_defaults(workdir=None)


# --8<-- [start:configure_config]
def configure_config(args: argparse.Namespace, spec: namespaces.ContainerSpec,
                     cleanup: contextlib.ExitStack) -> None:
    """Last stage: the image's config, merged with the options, becomes the command and its world."""
    user_env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if sep or key in os.environ:
            user_env[key] = value if sep else os.environ[key]
    options = imageconfig.RunOptions(
        cmd=list(args.command) or None,
        entrypoint=None if args.entrypoint is None else [args.entrypoint],
        env=user_env, workdir=args.workdir, user=args.user,
        hostname=spec.hostname or spec.id[:12], tty=sys.stdout.isatty())
    run = imageconfig.merge(args.image_config, options)
    if not run.argv:
        raise EngineError(f"no command specified: the image {args.image} has no Cmd or Entrypoint")
    spec.argv, spec.env, spec.cwd = run.argv, run.env, run.workdir
    spec.before_exec.insert(0, imageconfig.user_switcher(run))  # before any privilege is dropped
# --8<-- [end:configure_config]


def stages() -> tuple[_stage.Stage, ...]:
    """Every earlier chapter's stages once each, in chapter order, wrapped by ours."""
    earlier: dict[str, _stage.Stage] = {}
    for module in (namespaces, cgroups, overlay, network):
        for stage in module.STAGES:
            earlier.setdefault(stage.name, stage)
    return (_stage.Stage("image", add_image_arguments, configure_image), *earlier.values(),
            _stage.Stage("image-config", add_config_arguments, configure_config))


STAGES = stages()


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """``[OPTIONS] IMAGE [CMD [ARG...]]``, as ``docker run`` (no ``--`` needed; one is allowed)."""
    parser = _stage._Parser(prog=PROG, usage=f"{PROG} [OPTIONS] IMAGE [CMD [ARG...]]",
                            description="Run a command in a new container, on an image.")
    for stage in STAGES:
        stage.add_arguments(parser)
    parser.add_argument("image", metavar="IMAGE", help="image name, ID or NAME@DIGEST")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    args = parser.parse_args(list(argv))
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.images run [OPTIONS] IMAGE [CMD [ARG...]]``."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        args = parse(argv)
        with contextlib.ExitStack() as cleanup:
            spec = namespaces.ContainerSpec()
            for stage in STAGES:
                stage.configure(args, spec, cleanup)
            return namespaces.run(spec)

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
