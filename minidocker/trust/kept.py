"""Chapter 16: the signatures a pull verified, kept with the engine's state for the checks at run.

A pull under a ``sigstoreSigned`` policy has the image's signatures in hand; the daemon keeps them
(``STATE/trust/signatures/REPOSITORY-HASH/sha256-HEX.json``, root's alone: a registry keeps them
per repository, and so do we) so that ``run`` can check the image
again against the policy *in force then*, without asking the registry: an image pulled before the
policy was set has none kept, and is refused until it is pulled again under the policy.
Signatures stay untrusted data here: they are verified at every use, never believed because kept.

Example::

    >>> keep("127.0.0.1:5000/app", "sha256:4b3e…", signatures)
    >>> [s.signature[:8] for s in kept("127.0.0.1:5000/app", "sha256:4b3e…")]
    ['MEUCIQD4']
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from minidocker.core.atomic import write_json
from minidocker.core.paths import state_dir
from minidocker.trust.attachments import MAX_SIGNATURES, Attached, signature_tag

__all__ = ["MAX_KEPT", "keep", "kept"]

MAX_KEPT = 16 << 20  # what is read back of one image's file at most (signatures are a few hundred bytes)


def _path(name: str, digest: str, root: Path | None = None) -> Path:
    repository = hashlib.sha256(name.encode()).hexdigest()[:32]  # a name may hold '/' and ':'
    return (root or state_dir() / "trust" / "signatures") / repository / (signature_tag(digest) + ".json")


def keep(name: str, digest: str, signatures: list[Attached], root: Path | None = None) -> None:
    """Record ``signatures`` of the repository ``name`` for the manifest ``digest`` (replacing any)."""
    path = _path(name, digest, root)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_json(path, [{"payload": base64.b64encode(s.payload).decode(), "annotations": s.annotations}
                      for s in signatures[:MAX_SIGNATURES]], mode=0o600)


def kept(name: str, digest: str, root: Path | None = None) -> list[Attached]:
    """The signatures kept for ``digest`` in the repository ``name`` ([] if none, or unreadable)."""
    try:
        with open(_path(name, digest, root), "rb") as f:
            entries = json.loads(f.read(MAX_KEPT))
        return [Attached(base64.b64decode(e["payload"]), dict(e["annotations"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return []
