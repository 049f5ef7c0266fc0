"""Chapter 12's plug-in: what the daemon (chapter 10) and the engine (chapter 05) discover here.

Importing this module registers the ``--network NAME`` mode with chapter 05's network stage (the
monitors and the fork server import it: ``daemon/plugins.py``). :func:`install` gives the daemon
our routes (``routes.py``: they come before the built-in ones, so create, rm, connect... are ours)
and the hooks of a container's life: check its networks at create, serve DNS while it runs on one
(through the sockets its engine bound before it ran and handed over on ``dns.sock``, else fresh
ones), and at daemon start re-create bridges and rules and re-attach DNS to the live containers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from minidocker.networks import stage  # noqa: F401  (registers the network mode)

__all__ = ["install"]

log = logging.getLogger("minidockerd")


def install(app: Any, hooks: Any) -> None:
    """Add our routes (with and without ``/vX.YY``) and our hooks to the daemon."""
    from minidocker.networks import routes

    for route in routes.routes:
        for prefix in ("", "/{version:v[0-9]+[.][0-9]+}"):
            app.router.add_route(route.method, prefix + route.path, route.handler)
    hooks.container_create.append(routes.container_create)
    hooks.container_start.append(routes.container_start)
    hooks.container_inspect.append(routes.inspect)

    async def started(app: Any, c: Any) -> None:
        await routes.dns_adopted(app, c.id)  # the sockets its engine bound before it ran, if any
        if c.config.get("Networks") or (c.config["HostConfig"].get("NetworkMode") or "").startswith(
                "container:"):  # sharing a namespace served already: the same sockets (dns.py)
            await routes.dns_attach(app, c)

    async def exited(app: Any, c: Any) -> None:
        if "networks.dns" in app:
            await app["networks.dns"].detach(c.id)

    async def restore(app: Any) -> None:
        from minidocker.networks import driver

        try:
            routes.dns_listen(app)  # before any container starts: the engines hand their sockets over
        except OSError as e:  # then each container is attached once it runs
            log.warning("embedded DNS: cannot listen on the exec root's dns.sock: %s", e)
        released = await asyncio.get_running_loop().run_in_executor(None, driver.reconcile, routes.store(app))
        if released:
            log.info("user-defined networks: released the addresses of %s",
                     " ".join(c[:12] for c in released))
        for c in list(app["supervisor"].containers.values()):
            if c.running and routes.networks_of(app, c.id):
                try:
                    await routes.dns_attach(app, c)
                except Exception as e:
                    log.warning("embedded DNS for %s: %s", c.id[:12], e)

    async def close(app: Any) -> None:
        routes.dns_unlisten(app)
        if "networks.dns" in app:
            await app["networks.dns"].close()

    hooks.container_started.append(started)
    hooks.container_exited.append(exited)
    hooks.daemon_restore.append(restore)
    hooks.daemon_close.append(close)
