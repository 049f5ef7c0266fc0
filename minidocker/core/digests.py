"""Content digests: ``sha256:`` and the hex of a hash, the names images and registries give their bytes.

A digest names a blob (a layer, a config, a manifest) by the hash of its content, so whoever holds
the digest can check the bytes, wherever they came from. Both sides of the wire need the same
three things: compute a digest (:func:`digest_of`), tell a well-formed one from anything else
before it names a file (:func:`check_digest`: a client could send ``../../etc/passwd``), and
compare received bytes with the digest that announced them (:func:`verify_digest`). The rules
are the OCI image spec's registered algorithms, ``sha256`` (64 hex digits) and ``sha512`` (128),
in lower case, and nothing else.

Example::

    >>> digest_of(b"{}")
    'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
    >>> check_digest("sha256:" + "0" * 64)
    ('sha256', '0000000000000000000000000000000000000000000000000000000000000000')
    >>> verify_digest(b"{}", "sha256:" + "0" * 64, "config")
    Traceback (most recent call last):
    DigestError: config: digest mismatch: expected sha256:000..., got sha256:44136fa... (...)
"""

from __future__ import annotations

import hashlib
import re

from minidocker.core.process import EngineError

__all__ = ["ALGORITHMS", "DigestError", "check_digest", "digest_of", "verify_digest"]

ALGORITHMS = {"sha256": 64, "sha512": 128}  # the OCI image spec's registered algorithms: hex digits
_DIGEST = re.compile(r"(sha256|sha512):([a-f0-9]+)")  # fullmatch: "$" would let a trailing newline in


class DigestError(EngineError):
    """A digest that is malformed, of an algorithm we do not support, or that the content does not match.

    Content whose hash is not the digest that named it was corrupted, truncated, or tampered with.
    """


# exercise 09.1: Validate a digest before it names a file
# hint: _DIGEST.fullmatch() and check the hex length (ALGORITHMS: 64 or 128); anything else
#   raises DigestError, so "../../etc/passwd" never reaches the filesystem.
# --8<-- [start:check_digest]
def check_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:HEX`` into ``("sha256", HEX)``; raise DigestError if it is not a valid digest.

    Digests name files on disk: validating them strictly here is also what keeps a client from
    naming ``../../etc/passwd``.
    """
    match = _DIGEST.fullmatch(digest)
    if not match or len(match.group(2)) != ALGORITHMS[match.group(1)]:
        raise DigestError(f"invalid digest {digest[:150]!r}: expected sha256:<64 hex digits>")
    return match.group(1), match.group(2)
# --8<-- [end:check_digest]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of some bytes: ``digest_of(b"") == "sha256:e3b0c442…"``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_digest(data: bytes, expected: str, what: str) -> None:
    """Raise :class:`DigestError` unless ``data`` hashes to ``expected``; hash the bytes as received.

    ``what`` names the content in the message (``"manifest"``, ``"blob"``). A malformed ``expected``
    is refused by :func:`check_digest` before anything is hashed.
    """
    try:
        algorithm, _ = check_digest(expected)
    except DigestError as e:
        raise DigestError(f"{what}: {e}") from None
    actual = digest_of(data, algorithm)
    if actual != expected:
        raise DigestError(f"{what}: digest mismatch: expected {expected}, got {actual} "
                          "(corrupted or tampered with: nothing was stored)")
