"""Chapter 15: Desktop: the engine in a browser, one more client of the daemon's API.

``minidocker desktop`` serves a dashboard on 127.0.0.1 and prints its URL with an access token, as
Jupyter does. The page lists containers, images, volumes and networks and keeps them live from one
``GET /events`` stream; it starts, stops and removes containers, pulls images with per-layer
progress, streams logs, opens a terminal in a container (exec + the hijacked stream, bridged to a
WebSocket), draws each running container's CPU and memory, runs a Compose project, and shows every
call it made to the daemon. It is a client like the CLI and Compose: it imports only ``core``,
``client`` and ``compose``, so it works against any Docker-compatible daemon.

Modules: :mod:`.apilog` (the daemon calls, recorded), :mod:`.pump` (a blocking stream read in a
thread, handed to the event loop), :mod:`.hub` (the one ``/events`` stream and the stats streams,
fanned out to the pages), :mod:`.guard` (token, cookie, same origin), :mod:`.terminal` (exec over a
WebSocket), :mod:`.views` (what the page lists), :mod:`.server` (the routes), :mod:`.cli` (the command).

Example::

    $ minidocker desktop
    minidocker desktop: serving the daemon at unix:///run/minidocker.sock
        http://127.0.0.1:7015/?token=<TOKEN>
"""
