"""Chapter 10: the runtimes a container may run on: ours, and any a plug-in adds (``docker run --runtime``).

dockerd does not run containers itself: it hands each to a *runtime* (runc by default; ``dockerd
--add-runtime crun=/usr/bin/crun`` adds one, ``docker run --runtime crun`` picks it). minidockerd's
own runtime is the engine of chapters 02-07, run by the container's monitor; it is called
``minidocker``. A later chapter may add runtimes of another *kind* without the daemon naming it:

* daemon side, a :class:`Runtime` in the application's :class:`Runtimes` (``app["runtimes"]``): its
  name, its path for ``GET /info``, the options its monitor needs, and how to signal its containers;
* monitor side, a *launcher* for its kind (:func:`register_launcher`): it is given the container's
  spec, already configured by the stages (rootfs mounted, cgroup made, network ready to plug), and
  returns the started container: an object with ``pid``, ``wait()`` (the exit code) and, for ``docker
  exec``, ``spawn_exec(argv, env, cwd, user, tty) -> pid``.

Example::

    runtimes = Runtimes()                              # {"minidocker": ours}, the default
    runtimes.add(Runtime("crun", "/usr/bin/crun", kind="oci"))
    runtimes.find("crun").start_options()             # sent to the monitor with "start"
    runtimes.find("kata")                              # InvalidArgument: unknown or invalid runtime name
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minidocker.core import errors

__all__ = ["ENGINE", "LAUNCHERS", "Runtime", "Runtimes", "register_launcher"]

ENGINE = "minidocker"  # our own runtime: the engine of the earlier chapters, run by the monitor

# kind -> launcher(options, spec, config) -> started container; the monitor picks one by the kind
LAUNCHERS: dict[str, Callable[[dict, Any, dict], Any]] = {}


def register_launcher(kind: str, launcher: Callable[[dict, Any, dict], Any]) -> None:
    """Let monitors start containers of runtimes of ``kind`` with ``launcher`` (a plug-in, on import)."""
    LAUNCHERS[kind] = launcher


@dataclass
class Runtime:
    """One runtime the daemon knows: its name, what ``docker info`` shows, how its monitor starts it."""

    name: str
    path: str
    args: list[str] = field(default_factory=list)
    kind: str = "engine"  # "engine": ours, in the monitor; else a plug-in's launcher

    def describe(self) -> dict:
        """``GET /info``'s entry: ``{"path": ..., "runtimeArgs": [...]}`` as dockerd's."""
        return {"path": self.path, **({"runtimeArgs": self.args} if self.args else {})}

    def start_options(self) -> dict:
        """What the container's monitor is told with ``start``: enough to find its launcher."""
        return {"name": self.name, "kind": self.kind, "path": self.path, "args": self.args}

    def signal(self, container_id: str, pid: int, signum: int) -> None:
        """Send ``signum`` to the container's PID 1 (``pid`` on the host); a runtime may do it its way."""
        os.kill(pid, signum)


# --8<-- [start:Runtimes]
class Runtimes:
    """The daemon's runtimes by name, and the default one (``dockerd --default-runtime``)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Runtime] = {ENGINE: Runtime(ENGINE, "python -m minidocker.daemon.monitor")}
        self.default = ENGINE

    def add(self, runtime: Runtime) -> None:
        self.by_name[runtime.name] = runtime

    def find(self, name: str | None) -> Runtime:
        """The runtime called ``name`` (the default for none); Docker's 400 for one it does not know."""
        runtime = self.by_name.get(name or self.default)
        if runtime is None:
            raise errors.InvalidArgument(f"unknown or invalid runtime name: {name}")
        return runtime
# --8<-- [end:Runtimes]
