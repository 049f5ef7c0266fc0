"""Chapter 16: the signatures a pull verified, kept with the engine's state for the checks at run.

A pull under a ``sigstoreSigned`` policy has the image's signatures in hand; the daemon keeps them
(``STATE/trust/signatures/sha256-HEX.json``, root's alone) so that ``run`` can check the image
again against the policy *in force then*, without asking the registry: an image pulled before the
policy was set has none kept, and is refused until it is pulled again under the policy.
Signatures stay untrusted data here: they are verified at every use, never believed because kept.

Example::

    >>> keep("sha256:4b3e…", signatures)
    >>> [s.signature[:8] for s in kept("sha256:4b3e…")]
    ['MEUCIQD4']
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from minidocker.core.atomic import write_json
from minidocker.core.paths import state_dir
from minidocker.trust.attachments import MAX_SIGNATURES, Attached, signature_tag

__all__ = ["MAX_KEPT", "keep", "kept"]

MAX_KEPT = 16 << 20  # what is read back of one image's file at most (signatures are a few hundred bytes)


def _path(digest: str, root: Path | None = None) -> Path:
    return (root or state_dir() / "trust" / "signatures") / (signature_tag(digest) + ".json")


def keep(digest: str, signatures: list[Attached], root: Path | None = None) -> None:
    """Record ``signatures`` for the manifest ``digest`` (replacing what was kept for it)."""
    path = _path(digest, root)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_json(path, [{"payload": base64.b64encode(s.payload).decode(), "annotations": s.annotations}
                      for s in signatures[:MAX_SIGNATURES]], mode=0o600)


def kept(digest: str, root: Path | None = None) -> list[Attached]:
    """The signatures kept for ``digest`` ([] if none, or if the file is unreadable)."""
    try:
        with open(_path(digest, root), "rb") as f:
            entries = json.loads(f.read(MAX_KEPT))
        return [Attached(base64.b64decode(e["payload"]), dict(e["annotations"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return []
