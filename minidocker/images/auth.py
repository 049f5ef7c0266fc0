"""Registry authentication: ``WWW-Authenticate`` challenges, Basic credentials and Bearer tokens.

A registry that wants credentials answers ``401`` with a challenge. Two kinds exist:

* ``Basic realm="..."``: send ``Authorization: Basic base64(user:password)`` with every request;
* ``Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"``:
  ask the *token server* at ``realm`` for a token valid for that ``service`` and ``scope`` (anonymously,
  or with Basic credentials), then send ``Authorization: Bearer TOKEN``. Tokens are per scope and
  expire (``expires_in``, 60 s when absent): we keep each one and reuse it until shortly before then.

An *identity token* (what a registry's ``/auth`` may give back instead of keeping the password) is
traded at the token server for a token with OAuth2's ``POST realm`` ``grant_type=refresh_token``.

The realm is whatever URL the registry names, so credentials go there only over TLS: a realm on
``http://`` gets them only on a loopback address or on the registry's own host (which the user
chose to reach over plain HTTP); any other gets an anonymous request, as Docker does.

Example::

    >>> parse_challenge('Bearer realm="https://auth.docker.io/token",scope="repository:a/b:pull,push"')
    ('bearer', {'realm': 'https://auth.docker.io/token', 'scope': 'repository:a/b:pull,push'})
"""

from __future__ import annotations

import base64
import re
import threading
import time
from urllib.parse import urlencode, urlsplit

from minidocker.images.http import Client, HTTPFailure, is_loopback

__all__ = ["AuthError", "Authenticator", "parse_challenge"]

_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
TOKEN_MARGIN = 10  # seconds: a token this close to its expiry is fetched again


class AuthError(Exception):
    """The registry or its token server refused us: the message says why, in one line."""


# exercise 07.2: Split a WWW-Authenticate challenge into its scheme and parameters
# hint: partition the scheme at the first space; match _PARAM from position to position (stop when it does
#   not move); a quoted value loses its quotes and its backslash escapes; lower-case the scheme and the keys.
#   Never split on ','.
# --8<-- [start:parse_challenge]
def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme k1="v1",k2=v2`` into ``("scheme", {k1: v1, k2: v2})``.

    Values may be quoted, and quoted values may contain commas (``scope="repository:x:pull,push"``)
    and escaped quotes: splitting on ``,`` is the classic bug of hand-written pullers.
    """
    scheme, _, rest = header.strip().partition(" ")
    params, position = {}, 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        key, value = match.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
        position = match.end()
    return scheme.lower(), params
# --8<-- [end:parse_challenge]


def basic(username: str, password: str) -> str:
    """The value of a Basic ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Authenticator:
    """The ``Authorization`` header for each request to one registry, learned from its challenges.

    ``credentials`` is ``(username, password)`` or ``None`` (anonymous); or, for Bearer registries,
    an ``identity_token``; ``registry`` is the registry's ``host[:port]`` (a plain-HTTP realm there may
    have them). Thread-safe: concurrent downloads share one token per scope.
    """

    def __init__(self, client: Client, credentials: tuple[str, str] | None = None,
                 identity_token: str = "", registry: str = "") -> None:
        self.client = client
        self.credentials = credentials
        self.identity_token = identity_token
        self.registry = registry
        self.scheme: str | None = None  # "basic" or "bearer", once the registry has told us
        self.challenge: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, monotonic expiry)
        self._lock = threading.Lock()

    def header(self, scope: str) -> dict[str, str]:
        """Headers to send for ``scope`` with what we know so far (maybe none yet)."""
        if self.scheme == "basic" and self.credentials:
            return {"Authorization": basic(*self.credentials)}
        if self.scheme == "bearer":
            with self._lock:
                token, expiry = self._tokens.get(scope, ("", 0.0))
            if token and time.monotonic() < expiry - TOKEN_MARGIN:
                return {"Authorization": f"Bearer {token}"}
            # A new scope, or an expired token: fetch one now rather than after a 401.
            return self._new_token({k: v for k, v in self.challenge.items() if k != "scope"}, scope)
        return {}

    def learn(self, challenge_header: str | None) -> None:
        """Remember how the registry wants us to authenticate (from ``GET /v2/``'s 401)."""
        if challenge_header:
            self.scheme, self.challenge = parse_challenge(challenge_header)

    def answer(self, challenge_header: str | None, scope: str) -> dict[str, str]:
        """React to a 401: learn the scheme, fetch a token if needed; return the headers to retry with.

        Raises :class:`AuthError` when retrying cannot help (no credentials for Basic, token refused).
        """
        if not challenge_header:
            raise AuthError("unauthorized: the registry gave no authentication challenge")
        scheme, params = parse_challenge(challenge_header)
        self.scheme, self.challenge = scheme, params
        if scheme == "basic":
            if not self.credentials:
                raise AuthError("unauthorized: authentication required (log in first)")
            return {"Authorization": basic(*self.credentials)}
        if scheme != "bearer":
            raise AuthError(f"unauthorized: unsupported authentication scheme {scheme!r}")
        return self._new_token(params, scope)

    def _new_token(self, challenge: dict[str, str], scope: str) -> dict[str, str]:
        token, lifetime = self.fetch_token(challenge, scope)
        with self._lock:
            self._tokens[scope] = (token, time.monotonic() + lifetime)
        return {"Authorization": f"Bearer {token}"}

    # --8<-- [start:fetch_token]
    def fetch_token(self, challenge: dict[str, str], scope: str) -> tuple[str, float]:
        """Ask the token server named by a Bearer challenge for a token; return it and its lifetime.

        ``GET realm?service=S&scope=repository:NAME:pull``, with Basic credentials if we have any
        (with an identity token: the ``POST`` of :meth:`_refresh_request`). The scopes we need are
        asked for (``scope`` may list several, space-separated), plus the one the challenge names.
        Credentials go only to a realm that :meth:`may_have_credentials`; another is asked anonymously.
        """
        realm = challenge.get("realm")
        if not realm:
            raise AuthError("unauthorized: the Bearer challenge names no token server (realm)")
        query = [("service", challenge["service"])] if "service" in challenge else []
        scopes = [*scope.split(), *challenge.get("scope", "").split()]  # space-separated lists
        query += [("scope", s) for s in dict.fromkeys(scopes)]
        headers, send = {}, self.may_have_credentials(realm)
        if self.credentials and send:
            headers["Authorization"] = basic(*self.credentials)
            query.append(("account", self.credentials[0]))
        request = ("GET", realm + ("&" if "?" in realm else "?") + urlencode(query), headers, None)
        if self.identity_token and send:
            request = self._refresh_request(realm, challenge, scopes)
        try:
            with self.client.request(*request) as response:
                if response.status in (401, 403):
                    withheld = "" if send or not (self.credentials or self.identity_token) else (
                        f" (your credentials were not sent to {realm}: not https)")
                    raise AuthError(f"unauthorized: {self._refused(send)}{withheld}")
                if response.status != 200:
                    raise AuthError(f"token server {realm} answered {response.status} {response.reason}")
                answer = response.json()
        except HTTPFailure as e:
            raise AuthError(f"cannot get a token from {realm}: {e}") from e
        except ValueError as e:
            raise AuthError(f"token server {realm} sent something that is not JSON") from e
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise AuthError(f"token server {realm} sent no token")
        return token, float(answer.get("expires_in") or 60)
    # --8<-- [end:fetch_token]

    # --8<-- [start:may_have_credentials]
    def may_have_credentials(self, realm: str) -> bool:
        """Whether the token server at ``realm`` may be sent our password or identity token.

        The registry names the realm, so a hostile or hijacked registry could name any URL: over
        ``https`` only (the certificate proves whom we talk to), or over ``http`` on a loopback
        address or on the registry's own host (an insecure registry: the user chose plain HTTP there).

            >>> Authenticator(client, ("alice", "pw"), registry="reg:5000").may_have_credentials(
            ...     "http://10.0.0.9/token")
            False
        """
        parts = urlsplit(realm)
        if parts.scheme == "https":
            return True
        host = parts.netloc.rpartition("@")[2].lower()
        return parts.scheme == "http" and (is_loopback(host) or host == self.registry.lower() != "")
    # --8<-- [end:may_have_credentials]

    def _refused(self, sent: bool = True) -> str:
        if not sent:
            return "the token server refused anonymous access"
        return ("the identity token was refused" if self.identity_token else "incorrect username or password"
                if self.credentials else "the token server refused anonymous access")

    def _refresh_request(self, realm: str, challenge: dict[str, str],
                         scopes: list[str]) -> tuple[str, str, dict[str, str], bytes]:
        """OAuth2's form that trades the identity token for a token: ``grant_type=refresh_token``."""
        form = [("grant_type", "refresh_token"), ("refresh_token", self.identity_token),
                ("client_id", "minidocker"), ("scope", " ".join(dict.fromkeys(scopes)))]
        form += [("service", challenge["service"])] if "service" in challenge else []
        return "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form).encode()
