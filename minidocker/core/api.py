"""The wire contract the daemon and the client share: the API version spoken, and where the socket is.

The daemon (chapter 10) serves Docker's Engine API and the client (chapter 11) speaks it; neither
may import the other (the client is a client of the API, as docker's CLI is of dockerd's), so
what both must agree on lives here, once: a version bumped on one side only would have the
client ask for a version its own daemon refuses.

Example::

    >>> API_VERSION, MIN_API_VERSION
    ('1.50', '1.24')
    >>> default_socket()
    '/run/minidocker.sock'
"""

from __future__ import annotations

import os

__all__ = ["API_VERSION", "MIN_API_VERSION", "default_socket"]

API_VERSION = "1.50"  # Docker Engine 28's: what the daemon serves and the client asks for first
MIN_API_VERSION = "1.24"  # the oldest version a client may speak to the daemon, as dockerd's floor


def default_socket() -> str:
    """``$MINIDOCKER_RUN/minidocker.sock`` if the run dir is moved (tests), else ``/run/minidocker.sock``.

    Not ``core.paths.run_dir()``, which creates the directory: a client looking for the socket must
    not create anything. By default the socket is ``/run/minidocker.sock``, as dockerd's is
    ``/run/docker.sock``.
    """
    run = os.environ.get("MINIDOCKER_RUN")
    return f"{run}/minidocker.sock" if run else "/run/minidocker.sock"
