"""The engine as assembled from all the chapters: what the daemon's monitors run a container with.

Each chapter's module is a stage, and the last stage's command line is the whole engine
(``python -m minidocker.namespaces [OPTIONS] ROOTFS -- CMD``). The daemon does not reimplement any
of it: a container's monitor turns Docker's container config into that command line
(:func:`stage_argv`), parses it with the stages' own parser and lets every stage configure the
container (:func:`container_spec`), exactly as if you had typed it. As dockerd -> containerd ->
shim -> runc, so: daemon -> monitor -> the stages.

A later chapter joins the engine by changing :data:`STAGES` (one line) and, if it has options the
Docker API can set, one line in :func:`stage_argv`.

Example::

    argv = stage_argv({"Id": cid, "Config": {"Cmd": ["true"]}, "HostConfig": {}}, "/path/rootfs")
    with contextlib.ExitStack() as cleanup:
        spec = container_spec(cid, argv, cleanup)
        namespaces.run(spec)
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any

from minidocker import _stage, namespaces
from minidocker._process import EngineError

__all__ = ["PROG", "STAGES", "container_spec", "exec_hooks", "stage_argv", "start"]

# The latest stage of every chapter that has landed, in order; and the module whose entry point
# they form.
STAGES: tuple[_stage.Stage, ...] = namespaces.STAGES
PROG = "python -m minidocker.namespaces"
new_spec: Callable[[], Any] = namespaces.ContainerSpec
start = namespaces.start

# Hooks that a later chapter (hardening) wants in every ``docker exec``'d process too, given the
# container's config: e.g. the same capabilities and seccomp filter as PID 1.
exec_hooks: list[Callable[[dict], list[Callable[[], None]]]] = []


def known_options() -> set[str]:
    """Every option string the assembled stages accept (``--hostname``, ``--memory``, ...)."""
    parser = argparse.ArgumentParser(add_help=False)
    for stage in STAGES:
        stage.add_arguments(parser)
    return {option for action in parser._actions for option in action.option_strings}


# --8<-- [start:stage_argv]
def stage_argv(config: dict, rootfs: str) -> list[str]:
    """Docker's container config (``Config`` + ``HostConfig``) as the latest stage's command line."""
    cfg, host = config["Config"], config["HostConfig"]
    known = known_options()
    argv = ["--hostname", cfg.get("Hostname") or config["Id"][:12]]
    if host.get("Init"):
        argv.append("--init")
    for item in cfg.get("Env") or []:
        if "=" in item:
            argv += ["-e", item]
    if cfg.get("WorkingDir"):
        argv += ["-w", cfg["WorkingDir"]]
    wanted = {  # option -> value, for the options of later chapters
        "--memory": host.get("Memory") or None,
        "--cpus": host.get("NanoCpus") and f"{host['NanoCpus'] / 1e9:g}",
        "--pids-limit": host.get("PidsLimit") if (host.get("PidsLimit") or 0) > 0 else None,
    }
    for option, value in wanted.items():
        if value is None or value == 0:
            continue
        if option not in known:
            raise EngineError(f"{option} is not supported by this engine: its chapter's stage is missing")
        argv += [option, str(value)]
    return [*argv, rootfs, "--", config["Path"], *config["Args"]]
# --8<-- [end:stage_argv]


# --8<-- [start:container_spec]
def container_spec(container_id: str, argv: list[str], cleanup: contextlib.ExitStack) -> Any:
    """Parse ``argv`` with the stages' own parser and let each stage configure a fresh spec."""
    args = _stage.parse_command_line(argv, PROG, None, STAGES)
    spec = new_spec()
    spec.id = container_id
    for stage in STAGES:
        stage.configure(args, spec, cleanup)
    return spec
# --8<-- [end:container_spec]


# ---- images and container filesystems -------------------------------------------------------
# --8<-- [start:images]
def images() -> Any:
    """The image store the daemon uses (``find``, ``list_images``, ``import_tar``, ``tag``, ``remove``,
    ``create_rootfs``, ``release_rootfs``, ``driver``).

    Until chapter 06's image store and chapter 04's overlayfs land, images are plain directories
    (``docker import``) and a container gets a copy of its image's directory.
    """
    from minidocker import _dirimages

    return _dirimages.DirImages()
# --8<-- [end:images]
