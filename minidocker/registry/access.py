"""Chapter 09: the registry's front door: who is calling, may they, and the token endpoint.

``registry/auth.py`` holds the pieces (htpasswd, ACL, signed tokens); this module applies them to
HTTP requests. Each API request needs one action on one repository (``pull`` to read, ``push`` to
upload, ``delete``); :meth:`Authorizer.authorize` either returns who the caller is, or raises the
``401`` whose ``WWW-Authenticate`` header tells the client how to log in:

    GET /v2/busybox/manifests/latest                  -> 401  WWW-Authenticate: Bearer realm="http://h/token",
                                                              service="minidocker-registry",
                                                              scope="repository:busybox:pull"
    GET /token?service=…&scope=repository:busybox:pull  (Basic alice:pw)  -> {"token": "eyJ…"}
    GET /v2/busybox/manifests/latest  (Bearer eyJ…)   -> 200

Without ``--htpasswd`` or ``--token-key`` nobody can log in, so nobody can be told apart: anyone
may pull, and nobody may push or delete unless the server was started with
``--allow-anonymous-push`` (a registry anyone on the machine can write to is one that can hand
root a different ``busybox``).

Example::

    >>> Authorizer()                      # no --htpasswd, no --token-key: anyone may pull, nobody push
    >>> Authorizer(anonymous_push=True)   # ... and anyone may push (a scratch registry for tests)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from minidocker.core.errors import Forbidden, InvalidArgument, Unauthorized
from minidocker.registry.auth import Acl, Htpasswd, Scope, TokenAuthority, basic_credentials, parse_scope

__all__ = ["Authorizer", "Identity"]

_WRITES = ("push", "delete")


@dataclass
class Identity:
    """The caller: a user name (None: anonymous) and what they may do."""

    user: str | None = None
    acl: Acl | None = None
    grants: set[Scope] | None = field(default=None)

    def may(self, name: str, action: str) -> bool:
        """May the caller do ``action`` on repository ``name``?"""
        scope = Scope("repository", name, action)
        if self.grants is not None:
            return scope in self.grants
        return self.acl is None or self.acl.allowed(self.user, scope)


class Authorizer:
    """Checks requests against Basic credentials (htpasswd) or Bearer tokens; see the module doc."""

    def __init__(self, htpasswd: Htpasswd | None = None, acl: Acl | None = None,
                 tokens: TokenAuthority | None = None, realm: str | None = None,
                 anonymous_push: bool = False) -> None:
        self.htpasswd, self.tokens, self.realm = htpasswd, tokens, realm
        self.acl = acl or Acl.load(None)
        self.enabled = htpasswd is not None or tokens is not None
        self.anonymous_push = anonymous_push

    async def _check_password(self, user: str, password: str) -> bool:
        if self.htpasswd is None:
            return False
        return await asyncio.get_running_loop().run_in_executor(None, self.htpasswd.check, user, password)

    # --8<-- [start:authorize]
    async def authorize(self, request: web.Request, name: str | None, action: str | None) -> Identity:
        """Who is calling, if they may do ``action`` on repository ``name``; else raise 401/403."""
        if not self.enabled:
            if action in _WRITES and not self.anonymous_push:
                raise Forbidden(f"this registry has no users, so it takes no {action}: start it with "
                                "--htpasswd or --token-key (or --allow-anonymous-push)", code="DENIED")
            return Identity()
        if action == "catalog":
            needed = [Scope("registry", "catalog", "*")]
        else:
            needed = [Scope("repository", name, action)] if name and action else []
        header = request.headers.get("Authorization", "")
        if self.tokens is not None:
            kind, _, token = header.partition(" ")
            grants = self.tokens.grants(token.strip()) if kind.lower() == "bearer" else None
            if grants is None or not all(s in grants for s in needed):
                realm = self.realm or f"{request.scheme}://{request.host}/token"
                challenge = f'Bearer realm="{realm}",service="{self.tokens.service}"'
                if needed:
                    actions = "pull,push" if action == "push" else needed[0].action
                    challenge += f',scope="{needed[0].type}:{needed[0].name}:{actions}"'
                if grants is not None:
                    challenge += ',error="insufficient_scope"'
                raise Unauthorized("authentication required", code="UNAUTHORIZED", challenge=challenge)
            return Identity(grants=grants)
        credentials = basic_credentials(header)
        user = None
        if credentials is not None:
            if not await self._check_password(*credentials):
                raise Unauthorized("wrong user name or password", code="UNAUTHORIZED",
                                   challenge='Basic realm="minidocker-registry"')
            user = credentials[0]
        if user is None and (not needed or not all(self.acl.allowed(None, s) for s in needed)):
            raise Unauthorized("authentication required", code="UNAUTHORIZED",
                               challenge='Basic realm="minidocker-registry"')
        if not all(self.acl.allowed(user, s) for s in needed):
            raise Forbidden(f"{user or 'anonymous'} may not {action} {name}", code="DENIED")
        return Identity(user, self.acl)
    # --8<-- [end:authorize]

    # --8<-- [start:token_endpoint]
    async def token_endpoint(self, request: web.Request) -> web.Response:
        """``GET /token?service=…&scope=…`` (Basic credentials optional), or the OAuth2 ``POST`` form."""
        assert self.tokens is not None
        if request.method == "POST":
            form = await request.post()
            if form.get("grant_type") != "password":
                raise InvalidArgument("only grant_type=password is supported", code="UNSUPPORTED")
            credentials: tuple[str, str] | None = (str(form.get("username", "")),
                                                   str(form.get("password", "")))
            scopes = str(form.get("scope", "")).split()
        else:
            credentials = basic_credentials(request.headers.get("Authorization", ""))
            scopes = [s for value in request.query.getall("scope", []) for s in value.split()]
        user = None
        if credentials is not None:
            if not await self._check_password(*credentials):
                raise Unauthorized("wrong user name or password", code="UNAUTHORIZED")
            user = credentials[0]
        wanted = [scope for text in scopes for scope in parse_scope(text)]
        return web.json_response(self.tokens.issue(user, wanted, self.acl))
    # --8<-- [end:token_endpoint]
