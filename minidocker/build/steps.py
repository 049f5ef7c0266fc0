"""Chapter 08: what each Dockerfile instruction does to the image being built.

One function per instruction, each taking the stage being built and returning its next image
(:class:`~minidocker.build.image.ImageState`). Three kinds:

* **metadata** (``ENV``, ``LABEL``, ``CMD``, ``ENTRYPOINT``, ``USER``, ``EXPOSE``, ``VOLUME``,
  ``STOPSIGNAL``, ``SHELL``, ``HEALTHCHECK``, ``ARG``, ``ONBUILD``, ``MAINTAINER``): the config
  changes, no file does; the history records an empty layer;
* **files** (``COPY``, ``ADD``, and ``WORKDIR`` when its directory is new): a layer written
  directly (:mod:`minidocker.build.copy`);
* **commands** (``RUN``): a container, committed (:mod:`minidocker.build.run`).

Every step goes through :meth:`Build.step`, the cache: its key is the parent image's ID and the
instruction as the builder *understood* it, after variable substitution (``ENV V=$X`` with another
``X`` is another step), plus, for COPY and ADD, the checksum of their sources.

The ``created_by`` texts are Docker's classic builder's, so ``docker history`` reads the same:
``/bin/sh -c #(nop)  ENV A=1``, ``/bin/sh -c #(nop) COPY file:3b1e… in /app ``, ``|1 V=2 /bin/sh -c make``.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from minidocker.build import copy as buildcopy
from minidocker.build import shellwords
from minidocker.build.dockerfile import Instruction, parse_duration
from minidocker.build.image import ImageState
from minidocker.core.process import EngineError

__all__ = ["DISPATCH", "BuildError", "StageBuild", "go_quote"]

NOP = "/bin/sh -c #(nop) "
# Docker's predefined ARGs: usable in RUN without an ARG line, left out of the cache key and history.
_PROXIES = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")
PROXY_ARGS = {*_PROXIES, *(name.upper() for name in _PROXIES)}
DEFAULT_SHELL = ["/bin/sh", "-c"]


class BuildError(EngineError):
    """A step failed: the message is Docker's, the exit code the command's (125 otherwise)."""


@dataclass
class StageBuild:
    """One stage being built: its image so far, its ARGs, and what it has set itself."""

    index: int
    name: str | None
    state: ImageState
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs (None: no value)
    cmd_set: bool = False  # a CMD of this Dockerfile: an ENTRYPOINT then keeps it

    def env(self) -> dict[str, str]:
        """What ``$NAME`` means now: the ARGs' values, overridden by the image's ENV."""
        found = {k: v for k, v in self.args.items() if v is not None}
        for item in self.state.run_config.get("Env") or []:
            key, _, value = item.partition("=")
            found[key] = value
        return found


def go_quote(items: list[str]) -> str:
    """A list as Go's ``%q`` prints it (what Docker's history shows): ``["/bin/sh" "-c" "ls"]``."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def _command(stage: StageBuild, step: Instruction) -> list[str]:
    """Exec form as is; shell form through the image's SHELL (default ``/bin/sh -c``)."""
    if step.json:
        return list(step.args)
    return [*(stage.state.run_config.get("Shell") or DEFAULT_SHELL), step.args[0]]


def _expand(build: Any, stage: StageBuild, word: str) -> str:
    try:
        return shellwords.expand(word, stage.env(), build.escape)
    except shellwords.SubstitutionError as e:
        raise build.error_at(build.current, str(e)) from None


def _set(key: str, value: Any):
    return lambda config: config.__setitem__(key, value)


def env_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    pairs = [(_expand(build, stage, k), _expand(build, stage, v)) for k, v in step.pairs]

    def change(config: dict) -> None:
        env = list(config.get("Env") or [])
        for key, value in pairs:
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        config["Env"] = env

    text = NOP + " ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    return build.step(stage, text, lambda: stage.state.with_config(change, text))


def label_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    pairs = [(_expand(build, stage, k), _expand(build, stage, v)) for k, v in step.pairs]
    text = NOP + " LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    return build.step(stage, text, lambda: stage.state.with_config(
        lambda c: c.__setitem__("Labels", {**(c.get("Labels") or {}), **dict(pairs)}), text))


def cmd_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    command = _command(stage, step)
    if step.keyword == "CMD":
        stage.cmd_set = True
        text = NOP + f" CMD {go_quote(command)}"
        return build.step(stage, text, lambda: stage.state.with_config(_set("Cmd", command), text))
    keep_cmd = stage.cmd_set  # an ENTRYPOINT drops the base image's CMD, not this Dockerfile's

    def change(config: dict) -> None:
        config["Entrypoint"] = command
        if not keep_cmd:
            config["Cmd"] = None

    text = NOP + f" ENTRYPOINT {go_quote(command)}"
    return build.step(stage, text, lambda: stage.state.with_config(change, text))


def simple_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    """USER, STOPSIGNAL, SHELL, MAINTAINER, ONBUILD: one value into the config."""
    if step.keyword == "SHELL":
        key, value, shown = "Shell", list(step.args), f"SHELL {go_quote(list(step.args))}"
    elif step.keyword == "ONBUILD":
        triggers = [*(stage.state.run_config.get("OnBuild") or []), step.args[0]]
        key, value, shown = "OnBuild", triggers, f"ONBUILD {step.args[0]}"
    else:
        value = _expand(build, stage, step.args[0])
        key, shown = {"USER": "User", "STOPSIGNAL": "StopSignal", "MAINTAINER": "Author"}[step.keyword], \
            f"{step.keyword} {value}"
        if step.keyword == "STOPSIGNAL":
            from minidocker.images.config import parse_signal

            try:
                parse_signal(value)
            except EngineError as e:
                raise build.error_at(step, str(e)) from None
    text = NOP + " " + shown
    if key == "Author":  # the only one outside "config"
        return build.step(stage, text, lambda: _author(stage.state, value, text))
    return build.step(stage, text, lambda: stage.state.with_config(_set(key, value), text))


def _author(state: ImageState, author: str, text: str) -> ImageState:
    new = state.with_config(lambda c: None, text)
    config = dict(new.config, author=author)
    return ImageState.of(config, new.layers)


def list_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    """EXPOSE and VOLUME: a set of ports or paths, added to the image's."""
    if step.keyword == "EXPOSE":
        ports = []
        for word in step.args:
            for item in shellwords.expand_words(word, stage.env(), build.escape):
                port, _, proto = item.partition("/")
                first, _, last = port.partition("-")
                numbers = first.isdigit() and (not last or last.isdigit())
                if not numbers or proto not in ("", "tcp", "udp", "sctp"):
                    raise build.error_at(step, f"invalid containerPort: {item}")
                for number in range(int(first), int(last or first) + 1):
                    ports.append(f"{number}/{proto or 'tcp'}")
        text = NOP + " EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]"
        key, values = "ExposedPorts", ports
    else:
        values = [_expand(build, stage, w) for w in step.args]
        text = NOP + " VOLUME [" + " ".join(values) + "]"
        key = "Volumes"
    return build.step(stage, text, lambda: stage.state.with_config(
        lambda c: c.__setitem__(key, {**(c.get(key) or {}), **{v: {} for v in values}}), text))


def healthcheck_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    if step.args[0] == "NONE":
        check: dict[str, Any] = {"Test": ["NONE"]}
    else:
        test = ["CMD", *step.args[1:]] if step.json else ["CMD-SHELL", step.args[1]]
        check = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            if step.flag(flag):
                check[key] = parse_duration(step.flag(flag))  # type: ignore[arg-type]
        if step.flag("retries"):
            check["Retries"] = int(step.flag("retries"))  # type: ignore[arg-type]
    text = NOP + f" HEALTHCHECK {go_quote(check['Test'])}"
    return build.step(stage, text, lambda: stage.state.with_config(_set("Healthcheck", check), text))


def arg_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    for word in step.args:
        name, has_default, default = word.partition("=")
        value = _expand(build, stage, default) if has_default else build.meta_args.get(name)
        stage.args[name] = build.build_args.get(name, value)
        build.consumed.add(name)
    text = NOP + " ARG " + " ".join(step.args)
    return build.step(stage, text, lambda: stage.state.with_config(lambda c: None, text))


def workdir_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    path = posixpath.normpath(posixpath.join(stage.state.run_config.get("WorkingDir") or "/",
                                             _expand(build, stage, step.args[0])))
    path = "/" + path.lstrip("/")
    text = NOP + f"WORKDIR {path}"
    plan = buildcopy.make_dirs(build.image_fs(stage.state), path)
    if plan is None:
        return build.step(stage, text, lambda: stage.state.with_config(_set("WorkingDir", path), text))
    return build.layer_step(stage, text + f" # created:{plan.checksum[7:19]}", plan, text,
                            change=_set("WorkingDir", path))


# --8<-- [start:copy_step]
def copy_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    """COPY/ADD: plan the layer (cheap: it reads the sources for their checksum), then the cache."""
    words = [_expand(build, stage, w) for w in step.args]
    sources, dest = words[:-1], words[-1]
    if step.keyword == "ADD" and any("://" in s for s in sources):
        raise build.error_at(step, "ADD from a URL is not supported by minidocker (no network at build "
                                   "time): download it in a RUN step, or COPY a file of the context")
    chown = _expand(build, stage, step.flag("chown")) if step.flag("chown") else None
    chmod = step.flag("chmod")
    if chmod is not None and not (chmod.isdigit() and set(chmod) <= set("01234567") and len(chmod) <= 4):
        raise build.error_at(step, f"invalid --chmod={chmod}: use octal digits, e.g. --chmod=755")
    origin = step.flag("from")
    source_fs = build.source_fs(stage, origin) if origin else build.context_fs
    try:
        plan = buildcopy.plan(source_fs, sources, dest, build.image_fs(stage.state),
                              workdir=stage.state.run_config.get("WorkingDir") or "/", chown=chown,
                              chmod=chmod, context=origin is None, add=step.keyword == "ADD")
    except EngineError as e:
        raise build.error_at(step, str(e)) from None
    flags = "".join(f"--{k}={v} " for k, v in (("from", origin), ("chown", chown), ("chmod", chmod)) if v)
    text = NOP + f"{step.keyword} {flags}{plan.kind}:{plan.checksum[7:]} in {dest} "
    return build.layer_step(stage, text, plan, text)
# --8<-- [end:copy_step]


# exercise 08.10: Run a RUN step: its command, environment and key
# hint: _command (exec form, or SHELL + text); the declared ARGs with a value and not set by ENV, sorted;
#   the key text is '|N K=V ... ' + the command joined; proxy build-args join the environment only.
# --8<-- [start:run_step]
def run_step(build: Any, stage: StageBuild, step: Instruction) -> ImageState:
    """RUN: the declared ARGs are the command's environment (never the image's), and its cache key."""
    command = _command(stage, step)
    env_names = {e.partition("=")[0] for e in stage.state.run_config.get("Env") or []}
    args = {k: v for k, v in sorted(stage.args.items()) if v is not None and k not in env_names}
    prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " " if args else ""
    text = prefix + " ".join(command)
    proxies = {k: v for k, v in build.build_args.items() if k in PROXY_ARGS and k not in env_names}
    build.consumed |= set(proxies)
    return build.run_step(stage, text, command, {**proxies, **args})
# --8<-- [end:run_step]


DISPATCH = {
    "ENV": env_step, "LABEL": label_step, "CMD": cmd_step, "ENTRYPOINT": cmd_step, "USER": simple_step,
    "STOPSIGNAL": simple_step, "SHELL": simple_step, "MAINTAINER": simple_step, "ONBUILD": simple_step,
    "EXPOSE": list_step, "VOLUME": list_step, "HEALTHCHECK": healthcheck_step, "ARG": arg_step,
    "WORKDIR": workdir_step, "COPY": copy_step, "ADD": copy_step, "RUN": run_step,
}
