"""Chapter 09: who may pull and push: htpasswd users, Basic auth, and Bearer tokens with scopes.

A registry decides per repository and per action (``pull``, ``push``, ``delete``). Two ways to
prove who you are are common, and Docker speaks both:

* **Basic**: every request carries ``user:password``; the registry checks it against an htpasswd
  file of bcrypt hashes. Simple, but every server must see the passwords.
* **Bearer tokens**: the registry answers ``401`` with ``WWW-Authenticate: Bearer realm=…,
  service=…,scope="repository:NAME:pull,push"``. The client asks the *token endpoint* (here, our
  own ``/token``) for a token for that scope, with its password; the endpoint checks the password
  once and signs a short-lived JWT listing what the user may do. Any server holding the public key
  can check a token without a password file: that is how a registry scales to many processes.

What a user may do comes from an optional ACL file, one rule a line (``USER REPO-GLOB ACTIONS``,
``*`` for any logged-in user, ``anonymous`` for no login)::

    alice      alice/*     pull,push,delete
    *          library/*   pull
    anonymous  public/*    pull

Without an ACL, a logged-in user may do everything, and nobody else anything (unless the server
runs with ``--anonymous-read``).

Example::

    >>> Htpasswd.line("alice", "s3cret")         # what 'registry_server htpasswd' appends
    'alice:$2b$10$…'
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MAX_PASSWORD", "Acl", "Htpasswd", "Scope", "TokenAuthority", "parse_scope"]

ACTIONS = ("pull", "push", "delete")
MAX_PASSWORD = 72  # bytes: bcrypt reads no further (htpasswd(1) refuses longer ones, and so do we)


@dataclass(frozen=True)
class Scope:
    """One thing a request needs: ``Scope("repository", "library/busybox", "pull")``."""

    type: str
    name: str
    action: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


def parse_scope(text: str) -> list[Scope]:
    """``repository:a/b:pull,push`` -> two Scopes; anything malformed is ignored (as registries do)."""
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return []
    return [Scope(kind, name, a) for a in actions.split(",") if a]


class Htpasswd:
    """Users and bcrypt hashes from an htpasswd file, re-read when the file changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, bytes] = {}
        self._good: dict[str, float] = {}  # sha256(user, password) -> when it was last verified
        self._dummy: bytes | None = None  # checked for unknown users: they cost a bcrypt check too

    @staticmethod
    def line(user: str, password: str) -> str:
        """An htpasswd line for ``user`` (bcrypt, what Docker's registry also reads)."""
        import bcrypt

        if ":" in user or not user:
            raise ValueError("a user name cannot be empty or contain ':'")
        if len(password.encode()) > MAX_PASSWORD:
            raise ValueError(f"a password cannot be longer than {MAX_PASSWORD} bytes (bcrypt reads no more)")
        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()}"

    def _load(self) -> None:
        st = self.path.stat()
        if self._stamp != (st.st_mtime_ns, st.st_size):
            users = {}
            for raw in self.path.read_text().splitlines():
                user, sep, hashed = raw.strip().partition(":")
                if sep and not user.startswith("#"):
                    users[user] = hashed.encode()
            self._users, self._stamp, self._good = users, (st.st_mtime_ns, st.st_size), {}

    # --8<-- [start:check_password]
    def check(self, user: str, password: str) -> bool:
        """True if the password is right. bcrypt is slow on purpose (~50 ms): Docker sends Basic
        credentials with *every* request, so a verified pair is remembered for a minute.

        A wrong answer costs the same whoever asks: an unknown user's password is checked against
        a dummy hash, so the time taken does not say which user names exist. A password longer
        than bcrypt's 72 bytes cannot be anyone's (none can be set, see :meth:`line`): it is wrong.
        """
        import bcrypt

        self._load()
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        if self._good.get(key, 0) > time.monotonic() - 60:
            return True
        secret = password.encode()[:MAX_PASSWORD]  # bcrypt raises beyond: the length is checked below
        hashed = self._users.get(user)
        if hashed is None or not hashed.startswith((b"$2a$", b"$2b$", b"$2y$")):
            if self._dummy is None:
                self._dummy = bcrypt.hashpw(b"minidocker: no such user", bcrypt.gensalt(10))
            bcrypt.checkpw(secret, self._dummy)
            return False
        if not bcrypt.checkpw(secret, b"$2b$" + hashed[4:]) or len(password.encode()) > MAX_PASSWORD:
            return False
        self._good[key] = time.monotonic()
        return True
    # --8<-- [end:check_password]


@dataclass
class Acl:
    """Who may do what where. ``rules`` are ``(user, repository glob, actions)``; see the module doc."""

    rules: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    anonymous_read: bool = False

    @classmethod
    def load(cls, path: Path | str | None, anonymous_read: bool = False) -> Acl:
        """Read an ACL file (None: logged-in users may do everything)."""
        rules = []
        if path is not None:
            for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
                words = raw.split("#")[0].split()
                if not words:
                    continue
                if len(words) != 3 or not set(words[2].split(",")) <= {*ACTIONS, "*"}:
                    raise ValueError(f"{path}:{number}: expected 'USER REPO-GLOB pull,push,delete'")
                actions = set(ACTIONS) if words[2] == "*" else set(words[2].split(","))
                rules.append((words[0], words[1], frozenset(actions)))
        return cls(rules if path is not None else [("*", "*", frozenset(ACTIONS))], anonymous_read)

    def allowed(self, user: str | None, scope: Scope) -> bool:
        """May ``user`` (None: anonymous) do ``scope``? ``registry:catalog:*`` needs a login."""
        if scope.type == "registry":
            return user is not None and scope.name == "catalog"
        if scope.type != "repository":
            return False
        if user is None and self.anonymous_read and scope.action == "pull":
            return True
        for who, pattern, actions in self.rules:
            matches_user = (who == user or (who == "*" and user is not None)
                            or (who == "anonymous" and not user))
            if matches_user and fnmatch.fnmatchcase(scope.name, pattern) and scope.action in actions:
                return True
        return False


class TokenAuthority:
    """Signs and checks the registry's Bearer tokens (ES256 JWTs) with a key kept in a file.

    Every server process given the same ``--token-key`` accepts the tokens of every other one.
    """

    def __init__(self, key_path: Path | str, service: str = "minidocker-registry",
                 issuer: str = "minidocker-registry", lifetime: int = 300) -> None:
        self.service, self.issuer, self.lifetime = service, issuer, lifetime
        self._key = self._load_or_create(Path(key_path))
        self._public = self._key.public_key()

    @staticmethod
    def _load_or_create(path: Path) -> Any:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(pem)
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # fails if another process created the key first: use theirs
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return serialization.load_pem_private_key(path.read_bytes(), password=None)

    # --8<-- [start:issue]
    def issue(self, user: str | None, wanted: list[Scope], acl: Acl) -> dict[str, Any]:
        """A token granting the part of ``wanted`` the ACL allows ``user``; the token endpoint's answer.

        Asking for more than you may have is not an error: you get a token for less, and the
        registry answers 401 when you use it for the rest (that is what "denied" looks like).
        """
        import jwt

        granted: dict[tuple[str, str], list[str]] = {}
        for scope in wanted:
            if acl.allowed(user, scope):
                granted.setdefault((scope.type, scope.name), []).append(scope.action)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.service, "sub": user or "", "iat": now, "nbf": now - 5,
                  "exp": now + self.lifetime, "jti": uuid.uuid4().hex,
                  "access": [{"type": t, "name": n, "actions": a} for (t, n), a in granted.items()]}
        token = jwt.encode(claims, self._key, algorithm="ES256")
        return {"token": token, "access_token": token, "expires_in": self.lifetime,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    # --8<-- [end:issue]

    def grants(self, token: str) -> set[Scope] | None:
        """What a token allows, or None if it is forged, expired or for another service."""
        import jwt

        try:
            claims = jwt.decode(token, self._public, algorithms=["ES256"], audience=self.service,
                                issuer=self.issuer, leeway=5)
        except jwt.PyJWTError:
            return None
        return {Scope(a["type"], a["name"], action) for a in claims.get("access", [])
                for action in a.get("actions", [])}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``Basic dXNlcjpwdw==`` -> ``("user", "pw")``; None if the header is not Basic (or names nobody)."""
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user else None  # some clients send empty ones: anonymous
