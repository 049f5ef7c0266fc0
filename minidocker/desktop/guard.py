"""Who may use the dashboard: a token, an HttpOnly cookie, the same origin, a loopback address.

Why so much for a page on 127.0.0.1? Because every local user, and every web site open in the
browser, can reach 127.0.0.1, and the dashboard can do what root can do (a container with ``/``
mounted is root on the host). So, as Jupyter does:

- the server prints a URL with a random token (``secrets.token_urlsafe``); opening it exchanges the
  token for a cookie (HttpOnly: scripts cannot read it; SameSite=Strict: other sites' requests do not
  carry it) and redirects to ``/`` so the token leaves the address bar;
- every request needs the token: the cookie, or the ``X-Desktop-Token`` header (for scripts and the
  notebook); compared in constant time (``hmac.compare_digest``), so timing does not leak it;
- a request that changes something (any method but GET/HEAD, and every WebSocket) from a browser
  must come from our own origin (``Origin`` equal to ``http://`` + ``Host``) and carry the
  ``X-Desktop`` header, which a cross-site form cannot set; a WebSocket must carry our ``Origin``
  (browsers do not apply the same-origin policy to WebSockets: the server must);
- ``Host`` must name our address (``127.0.0.1:PORT`` or ``localhost:PORT``): a DNS-rebinding site, whose
  name now points at 127.0.0.1, sends its own name and is refused.

The cookie's name carries the port: cookies are not kept apart by port, and two dashboards on one
host must not log each other out.

Example::

    >>> guard = Guard("127.0.0.1", 7015)
    >>> guard.url()
    'http://127.0.0.1:7015/?token=...'
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

__all__ = ["Guard"]

SAFE = ("GET", "HEAD")


class Guard:
    """The token of one dashboard server, and the middleware that asks for it."""

    def __init__(self, host: str, port: int, public: bool = False, token: str | None = None) -> None:
        self.host, self.port, self.public = host, port, public
        self.token = token or secrets.token_urlsafe(32)
        self.cookie = f"minidocker-desktop-{port}"
        shown = f"[{host}]" if ":" in host else host
        self.hosts = {f"{shown}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}

    def url(self, token: str | None = None) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            shown = "127.0.0.1"
        return f"http://{shown}:{self.port}/?token={token or self.token}"

    def valid(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    # --8<-- [start:middleware]
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        """Refuse (403, one line) what lacks the token, or changes state from another origin."""
        host = request.headers.get("Host", "")
        if not self.public and host not in self.hosts:
            raise web.HTTPForbidden(text=f"minidocker desktop: unexpected Host {host[:80]!r}\n")
        if request.path == "/" and self.valid(request.query.get("token")):  # the printed URL, opened
            answer = web.HTTPFound("/")
            answer.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            raise answer
        by_cookie = self.valid(request.cookies.get(self.cookie))
        by_header = self.valid(request.headers.get("X-Desktop-Token"))
        if not (by_cookie or by_header):
            raise web.HTTPForbidden(text="minidocker desktop: no valid token: open the URL that "
                                         "'minidocker desktop' printed\n")
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{host}":
            raise web.HTTPForbidden(text=f"minidocker desktop: cross-origin request from {origin[:80]!r}\n")
        if websocket and origin is None and not by_header:
            raise web.HTTPForbidden(text="minidocker desktop: a WebSocket without an Origin\n")
        if request.method not in SAFE and not by_header and "X-Desktop" not in request.headers:
            raise web.HTTPForbidden(text="minidocker desktop: a change needs the X-Desktop header\n")
        return await handler(request)
    # --8<-- [end:middleware]
