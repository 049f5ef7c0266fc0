"""Chapter 10: the swarm routes, answered as a dockerd that is not in a swarm answers them.

Why answer routes for a feature we do not have? Because clients probe them. ``docker node ls``,
docker-py's ``client.services.list()`` and the clean-up code of many test suites call them and expect
dockerd's answer on a node outside a swarm: 503 with "This node is not a swarm manager...", which
they catch and move on. A 404 instead reads as "wrong endpoint" and fails them. Joining or making a
swarm is another matter: that would be a promise we cannot keep, so ``init`` and ``join`` are refused
as not implemented (501).

Example::

    $ docker node ls
    Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or
    "docker swarm join" to connect this node to swarm and try again.
"""

from __future__ import annotations

from aiohttp import web

from minidocker.core import errors

__all__ = ["routes"]

routes = web.RouteTableDef()

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
                 "connect this node to swarm and try again.")
NOT_IN_A_SWARM = "This node is not part of a swarm"

# (method, path) of every route that needs a swarm manager: dockerd's errNoManager on a lone node.
_MANAGER_ONLY = [
    ("GET", "/swarm"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"), ("POST", "/nodes/{id}/update"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"), ("POST", "/services/{id}/update"), ("GET", "/services/{id}/logs"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"), ("DELETE", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"), ("DELETE", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
]


async def not_a_manager(request: web.Request) -> web.Response:
    raise errors.Unavailable(NOT_A_MANAGER)


async def not_in_a_swarm(request: web.Request) -> web.Response:
    raise errors.Unavailable(NOT_IN_A_SWARM)


async def no_swarm_mode(request: web.Request) -> web.Response:
    raise errors.Unsupported("swarm mode is not implemented by minidockerd")


for _method, _path in _MANAGER_ONLY:
    routes.route(_method, _path)(not_a_manager)
routes.post("/swarm/leave")(not_in_a_swarm)
routes.post("/swarm/init")(no_swarm_mode)
routes.post("/swarm/join")(no_swarm_mode)
