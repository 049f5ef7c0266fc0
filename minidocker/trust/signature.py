"""Chapter 16: a sigstore signature: the "simple signing" payload and an ECDSA signature over it.

What is signed is a small JSON document (cosign's and containers/image's, after Red Hat's "simple
signing" format) that binds a manifest digest to a repository name::

    {"critical": {"identity": {"docker-reference": "127.0.0.1:5000/app"},
                  "image": {"docker-manifest-digest": "sha256:…"},
                  "type": "cosign container image signature"},
     "optional": null}

The signature is ECDSA P-256 over the SHA-256 of those exact bytes, ASN.1 DER, base64: it travels
next to the payload (an annotation of the layer that holds it: ``attachments.py``). A verifier
checks the signature with a key it trusts, *then* reads the payload, and accepts the image only if
the payload names the digest it fetched and a reference its policy accepts (``policy.py``). The
payload's bytes are kept as they are: whitespace or key order may differ between signers.

Example::

    >>> private, public = keys.generate()
    >>> payload = make_payload("127.0.0.1:5000/app", "sha256:" + "ab" * 32)
    >>> sig = sign(payload, private)
    >>> verify(payload, sig, public).digest
    'sha256:abab…'
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from minidocker.core.errors import Forbidden

__all__ = ["ANNOTATION", "MEDIA_TYPE", "PAYLOAD_TYPE", "Payload", "SignatureError", "make_payload", "sign",
           "verify"]

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"


class SignatureError(Forbidden):
    """A signature that does not verify, or a payload that is not what it must be."""


@dataclass(frozen=True)
class Payload:
    """What a verified payload says: the reference it was signed for and the manifest digest."""

    reference: str
    digest: str
    optional: Any = None


# --8<-- [start:make_payload]
def make_payload(reference: str, digest: str) -> bytes:
    """The payload binding ``digest`` to ``reference`` (a repository name, no tag), as cosign writes it."""
    document = {"critical": {"identity": {"docker-reference": reference},
                             "image": {"docker-manifest-digest": digest},
                             "type": PAYLOAD_TYPE},
                "optional": None}
    return json.dumps(document, separators=(",", ":")).encode()
# --8<-- [end:make_payload]


def sign(payload: bytes, private: ec.EllipticCurvePrivateKey) -> str:
    """The base64 ECDSA P-256/SHA-256 signature of ``payload``, as the annotation carries it."""
    return base64.b64encode(private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


# --8<-- [start:verify]
def verify(payload: bytes, signature: str, public: ec.EllipticCurvePublicKey) -> Payload:
    """Check ``signature`` over ``payload`` with ``public``, then parse the payload strictly.

    Nothing in the payload is read before the signature is known good: until then it is anyone's.
    """
    try:
        public.verify(base64.b64decode(signature, validate=True), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError("the signature does not verify with the policy's key") from None
    try:
        document = json.loads(payload)
        critical = document["critical"]
        if set(critical) != {"identity", "image", "type"} or critical["type"] != PAYLOAD_TYPE:
            raise ValueError(f"type {critical.get('type')!r}")
        reference = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
        if not isinstance(reference, str) or not isinstance(digest, str):
            raise ValueError("reference and digest must be strings")
    except (ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"not a cosign signature payload: {e}") from None
    return Payload(reference, digest, document.get("optional"))
# --8<-- [end:verify]
