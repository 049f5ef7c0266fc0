"""The engine as assembled from all the chapters: what the daemon's monitors run a container with.

Each chapter's module is a stage, and the last stage's command line is the whole engine
(``python -m minidocker.images run [OPTIONS] IMAGE CMD...``: the runtime of chapters 02 to 06 on an
image), with one stage swapped: the overlay keeps a container's files from one start to the next.
The daemon does not reimplement any of it: a container's monitor turns Docker's container config
into that command line (:func:`stage_argv`), parses it with the stages' own parser and lets every
stage configure the container (:func:`container_spec`), exactly as if you had typed it. As
dockerd -> containerd -> shim -> runc, so: daemon -> monitor -> the stages.

A later chapter joins the engine by adding its stage to :data:`STAGES` (one line) and, if it has
options the Docker API can set, one line in :func:`stage_argv`.

Example::

    argv = stage_argv({"Id": cid, "Image": "busybox", "Path": "true", "Args": [], "Config": {},
                       "HostConfig": {}})
    with contextlib.ExitStack() as cleanup:
        spec = container_spec(cid, argv, cleanup)
        namespaces.run(spec)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable
from typing import Any

from minidocker.core import stage as _stage
from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec, IdMap
from minidocker.images import run as imagerun
from minidocker.namespaces import stage as namespaces
from minidocker.overlay import stage as overlay
from minidocker.security import stage as security

__all__ = ["PROG", "STAGES", "container_spec", "exec_final_hooks", "exec_hooks", "images", "stage_argv",
           "start"]


def add_overlay_arguments(parser: argparse.ArgumentParser) -> None:
    """Chapter 04's options, with ``--keep`` on: a container's files outlive each run."""
    overlay.add_arguments(parser)
    parser.set_defaults(keep=True)


# --8<-- [start:persistent_overlay]
def persistent_overlay(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Chapter 04's overlay stage, for a daemon: a container keeps its files from one start to the
    next (``docker stop``, ``docker start``) until ``docker rm`` deletes them."""
    try:
        fs = overlay.ContainerFS.open(overlay.LayerStore(), spec.id)
    except EngineError:  # the first start: chapter 04 makes it, and keeps it (--keep is on here)
        overlay.configure(args, spec, cleanup)
        return
    spec.rootfs = str(fs.mount())
    cleanup.callback(fs.unmount)
# --8<-- [end:persistent_overlay]


# --8<-- [start:stages]
# Chapter 07's engine (the runtime of chapters 02 to 06 on an image), its overlay stage persistent.
STAGES = _stage.replace_stage(imagerun.STAGES, "overlay",
                              _stage.Stage("overlay", add_overlay_arguments, persistent_overlay))
# --8<-- [end:stages]

PROG = "minidockerd's engine"
start = namespaces.start

# What every ``docker exec``'d process gets too, given the container's record: chapter 06's
# capabilities, seccomp filter and limits, as PID 1 has them.
exec_hooks: list[Callable[[dict], list[Callable[[], None]]]] = [security.exec_hooks]
# ... and after its switch to the exec's user: the sets that user keeps.
exec_final_hooks: list[Callable[[dict], list[Callable[[], None]]]] = [security.exec_final_hooks]


def known_options() -> frozenset[str]:
    """Every option string the assembled stages accept (``--hostname``, ``--memory``, ...)."""
    return _options_of(STAGES)


@functools.lru_cache(maxsize=4)
def _options_of(stages: tuple[_stage.Stage, ...]) -> frozenset[str]:
    parser = argparse.ArgumentParser(add_help=False)
    for stage in stages:
        stage.add_arguments(parser)
    return frozenset(option for action in parser._actions for option in action.option_strings)


# exercise 10.3: The container's config as the engine's command line
# hint: --hostname (or the id's 12 first characters) --pull never --entrypoint ''; --init, --userns (the
#   default IdMap only), -e for each KEY=VALUE, -w, -u; --memory, --cpus (NanoCpus / 1e9), --pids-limit,
#   --network when set (an option the stages lack: EngineError); -p per port binding, -P's exposed ports;
#   security.docker_argv(host); then IMAGE -- PATH ARGS...
# --8<-- [start:stage_argv]
# --8<-- [start:stage_argv_part1]
def stage_argv(config: dict) -> list[str]:
    # --8<-- [end:stage_argv_part1]
    """Docker's container config as the latest stage's command line: ``[OPTIONS] IMAGE CMD...``.

    The daemon has already merged the image's config into the container's (``docker inspect``
    shows the result), so the command goes with ``--entrypoint ""``: the image's is not added twice.
    """
    # --8<-- [start:stage_argv_part2]
    cfg, host = config["Config"], config["HostConfig"]
    known = known_options()
    argv = ["--hostname", cfg.get("Hostname") or config["Id"][:12], "--pull", "never", "--entrypoint", ""]
    # --8<-- [end:stage_argv_part2]
    if host.get("Init"):
        argv.append("--init")
    if config.get("IdMap"):  # the daemon's --userns-remap (see api_containers.user_namespace)
        if tuple(config["IdMap"]) != tuple(IdMap()):
            raise EngineError(f"id map {config['IdMap']} not supported: the engine's --userns maps 0 to "
                              f"{IdMap().outside}")
        argv.append("--userns")
    for item in [*(config.get("LinkEnv") or []), *(cfg.get("Env") or [])]:  # a link's, then the container's
        if "=" in item:
            argv += ["-e", item]
    for option, value in (("-w", cfg.get("WorkingDir")), ("-u", cfg.get("User"))):
        if value:
            argv += [option, value]
    # --8<-- [start:stage_argv_part3]
    mode = "none" if cfg.get("NetworkDisabled") else host.get("NetworkMode") or "default"
    cpus = (host.get("NanoCpus") or 0) / 1e9 or (host.get("CpuQuota") or 0) / (
        host.get("CpuPeriod") or 100_000)  # docker run --cpu-quota: CPUs' worth too
    wanted = {  # option -> value, for the options of later chapters
        "--memory": host.get("Memory") or None,
        "--memory-swap": host.get("MemorySwap") or None,
        "--cpus": cpus and f"{cpus:g}",
        "--cpu-shares": host.get("CpuShares") or None,
        "--cpuset-cpus": host.get("CpusetCpus") or None,
        "--pids-limit": host.get("PidsLimit") if (host.get("PidsLimit") or 0) > 0 else None,
        "--network": None if mode == "default" else mode,
        "--mac-address": cfg.get("MacAddress") or None,
    }
    repeated = {"--add-host": [*(host.get("ExtraHosts") or []), *(config.get("LinkHosts") or [])],
                "--dns": host.get("Dns"),
                "--dns-search": host.get("DnsSearch"), "--dns-option": host.get("DnsOptions"),
                "--group-add": host.get("GroupAdd")}
    for option, values in repeated.items():
        wanted.update({(option, i): v for i, v in enumerate(values or [])})
    for key, value in wanted.items():
        option = key[0] if isinstance(key, tuple) else key
        if value is None or value == 0:
            continue
        if option not in known:
            raise EngineError(f"{option} is not supported by this engine: its chapter's stage is missing")
        argv += [f"{option}={value}"] if str(value).startswith("-") else [option, str(value)]
    # --8<-- [end:stage_argv_part3]
    bound = host.get("PortBindings") or {}
    for port, bindings in bound.items():
        for b in bindings or [{}]:
            where = ":".join(x for x in (b.get("HostIp"), b.get("HostPort") or "") if x is not None)
            argv += ["-p", f"{where}:{port}" if b.get("HostIp") or b.get("HostPort") else port]
    # --8<-- [start:stage_argv_part4]
    if host.get("PublishAllPorts") and mode in ("default", "bridge"):  # -P: the rest on free host ports
        for port in sorted(set(cfg.get("ExposedPorts") or {}) - set(bound)):
            argv += ["-p", port]
    argv += security.docker_argv(host)
    return [*argv, config["Image"], "--", config["Path"], *config["Args"]]
# --8<-- [end:stage_argv_part4]
# --8<-- [end:stage_argv]


# --8<-- [start:container_spec]
def container_spec(container_id: str, argv: list[str], cleanup: contextlib.ExitStack) -> ContainerSpec:
    """Parse ``argv`` with the stages' own parser and let each stage configure a fresh spec.

    The hooks run in the order their stages declared: the process is restricted (chapter 06), then
    becomes the image's user (chapter 07), last, as in runc.
    """
    return imagerun.container_spec(argv, cleanup, stages=STAGES, container_id=container_id, prog=PROG)
# --8<-- [end:container_spec]


# --8<-- [start:images]
def images(in_use: Callable[[str], list[str]] | None = None) -> Any:
    """The daemon's image store: chapter 07's, served by :class:`minidocker.daemon.images.ImageService`."""
    from minidocker.daemon.images import ImageService

    return ImageService(in_use)
# --8<-- [end:images]
