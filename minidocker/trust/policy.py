"""Chapter 16: a signature policy in containers-policy.json(5)'s format: which images may be used.

The file podman, skopeo and CRI-O read (``/etc/containers/policy.json``) says, per scope, what an
image must satisfy::

    {"default": [{"type": "insecureAcceptAnything"}],
     "transports": {"docker": {
         "127.0.0.1:5000/app": [{"type": "sigstoreSigned", "keyPath": "/etc/app.pub",
                                  "signedIdentity": {"type": "matchRepoDigestOrExact"}}],
         "registry.example":   [{"type": "reject"}]}}}

A scope is a full reference (``reg/repo:tag``), a repository (``reg/repo``), a namespace in it
(``reg/ns``), a registry (``reg``), a wildcard of hosts (``*.example.com``), or ``""`` (the
transport's default); the most specific scope that names the image decides, else ``default``.
Every requirement of that scope must hold: ``insecureAcceptAnything`` (anything goes), ``reject``
(nothing does), ``sigstoreSigned`` (at least one signature verifies with one of ``keyPath``, ``keyPaths``,
``keyData``, ``keyDatas`` and its payload names the image's digest and a reference ``signedIdentity`` accepts:
``matchRepoDigestOrExact``, the default, ``matchRepository``, ``matchExact``, ``exactRepository``).
That is containers/image's ``signature/policy_eval.go``; the file's errors are one line each.

Example::

    >>> policy = Policy.load("/etc/minidocker/policy.json")
    >>> policy.scope_for(reference.parse("127.0.0.1:5000/app:v1"))
    ('127.0.0.1:5000/app', [SigstoreSigned(...)])
    >>> policy.check(reference.parse("127.0.0.1:5000/app:v1"), "sha256:…", fetch_signatures)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from minidocker.core.errors import Forbidden, InvalidArgument
from minidocker.images import reference as references
from minidocker.images.reference import Reference
from minidocker.trust import keys
from minidocker.trust.attachments import Attached
from minidocker.trust.signature import SignatureError, verify

__all__ = ["MAX_POLICY", "Policy", "PolicyError", "Refused", "Requirement"]

MAX_POLICY = 1 << 20  # a policy file is small: read at most 1 MiB
IDENTITIES = ("matchRepoDigestOrExact", "matchRepository", "matchExact", "exactRepository")


class PolicyError(InvalidArgument):
    """A policy file that cannot be used: unreadable, not JSON, or not containers-policy.json(5)."""


class Refused(Forbidden):
    """The policy refuses an image: one line naming the scope, the requirement and why."""


@dataclass
class Requirement:
    """One requirement of a scope: its ``type``, and for ``sigstoreSigned`` its keys and identity rule."""

    type: str
    keys: list[ec.EllipticCurvePublicKey] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=lambda: {"type": "matchRepoDigestOrExact"})

    def __repr__(self) -> str:
        return f"{self.type}({self.identity['type']})" if self.type == "sigstoreSigned" else self.type


# --8<-- [start:identity]
def identity_matches(rule: dict[str, str], image: Reference, signed: str) -> bool:
    """Whether a payload's ``docker-reference`` (``signed``) fits the image under ``signedIdentity``."""
    try:
        claimed = references.parse(signed, default_tag=None)
    except InvalidArgument:
        return False
    kind = rule["type"]
    if kind == "matchRepository":
        return claimed.name == image.name
    if kind == "exactRepository":
        return claimed.name == references.parse(rule["dockerRepository"], None).name
    if kind == "matchExact" or (kind == "matchRepoDigestOrExact" and image.tag):
        return str(claimed) == str(image) and bool(image.tag or image.digest)
    return claimed.name == image.name  # matchRepoDigestOrExact, by digest: the digest was checked apart
# --8<-- [end:identity]


@dataclass
class Policy:
    """A parsed policy: the global default and the ``docker`` transport's scopes."""

    default: list[Requirement]
    scopes: dict[str, list[Requirement]]
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read and check a policy file; :class:`PolicyError` with one line if it is not usable."""
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_POLICY + 1)
        except OSError as e:
            raise PolicyError(f"signature policy {path}: {e.strerror}") from None
        if len(raw) > MAX_POLICY:
            raise PolicyError(f"signature policy {path}: larger than {MAX_POLICY} bytes")
        try:
            return cls.parse(json.loads(raw), Path(path).resolve().parent, str(path))
        except json.JSONDecodeError as e:
            raise PolicyError(f"signature policy {path}: not JSON: {e}") from None

    @classmethod
    def parse(cls, document: Any, base: Path | None = Path("."), source: str = "policy") -> Policy:
        """A policy from its JSON document; relative ``keyPath``s are relative to ``base``.

        With ``base=None`` key files are refused (``keyData`` only): a policy sent by a client
        must not make the daemon read the daemon's files.
        """
        def fail(what: str) -> PolicyError:
            return PolicyError(f"signature policy {source}: {what}")

        if not isinstance(document, dict) or not isinstance(document.get("default"), list):
            raise fail('"default" must be a list of requirements')
        unknown = set(document) - {"default", "transports"}
        if unknown:
            raise fail(f"unknown field {sorted(unknown)[0]!r}")
        transports = document.get("transports") or {}
        scopes: dict[str, list[Requirement]] = {}
        for transport, table in transports.items():
            if not isinstance(table, dict):
                raise fail(f"transport {transport!r} must map scopes to requirements")
            for scope, requirements in table.items():
                parsed = [_requirement(r, base, fail) for r in _list(requirements, scope, fail)]
                if transport == "docker":  # docker-daemon and the others apply to no image we fetch
                    scopes[scope] = parsed
        return cls([_requirement(r, base, fail) for r in document["default"]] or _nothing(fail), scopes,
                   source)

    # --8<-- [start:scope_for]
    def scope_for(self, image: Reference) -> tuple[str, list[Requirement]]:
        """The most specific scope naming ``image`` and its requirements (``default`` if none does).

        Tried in order: ``reg/repo:tag`` (or ``@digest``), ``reg/repo``, each parent namespace,
        ``reg``, ``*.domain`` for each parent domain of the registry's host, then ``""``.
        """
        candidates = [str(image), image.name]
        parts = image.name.split("/")
        candidates += ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
        labels = image.registry.split(":")[0].split(".")
        candidates += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
        for scope in [*candidates, ""]:
            if scope in self.scopes:
                return scope or "docker", self.scopes[scope]
        return "default", self.default
    # --8<-- [end:scope_for]

    # --8<-- [start:check]
    def check(self, image: Reference, digest: str, signatures: Callable[[], list[Attached]],
              action: str = "pull") -> str:
        """Raise :class:`Refused` unless every requirement of ``image``'s scope holds for ``digest``.

        ``signatures`` fetches the stored signatures, only if a requirement needs them; ``action``
        begins the refusal's line. Returns the scope that decided (for a log line).
        """
        scope, requirements = self.scope_for(image)
        fetched: list[Attached] | None = None
        for requirement in requirements:
            if requirement.type == "insecureAcceptAnything":
                continue
            if requirement.type == "reject":
                raise Refused(f"{action} refused by policy (scope {scope}, reject): {image.name} is rejected")
            fetched = signatures() if fetched is None else fetched
            reason = _signed(requirement, image, digest, fetched)
            if reason:
                raise Refused(f"{action} refused by policy (scope {scope}, sigstoreSigned): {reason}")
        return scope
    # --8<-- [end:check]


def _signed(requirement: Requirement, image: Reference, digest: str, found: list[Attached]) -> str:
    """'' if one of the signatures satisfies ``requirement``; else why none does."""
    if not found:
        return f"no signature for {digest}"
    reason = ""
    for attached in found:
        for key in requirement.keys:
            try:
                payload = verify(attached.payload, attached.signature, key)
            except SignatureError as e:
                reason = str(e)
                continue
            if payload.digest != digest:
                reason = f"the signature is for {payload.digest}, not {digest}"
            elif not identity_matches(requirement.identity, image, payload.reference):
                reason = (f"the signature is for {payload.reference}, which "
                          f"{requirement.identity['type']} does not accept for {image}")
            else:
                return ""
    return reason


def _list(value: Any, scope: str, fail: Callable[[str], PolicyError]) -> list[Any]:
    if not isinstance(value, list):
        raise fail(f"scope {scope!r}: requirements must be a list")
    if not value:
        raise fail(f"scope {scope!r}: an empty list of requirements (say insecureAcceptAnything)")
    return value


def _nothing(fail: Callable[[str], PolicyError]) -> list[Requirement]:
    raise fail('"default" is empty (say insecureAcceptAnything, or reject)')


def _requirement(entry: Any, base: Path | None, fail: Callable[[str], PolicyError]) -> Requirement:
    """One requirement of the file, its keys loaded (a key that cannot be read is the file's error)."""
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind in ("insecureAcceptAnything", "reject"):
        return Requirement(kind)
    if kind != "sigstoreSigned":
        raise fail(f"unsupported requirement type {kind!r} (insecureAcceptAnything, reject, sigstoreSigned)")
    pems: list[bytes] = []
    try:
        for path in ([entry["keyPath"]] if "keyPath" in entry else []) + list(entry.get("keyPaths") or []):
            if base is None:
                raise fail("keyPath is not accepted here: give the key as keyData")
            pems.append(keys.read_bounded(base / path))
        for data in ([entry["keyData"]] if "keyData" in entry else []) + list(entry.get("keyDatas") or []):
            pems.append(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise fail("keyData is not base64") from None
    except keys.KeyError_ as e:
        raise fail(str(e)) from None
    if not pems:
        raise fail("sigstoreSigned needs keyPath, keyPaths, keyData or keyDatas (keyless: not here)")
    identity = entry.get("signedIdentity") or {"type": "matchRepoDigestOrExact"}
    if identity.get("type") not in IDENTITIES:
        raise fail(f"unsupported signedIdentity {identity.get('type')!r} ({', '.join(IDENTITIES)})")
    if identity["type"] == "exactRepository" and not identity.get("dockerRepository"):
        raise fail("exactRepository needs dockerRepository")
    try:
        return Requirement(kind, [keys.load_public_key(pem) for pem in pems], identity)
    except keys.KeyError_ as e:
        raise fail(str(e)) from None
