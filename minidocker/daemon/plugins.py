"""Chapter 10: plug-ins: how later chapters join the daemon without the daemon naming them.

The book's rule is that chapter N runs with chapters 0..N alone, so the daemon (chapter 10) may not
import chapter 12's user-defined networks. Instead, a later chapter ships a module
``minidocker/<its package>/plugin.py``; the daemon, its fork server and its monitors *discover*
those modules (:func:`discover`: every package of ``minidocker`` that has one) and import them.

A plug-in module may define:

* ``install(app, hooks)``: called once by the daemon, before the built-in routes are added (so
  its routes win over a built-in one with the same method and path), with the :class:`Hooks`
  it may add callbacks to;
* ``add_daemon_arguments(parser)`` and ``read_daemon_arguments(args, config)``: options of its own
  on ``minidockerd``'s command line (``--add-runtime NAME=PATH``), read into the daemon's config;
* nothing else is needed for the engine side: importing the module is its chance to register
  itself with an earlier chapter's registry (chapter 05's ``register_mode`` for ``--network``,
  :mod:`minidocker.daemon.runtimes`' launchers for ``--runtime``).

Example::

    for module in discover():          # [<module 'minidocker.networks.plugin'>]
        ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from minidocker.core import plugins

__all__ = ["Hooks", "add_daemon_arguments", "discover", "install", "read_daemon_arguments"]

log = logging.getLogger("minidockerd")


@dataclass
class Hooks:
    """Callbacks of the plug-ins, called by the daemon at points of a container's life.

    * ``container_create(app, config)``: before ``config.json`` is written; may check and change it;
    * ``container_start(app, container)``: async, before its monitor is started; may refuse the
      start by raising one of ``core.errors``' errors;
    * ``container_started(app, container)``, ``container_exited(app, container)``,
      ``container_removed(app, container)``: async;
    * ``container_inspect(app, container, info)``: may fill in ``docker inspect``'s answer;
    * ``daemon_restore(app)`` (async, after the containers are loaded), ``daemon_close(app)`` (async);
    * ``image_pull(request, ref)``: the checks (chapter 07's ``images/checks.py``) a pull through
      this request must pass, a list; each sees the digest before anything is stored.

    And one way back: ``hooks.emit(kind, action, actor_id, attributes)`` records an event for
    ``GET /events`` (:mod:`minidocker.daemon.events`), e.g. ``emit("network", "create", nid, {"name":
    "app", "type": "bridge"})``; the routes of a plug-in reach it as ``request.app["hooks"].emit``.
    """

    container_create: list[Any] = field(default_factory=list)
    container_start: list[Any] = field(default_factory=list)
    container_started: list[Any] = field(default_factory=list)
    container_exited: list[Any] = field(default_factory=list)
    container_removed: list[Any] = field(default_factory=list)
    container_inspect: list[Any] = field(default_factory=list)
    daemon_restore: list[Any] = field(default_factory=list)
    daemon_close: list[Any] = field(default_factory=list)
    image_pull: list[Any] = field(default_factory=list)
    emit: Any = None  # (kind, action, actor_id, attributes=None) -> None, set by install()


def discover() -> list[ModuleType]:
    """Import (once) every ``minidocker.<package>.plugin`` there is, in name order (``core.plugins``)."""
    return plugins.discover("plugin", skip=("daemon",))


# --8<-- [start:install]
def install(app: Any) -> Hooks:
    """Give each plug-in the application; return the hooks they registered (also ``app["hooks"]``)."""
    from minidocker.daemon import events

    hooks = Hooks()
    hooks.emit = lambda kind, action, actor_id, attributes=None: events.emit(app, kind, action, actor_id,
                                                                            attributes)
    app["hooks"] = hooks
    for module in discover():
        if hasattr(module, "install"):
            module.install(app, hooks)
    return hooks
# --8<-- [end:install]


def add_daemon_arguments(parser: Any) -> None:
    """Let each plug-in add its options to ``minidockerd``'s parser (an ``argparse`` parser)."""
    for module in discover():
        if hasattr(module, "add_daemon_arguments"):
            module.add_daemon_arguments(parser)


def read_daemon_arguments(args: Any, config: dict) -> None:
    """Let each plug-in read its options (parsed ``args``) into the daemon's ``config``."""
    for module in discover():
        if hasattr(module, "read_daemon_arguments"):
            module.read_daemon_arguments(args, config)
