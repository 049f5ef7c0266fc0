"""Chapter 10: the Dockerfile lines of ``docker commit --change`` applied to the new image's config.

``docker commit -c 'EXPOSE 8080' -c 'CMD ["httpd"]' web mine`` sends each line in a ``changes``
query parameter; dockerd parses them as Dockerfile instructions, but only those that change the
config (``CMD``, ``ENTRYPOINT``, ``ENV``, ``EXPOSE``, ``LABEL``, ``ONBUILD``, ``STOPSIGNAL``, ``USER``,
``VOLUME``, ``WORKDIR``). The parsing is chapter 08's (:func:`minidocker.build.dockerfile.instruction`).

Example::

    >>> apply({"Cmd": ["sh"]}, ["EXPOSE 8080", "ENV A=1", 'CMD ["httpd", "-f"]'])
    {'Cmd': ['httpd', '-f'], 'ExposedPorts': {'8080/tcp': {}}, 'Env': ['A=1']}
"""

from __future__ import annotations

import shlex
from typing import Any

from minidocker.core import errors

__all__ = ["ALLOWED", "apply"]

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME",
           "WORKDIR")


def _unquote(value: str) -> str:
    try:
        words = shlex.split(value)
    except ValueError:
        return value
    return " ".join(words)


def apply(config: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """``config`` with each ``--change`` line applied, in order; InvalidArgument for a bad line."""
    from minidocker.build.dockerfile import DockerfileError, instruction

    config = dict(config)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            step = instruction(number, line, filename="--change")
        except DockerfileError as e:
            raise errors.InvalidArgument(str(e)) from None
        if step.keyword not in ALLOWED:
            raise errors.InvalidArgument(f"{step.keyword.lower()} is not a valid change command")
        args = list(step.args)
        if step.keyword in ("CMD", "ENTRYPOINT"):
            config[step.keyword.capitalize() if step.keyword == "CMD" else "Entrypoint"] = (
                args if step.json else ["/bin/sh", "-c", args[0]])
        elif step.keyword in ("ENV", "LABEL"):
            if step.keyword == "ENV":
                env = dict(e.partition("=")[::2] for e in config.get("Env") or [])
                env.update((k, _unquote(v)) for k, v in step.pairs)
                config["Env"] = [f"{k}={v}" for k, v in env.items()]
            else:
                config["Labels"] = {**(config.get("Labels") or {}),
                                    **{_unquote(k): _unquote(v) for k, v in step.pairs}}
        elif step.keyword == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            ports.update({(w if "/" in w else f"{w}/tcp").lower(): {} for w in args})
            config["ExposedPorts"] = ports
        elif step.keyword == "VOLUME":
            config["Volumes"] = {**(config.get("Volumes") or {}), **{w: {} for w in args}}
        elif step.keyword == "ONBUILD":
            config["OnBuild"] = [*(config.get("OnBuild") or []), line.strip().split(None, 1)[1]]
        else:
            key = {"STOPSIGNAL": "StopSignal", "USER": "User", "WORKDIR": "WorkingDir"}[step.keyword]
            config[key] = _unquote(args[0]) if args else ""
    return config
