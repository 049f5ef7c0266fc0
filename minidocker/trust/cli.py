"""Chapter 16: ``minidocker trust``: make a key, sign an image in its registry, inspect its signatures.

Run it (no daemon needed: signing talks to the registry, as ``cosign`` does)::

    minidocker trust key generate [--output PREFIX]     # PREFIX.key (encrypted) and PREFIX.pub
    minidocker trust sign [--key FILE] IMAGE             # a signature next to IMAGE's manifest
    minidocker trust inspect [--key FILE] IMAGE          # its signatures, verified with FILE if given
    minidocker pull --signature-policy FILE IMAGE        # a pull by the daemon, under FILE too

The password of the key comes from ``COSIGN_PASSWORD`` or the terminal. ``sign`` binds the digest
the registry serves for IMAGE *now* to IMAGE's name as written (with its tag, as skopeo writes
it, so that ``matchRepoDigestOrExact`` accepts a pull by that tag), and ``--identity`` says
another name (cosign's ``REGISTRY/REPOSITORY``, for ``matchRepository``).

Example::

    $ COSIGN_PASSWORD=pw minidocker trust key generate --output cosign
    Private key written to cosign.key
    Public key written to cosign.pub
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from minidocker.core import stage as _stage
from minidocker.core.errors import InvalidArgument
from minidocker.images import distribution, reference
from minidocker.trust import attachments, keys, signature

__all__ = ["inspect", "main", "pull_command", "sign"]


# --8<-- [start:sign]
def sign(image: str, key: Any, identity: str | None = None) -> tuple[str, str]:
    """Sign what ``image`` names in its registry with the private ``key``; return (digest, ``.sig`` tag)."""
    ref = reference.parse(image)
    reg = distribution.connect(ref.registry)
    digest = ref.digest or reg.resolve(ref.repository, ref.reference) \
        or reg.get_manifest(ref.repository, ref.reference).digest
    named = identity or (str(ref.with_tag(ref.tag)) if ref.tag else ref.name)
    payload = signature.make_payload(named, digest)
    return digest, attachments.attach(reg, ref.repository, digest, payload, signature.sign(payload, key))
# --8<-- [end:sign]


def inspect(image: str, public: Any = None) -> dict[str, Any]:
    """The signatures stored for ``image``: each payload, and whether it verifies with ``public``."""
    ref = reference.parse(image)
    reg = distribution.connect(ref.registry)
    digest = ref.digest or reg.resolve(ref.repository, ref.reference) \
        or reg.get_manifest(ref.repository, ref.reference).digest
    found = []
    for attached in attachments.fetch(reg, ref.repository, digest):
        entry: dict[str, Any] = {"Signature": attached.signature, "Verified": None}
        try:
            entry["Payload"] = json.loads(attached.payload)
        except ValueError:
            entry["Payload"] = attached.payload.decode("utf-8", "replace")
        if public is not None:
            try:
                payload = signature.verify(attached.payload, attached.signature, public)
                entry["Verified"] = payload.digest == digest
            except signature.SignatureError:
                entry["Verified"] = False
        found.append(entry)
    return {"Name": str(ref), "Digest": digest, "SignatureTag": attachments.signature_tag(digest),
            "Signatures": found}


def pull_command(client: Any, argv: list[str]) -> int:
    """``minidocker pull [--signature-policy FILE] IMAGE``: the client's pull, with our daemon's check.

    The policy goes to the daemon with the request, its key files read here and sent as ``keyDatas``.
    Only minidockerd reads it: against another daemon the flag is refused rather than ignored.
    """
    from minidocker.client import images as client_images

    if not any(a == "--signature-policy" or a.startswith("--signature-policy=") for a in argv):
        return client_images.pull(client, argv)
    p = argparse.ArgumentParser(prog="minidocker pull")
    p.add_argument("--signature-policy", metavar="FILE", required=True)
    p.add_argument("image")
    opts = p.parse_args(argv)
    document = _inline_keys(opts.signature_policy)
    version = client.json("GET", "/version")
    if (version.get("Platform") or {}).get("Name") != "minidocker":
        raise InvalidArgument("--signature-policy: this daemon is not minidockerd and would ignore the "
                              "policy (set one in the daemon's own configuration instead)")
    from minidocker.trust.plugin import QUERY

    name, tag = client_images._split_ref(opts.image)
    for event in client.stream_json("POST", "/images/create", {"fromImage": name, "tag": tag,
                                                               QUERY: json.dumps(document)},
                                    headers=client_images._auth_headers(name)):
        if event.get("status") in ("Downloading", "Extracting", "Waiting"):
            continue
        prefix = f"{event['id']}: " if event.get("id") else ""
        print(f"{prefix}{event.get('status', '')}", flush=True)
    return 0


def _inline_keys(path: str) -> dict[str, Any]:
    """The policy file at ``path``, checked, with each ``keyPath``/``keyPaths`` read into ``keyDatas``."""
    import base64
    from pathlib import Path

    from minidocker.trust.policy import MAX_POLICY, Policy

    Policy.load(path)  # the file's errors here, in one line, before the daemon is asked
    with open(path, "rb") as f:
        document = json.loads(f.read(MAX_POLICY))
    base = Path(path).resolve().parent
    for table in [{"": document["default"]}, *(document.get("transports") or {}).values()]:
        for requirements in table.values():
            for requirement in requirements:
                files = ([requirement.pop("keyPath")] if "keyPath" in requirement else []) + \
                    list(requirement.pop("keyPaths", None) or [])
                if files:  # the daemon reads none of the client's files: each key goes as data
                    requirement["keyDatas"] = [base64.b64encode(keys.read_bounded(base / f)).decode()
                                               for f in files] + list(requirement.pop("keyDatas", None) or [])
    return document


def _parser() -> argparse.ArgumentParser:
    parser = _stage._Parser(prog="minidocker trust", description="signed images (sigstore's format)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_stage._Parser)
    key = sub.add_parser("key").add_subparsers(dest="key_command", required=True, parser_class=_stage._Parser)
    key.add_parser("generate").add_argument("--output", default="cosign", metavar="PREFIX")
    p = sub.add_parser("sign")
    p.add_argument("--key", default="cosign.key", metavar="FILE")
    p.add_argument("--identity", metavar="REFERENCE", help="the name signed (default: IMAGE as written)")
    p.add_argument("image")
    p = sub.add_parser("inspect")
    p.add_argument("--key", metavar="FILE", help="a public key to verify the signatures with")
    p.add_argument("image")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "key":
        private, public = keys.write_pair(args.output, keys.password("Enter password for private key: ",
                                                                     confirm=True))
        print(f"Private key written to {private}\nPublic key written to {public}")
    elif args.command == "sign":
        digest, tag = sign(args.image, keys.load_private_key(args.key), args.identity)
        print(f"Signed {reference.parse(args.image)} ({digest}): {tag}")
    else:
        public = keys.load_public_key(keys.read_bounded(args.key)) if args.key else None
        print(json.dumps([inspect(args.image, public)], indent=4))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``minidocker trust COMMAND ...``; 0, or 125 with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _stage.guarded(lambda: _dispatch(_parser().parse_args(argv)))
