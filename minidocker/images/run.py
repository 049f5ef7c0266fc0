"""Chapter 07: ``docker run IMAGE [CMD...]``: the engine of every earlier chapter, on an image.

Two stages wrap the runtime of chapters 02 to 06. The first, before them all, finds the image
(pulling it if needed) and puts its layers in the spec (``spec.layers``), where chapter 04's overlay
stage stacks them as it does ``--layer``; the last, after them all, turns the image's config into
the container's command, environment, working directory and user, merged with what the user asked
for exactly as Docker merges them (``imageconfig.merge``). Everything in between (namespaces,
cgroups, the overlay filesystem, the network, the hardening) is the earlier chapters' own code,
untouched.

Run it (as root)::

    python -m minidocker.images run --hostname box -e GREETING=hi busybox sh -c 'echo $GREETING'
    python -m minidocker.images run --entrypoint /bin/ls -u nobody -w /tmp busybox -la

Exit status: the command's, as every stage (125 engine error, 126 not executable, 127 not found).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Sequence

from minidocker.core import stage as _stage
from minidocker.core.process import EngineError
from minidocker.core.spec import ORDER_SWITCH_USER, ContainerSpec
from minidocker.images import config as imageconfig
from minidocker.images.store import ImageStore, mark_in_use, unmark_in_use
from minidocker.namespaces import stage as namespaces
from minidocker.security import stage as security

__all__ = ["STAGES", "container_spec", "main", "parse"]

PROG = "python -m minidocker.images run"


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 07's image stage (docker run's names)."""
    group = parser.add_argument_group("images (chapter 07)")
    group.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                       help="pull the image before running: missing (default), always or never")
    group.add_argument("--platform", default=None, metavar="OS/ARCH",
                       help="which platform of a multi-platform image")


# --8<-- [start:configure_image]
def configure_image(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """First stage: find (or pull) the image; its layers go to chapter 04's overlay stage, its config
    to the last stage, both through the spec."""
    from minidocker.images.pull import ensure_image  # a registry client: only when it may pull

    image = ensure_image(args.image, store=ImageStore(), policy=args.pull, platform=args.platform)
    spec.image_config = image.config
    spec.layers = list(image.diff_ids)  # bottom first: the overlay stage stacks them as --layer
    mark_in_use(image.id, spec.id)
    cleanup.callback(unmark_in_use, spec.id)
# --8<-- [end:configure_image]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 07's image-config stage; ``-w`` of chapter 02 defaults to the image's."""
    group = parser.add_argument_group("image config (chapter 07)")
    group.add_argument("--entrypoint", default=None, metavar="CMD",
                       help="overwrite the image's ENTRYPOINT ('' for none: then the image's CMD goes too)")
    group.add_argument("-u", "--user", default=None, metavar="USER[:GROUP]",
                       help="user name or uid (and group), looked up in the image's /etc/passwd, /etc/group")
    group.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                       help="a supplementary group (a name in the image's /etc/group, or a number)")


# --8<-- [start:configure_config]
def configure_config(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Last stage: the image's config, merged with what the user asked, becomes the command and its world.

    What the user asked is in the spec already (the command, ``-e``, ``-w``, the hostname); the
    switch to the image's user is the last hook before exec, once chapter 06 has restricted the
    process (which needs root), as runc does.
    """
    options = imageconfig.RunOptions(
        cmd=list(spec.argv) or None,
        entrypoint=None if args.entrypoint is None else [args.entrypoint],
        env=spec.user_env, workdir=spec.cwd or None, user=args.user,
        hostname=spec.hostname or spec.id[:12], tty=sys.stdout.isatty())
    run = imageconfig.merge(spec.image_config or {}, options)
    run.group_add = list(args.group_add)
    if not run.argv:
        raise EngineError(f"no command specified: the image {args.image} has no Cmd or Entrypoint")
    spec.argv, spec.env, spec.cwd = run.argv, run.env, run.workdir
    spec.add_hook("before_exec", imageconfig.user_switcher(run), order=ORDER_SWITCH_USER)
# --8<-- [end:configure_config]


# The runtime complete as of chapter 06, wrapped by the image's two stages.
STAGES = (_stage.Stage("image", add_image_arguments, configure_image), *security.STAGES,
          _stage.Stage("image-config", add_config_arguments, configure_config))


@functools.lru_cache(maxsize=8)
def _parser(stages: tuple[_stage.Stage, ...], prog: str) -> argparse.ArgumentParser:
    """The parser of ``stages``, made once per process (a daemon's fork server makes the engine's)."""
    parser = _stage._Parser(prog=prog, usage=f"{prog} [OPTIONS] IMAGE [CMD [ARG...]]",
                            description="Run a command in a new container, on an image.")
    for stage in stages:
        stage.add_arguments(parser)
    parser.add_argument("image", metavar="IMAGE", help="image name, ID or NAME@DIGEST")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    parser.set_defaults(rootfs=None)  # no ROOTFS: the image's layers are the root
    return parser


def parse(argv: Sequence[str], *, stages: Sequence[_stage.Stage] = STAGES,
          prog: str = PROG) -> argparse.Namespace:
    """``[OPTIONS] IMAGE [CMD [ARG...]]``, as ``docker run`` (no ``--`` needed; one is allowed)."""
    args = _parser(tuple(stages), prog).parse_args(list(argv))
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    return args


def container_spec(argv: Sequence[str], cleanup: contextlib.ExitStack, *,
                   stages: Sequence[_stage.Stage] = STAGES, container_id: str | None = None,
                   prog: str = PROG) -> ContainerSpec:
    """Parse ``argv`` with the options of ``stages`` and let each configure a fresh spec, as typed."""
    return _stage.configure_spec(stages, parse(argv, stages=stages, prog=prog), cleanup,
                                 ContainerSpec(id=container_id))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.images run [OPTIONS] IMAGE [CMD [ARG...]]``."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        with contextlib.ExitStack() as cleanup:
            return namespaces.run(container_spec(argv, cleanup))

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
