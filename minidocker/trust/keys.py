"""Chapter 16: signing keys in cosign's files: an encrypted private key PEM and a public key PEM.

``cosign generate-key-pair`` writes ``cosign.key`` and ``cosign.pub``; skopeo, podman and cosign
itself read them. The private key is an ECDSA P-256 key in PKCS #8 DER, encrypted with a password
the way go-securesystemslib's ``encrypted`` package does it: scrypt (N=32768, r=8, p=1, a 32-byte
salt) turns the password into a key for NaCl's secretbox (XSalsa20-Poly1305, a 24-byte nonce);
the JSON of the KDF, the cipher and the ciphertext is the PEM's body, typed ``ENCRYPTED SIGSTORE
PRIVATE KEY``. The public key is a plain ``PUBLIC KEY`` PEM (SubjectPublicKeyInfo).

The password comes from ``COSIGN_PASSWORD`` (cosign's variable; an empty one means no password),
else from a prompt on the terminal.

Example::

    >>> private, public = generate()
    >>> pem = encrypt_private_key(private, b"s3cret")
    >>> decrypt_private_key(pem, b"s3cret").public_key() == public
    True
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from minidocker.core.errors import InvalidArgument

__all__ = ["KeyError_", "decrypt_private_key", "encrypt_private_key", "generate", "load_private_key",
           "load_public_key", "password", "public_pem", "write_pair"]

PRIVATE_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")  # new, then old name
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1  # the only parameters the readers accept
MAX_KEY_FILE = 64 << 10  # a key file is a few hundred bytes: never read more than this


class KeyError_(InvalidArgument):  # (not the builtin KeyError)
    """A key file that cannot be read: malformed, or the password is wrong."""


def generate() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]:
    """A fresh ECDSA P-256 key pair, cosign's default."""
    private = ec.generate_private_key(ec.SECP256R1())
    return private, private.public_key()


# --8<-- [start:encrypt]
def encrypt_private_key(private: ec.EllipticCurvePrivateKey, secret: bytes) -> bytes:
    """The ``ENCRYPTED SIGSTORE PRIVATE KEY`` PEM of ``private`` under the password ``secret``."""
    import nacl.secret
    import nacl.utils

    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    salt, nonce = os.urandom(32), nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext  # Poly1305 tag, then the bytes
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731  (Go's []byte in JSON)
    envelope = {"kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                        "salt": b64(salt)},
                "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(sealed)}
    return _pem(PRIVATE_TYPES[0], json.dumps(envelope, separators=(",", ":")).encode())
# --8<-- [end:encrypt]


# --8<-- [start:decrypt]
def decrypt_private_key(pem: bytes, secret: bytes) -> ec.EllipticCurvePrivateKey:
    """The private key in a cosign key file; :class:`KeyError_` (one line) if the password is wrong."""
    import nacl.exceptions
    import nacl.secret

    kind, body = _unpem(pem)
    if kind not in PRIVATE_TYPES:
        raise KeyError_(f"not a cosign private key (a {kind or 'non-PEM'} file)")
    try:
        envelope = json.loads(body)
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        params = kdf["params"]
        salt, nonce = base64.b64decode(kdf["salt"]), base64.b64decode(cipher["nonce"])
        sealed = base64.b64decode(envelope["ciphertext"])
    except (ValueError, KeyError, TypeError) as e:
        raise KeyError_(f"malformed encrypted key: {e}") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise KeyError_(f"unsupported key encryption {kdf.get('name')}/{cipher.get('name')}")
    if (params.get("N"), params.get("r"), params.get("p")) != (SCRYPT_N, SCRYPT_R, SCRYPT_P):
        raise KeyError_("unexpected scrypt parameters (refused: they could make us work for hours)")
    key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret)
    try:
        der = nacl.secret.SecretBox(key).decrypt(sealed, nonce)
    except (nacl.exceptions.CryptoError, ValueError):
        raise KeyError_("decryption failed: wrong password?") from None
    private = serialization.load_der_private_key(der, None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise KeyError_("the key is not an ECDSA key")
    return private
# --8<-- [end:decrypt]


def public_pem(public: ec.EllipticCurvePublicKey) -> bytes:
    """The ``PUBLIC KEY`` PEM (SubjectPublicKeyInfo), as in ``cosign.pub``."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """The ECDSA public key of a ``PUBLIC KEY`` PEM; :class:`KeyError_` if it is not one."""
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise KeyError_(f"not a public key PEM: {e}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise KeyError_("the public key is not an ECDSA key")
    return public


def read_bounded(path: str | Path) -> bytes:
    """A key file's bytes, refusing a file larger than any key (a device, a mistake)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise KeyError_(f"cannot read key {path}: {e.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise KeyError_(f"{path}: larger than {MAX_KEY_FILE} bytes, not a key")
    return data


def load_private_key(path: str | Path, secret: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """The private key in the cosign key file ``path``; the password from :func:`password` if not given."""
    return decrypt_private_key(read_bounded(path), password(f"Enter password for private key {path}: ")
                               if secret is None else secret)


def password(prompt: str, confirm: bool = False) -> bytes:
    """``COSIGN_PASSWORD`` if set (even empty), else asked on the terminal (twice with ``confirm``)."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    import getpass

    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise KeyError_("the passwords do not match")
    return first.encode()


def write_pair(prefix: str, secret: bytes) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (0600, never over an existing file) and ``PREFIX.pub``; return both paths."""
    private, public = generate()
    key, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (key, pub):
        if path.exists():
            raise InvalidArgument(f"{path} exists: refusing to overwrite a key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encrypt_private_key(private, secret))
    pub.write_bytes(public_pem(public))
    return key, pub


def _pem(kind: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode()


def _unpem(data: bytes) -> tuple[str, bytes]:
    """The type and body of the first PEM block of ``data`` (``("", b"")`` if there is none)."""
    text = data.decode("ascii", "replace")
    begin = text.find("-----BEGIN ")
    if begin < 0:
        return "", b""
    head_end = text.find("-----", begin + 11)
    kind = text[begin + 11:head_end]
    end = text.find(f"-----END {kind}-----", head_end)
    if head_end < 0 or end < 0:
        return "", b""
    try:
        return kind, base64.b64decode("".join(text[head_end + 5:end].split()))
    except ValueError:
        return "", b""
