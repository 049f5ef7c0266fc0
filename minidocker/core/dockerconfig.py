"""The client's config file, shaped like Docker's ``~/.docker/config.json``: credentials and registries.

It lives in ``$MINIDOCKER_CONFIG/config.json``, or ``~/.minidocker/config.json``: per user, like
Docker's, because credentials belong to a person, not to the engine. It holds

* ``auths``: ``{"127.0.0.1:5000": {"auth": base64("user:password")}}`` written by ``login``
  (Docker Hub's key is ``https://index.docker.io/v1/``, as in Docker, so the file is interchangeable);
* ``registry-mirrors``: ``["http://127.0.0.1:5000"]``, tried first for images of Docker Hub (in
  Docker this setting is the daemon's; the environment variable ``MINIDOCKER_REGISTRY_MIRRORS``,
  comma-separated, overrides it);
* ``insecure-registries``: hosts spoken to without TLS verification (loopback needs no entry).

* ``credsStore``: the credential helper that keeps every registry's secret instead of ``auths``
  (``"minidocker"`` runs ``docker-credential-minidocker``), and ``credHelpers``: ``{registry: helper}``,
  which wins over ``credsStore`` for its registries (see :mod:`minidocker.core.credentials`). With a
  helper, ``auths`` keeps only an empty ``{}`` per registry, as Docker's CLI writes it.

The file is written atomically with mode 0600: without a helper it holds secrets in base64, which is
not encryption.

Credentials stay on the client's side: for each pull or push, the client sends the ones it holds for
the image's registry to the daemon in the ``X-Registry-Auth`` header, base64url of the JSON
``{"username", "password", "serveraddress"}`` (or ``{"identitytoken"}``): :func:`registry_auth_header`
writes it, :func:`parse_registry_auth` reads it on the daemon's side.

Example::

    >>> store_credentials("127.0.0.1:5000", "alice", "s3cret")
    >>> credentials_for("127.0.0.1:5000")
    ('alice', 's3cret')
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from minidocker.core import credentials as _credentials
from minidocker.core.atomic import atomic_write

__all__ = ["RegistryAuth", "config_path", "credentials_for", "erase_credentials", "helper_for",
           "insecure_registries", "load", "mirrors", "parse_registry_auth", "registry_auth_header",
           "registry_of", "store_credentials"]

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


def config_path() -> Path:
    """``$MINIDOCKER_CONFIG/config.json``, else ``~/.minidocker/config.json``."""
    directory = os.environ.get("MINIDOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".minidocker")
    return Path(directory) / "config.json"


def load() -> dict[str, Any]:
    """The config file's contents ({} when there is none); a broken file is a one-line error."""
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as e:
        raise ValueError(f"cannot read {path}: {e}: fix or remove it") from e
    return data if isinstance(data, dict) else {}


def _save(data: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(data, indent="\t") + "\n", mode=0o600)  # it holds credentials


def _key(registry: str) -> str:
    """The key of ``registry`` in ``auths`` and in a helper: its host (Docker's ``ConvertToHostname``),
    or Docker Hub's URL."""
    if registry == DOCKER_HUB_AUTH_KEY:
        return registry
    host = registry.removeprefix("https://").removeprefix("http://").partition("/")[0]
    return DOCKER_HUB_AUTH_KEY if host in ("docker.io", "index.docker.io", "registry-1.docker.io") else host


# --8<-- [start:helper_for]
def helper_for(registry: str, config: dict[str, Any] | None = None) -> str | None:
    """The credential helper that keeps the secret of ``registry``, or None: then ``auths`` keeps it.

    As Docker's CLI: ``credHelpers[registry]`` wins over ``credsStore``, which wins over ``auths``
    (an empty name in ``credHelpers`` sends that one registry back to ``auths``). Docker Hub's key
    is ``https://index.docker.io/v1/``.

        >>> helper_for("ghcr.io", {"credsStore": "pass", "credHelpers": {"ghcr.io": "minidocker"}})
        'minidocker'
    """
    config = load() if config is None else config
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(_key(registry)), str):
        return helpers[_key(registry)] or None
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None
# --8<-- [end:helper_for]


def _stored(registry: str) -> tuple[str, str, str] | None:
    """``(username, password, identity token)`` of ``registry``, from its helper or from ``auths``."""
    config = load()
    helper = helper_for(registry, config)
    if helper:
        found = _credentials.get(helper, _key(registry))
        if found is None:
            return None
        if found.username == _credentials.TOKEN_USERNAME:
            return "", "", found.secret
        return found.username, found.secret, ""
    entry = config.get("auths", {}).get(_key(registry)) or {}
    token = entry.get("identitytoken") if isinstance(entry.get("identitytoken"), str) else ""
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"], token
    with contextlib.suppress(ValueError):
        user, sep, secret = base64.b64decode(entry.get("auth", "")).decode().partition(":")
        if sep:
            return user, secret, token
    return ("", "", token) if token else None


def credentials_for(registry: str) -> tuple[str, str] | None:
    """The ``(username, password)`` stored for ``registry`` by ``login``, if any (helper or file)."""
    stored = _stored(registry)
    return (stored[0], stored[1]) if stored and (stored[0] or stored[1]) else None


class RegistryAuth(NamedTuple):
    """What an ``X-Registry-Auth`` header carries: a user name and password, or an identity token."""

    credentials: tuple[str, str] | None
    identity_token: str = ""


def registry_of(image: str) -> str:
    """The registry an image is on: ``127.0.0.1:5000/app`` -> ``127.0.0.1:5000``, ``busybox`` -> Docker Hub.

    Chapter 07's :func:`minidocker.images.reference.parse` rule, and only it: the first component
    is a registry if it has a ``.`` or a ``:``, is ``localhost`` or has upper case. The client needs
    just this to pick the credentials it sends, and must not import chapter 07 (the daemon checks
    the whole name).

    Example::

        >>> registry_of("localhost/app:v1"), registry_of("bitnami/redis"), registry_of("index.docker.io/x")
        ('localhost', 'docker.io', 'docker.io')
    """
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return "docker.io" if first == "index.docker.io" else first
    return "docker.io"


def registry_auth_header(registry: str) -> str | None:
    """``X-Registry-Auth`` for ``registry``, from the stored credentials (None if there are none).

    Docker's shape: base64url of ``{"username", "password", "serveraddress"}``, or of
    ``{"username", "identitytoken", "serveraddress"}`` when the file holds an identity token.
    """
    stored = _stored(registry)
    if stored is None:
        return None
    user, password, token = stored
    auth = {"username": user, **({"identitytoken": token} if token else {"password": password}),
            "serveraddress": _key(registry)}
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def parse_registry_auth(header: str) -> RegistryAuth | None:
    """The daemon's side of :func:`registry_auth_header`; None if it carries no credentials.

    Padding is optional; an ``auth`` field (base64 of ``user:password``, as in the config file) is
    accepted too. Raise ``ValueError`` with one line if the header is not base64url JSON.
    """
    import binascii

    text = header.strip()
    if not text:
        return None
    try:
        data = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("invalid X-Registry-Auth header: base64url-encoded JSON expected") from None
    fields = ("username", "password", "auth", "identitytoken")
    if not isinstance(data, dict) or any(not isinstance(data.get(k, ""), str) for k in fields):
        raise ValueError("invalid X-Registry-Auth header: a JSON object of strings expected")
    user, password = data.get("username", ""), data.get("password", "")
    if not (user or password) and data.get("auth"):
        try:
            user, _, password = base64.b64decode(data["auth"], validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            raise ValueError("invalid X-Registry-Auth header: its auth field is not base64") from None
    if data.get("identitytoken"):
        return RegistryAuth(None, data["identitytoken"])  # the token alone identifies the user
    return RegistryAuth((user, password)) if user or password else None


# --8<-- [start:store_credentials]
def store_credentials(registry: str, username: str, password: str) -> None:
    """Remember credentials for ``registry``: in its credential helper if one is configured, else in
    ``auths`` (base64, as ``docker login`` does without a helper).

    With a helper the file gets ``"auths": {REGISTRY: {}}`` and never the secret (an old entry
    holding one is replaced), as Docker's CLI does.
    """
    data, key = load(), _key(registry)
    helper = helper_for(registry, data)
    if helper:
        _credentials.store(helper, key, username, password)
        entry: dict[str, str] = {}
    else:
        entry = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    data.setdefault("auths", {})[key] = entry
    _save(data)
# --8<-- [end:store_credentials]


def erase_credentials(registry: str) -> bool:
    """Forget the credentials of ``registry``, in its helper and in ``auths``; False if there were none.

    The file's entry goes even if the helper fails (its error is raised after, for a warning).
    """
    data, key = load(), _key(registry)
    in_file = isinstance(data.get("auths"), dict) and data["auths"].pop(key, None) is not None
    if in_file:
        _save(data)
    helper = helper_for(registry, data)
    return (_credentials.erase(helper, key) if helper else False) or in_file


def mirrors() -> list[str]:
    """Mirror URLs for Docker Hub, from ``$MINIDOCKER_REGISTRY_MIRRORS`` or the config file."""
    configured = os.environ.get("MINIDOCKER_REGISTRY_MIRRORS")
    found = configured.split(",") if configured is not None else load().get("registry-mirrors", [])
    return [m.strip().rstrip("/") for m in found if m.strip()]


def insecure_registries() -> set[str]:
    """Registries (``host[:port]``) that may be reached over plain HTTP or with unverified TLS."""
    return set(load().get("insecure-registries", []))
