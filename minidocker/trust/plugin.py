"""Chapter 16's daemon plug-in: ``minidockerd --signature-policy FILE``, at every pull and every run.

The daemon (chapter 10) discovers this module and so takes a ``--signature-policy FILE`` option
(or ``"signature-policy"`` in its config file). With it:

* every pull through the daemon passes the policy before anything is stored (a hook of chapter
  07's pull), and the signatures it verified are kept (``kept.py``);
* every container created (``docker run``, ``docker create``) must be of an image the policy
  accepts *now*, checked against the kept signatures: an image pulled before the policy was set
  has none, and is refused until pulled again;
* a client may send a policy of its own with a pull (``minidocker pull --signature-policy FILE``
  sends it, keys inlined, as the query parameter ``signaturePolicy``): the image must pass both.
  Docker's API has no such parameter; dockerd would ignore it, so our client asks only us.

Example::

    $ minidockerd --signature-policy /etc/minidocker/policy.json &
    $ minidocker run 127.0.0.1:5000/unsigned true
    minidocker: Error response from daemon: run refused by policy (scope 127.0.0.1:5000, ...
"""

from __future__ import annotations

import json
import logging
from typing import Any

from minidocker.core import errors
from minidocker.images import reference
from minidocker.trust import attachments, kept
from minidocker.trust.policy import Policy

__all__ = ["QUERY", "add_daemon_arguments", "install", "read_daemon_arguments"]

QUERY = "signaturePolicy"  # POST /images/create?signaturePolicy=JSON: the client's policy (ours only)
log = logging.getLogger("minidockerd")


def add_daemon_arguments(parser: Any) -> None:
    """``minidockerd --signature-policy FILE``."""
    parser.add_argument("--signature-policy", metavar="FILE",
                        help="containers-policy.json(5) FILE: pulls and runs of images it refuses fail")


def read_daemon_arguments(args: Any, config: dict) -> None:
    """The flag wins over the config file's ``signature-policy``."""
    if getattr(args, "signature_policy", None):
        config["signature-policy"] = args.signature_policy


def install(app: Any, hooks: Any) -> None:
    """Read the daemon's policy (a bad one stops the daemon with one line) and add our hooks."""
    path = app["config"].get("signature-policy")
    try:
        app["trust.policy"] = Policy.load(path) if path else None
    except errors.InvalidArgument as e:
        raise SystemExit(f"minidockerd: {e}") from None
    hooks.image_pull.append(pull_checks)
    hooks.container_create.append(container_create)


# --8<-- [start:pull_checks]
def pull_checks(request: Any, ref: reference.Reference) -> list[Any]:
    """The checks of a pull: the daemon's policy, and the client's if it sent one (both must pass)."""
    policies = [p for p in [request.app.get("trust.policy")] if p is not None]
    if request.query.get(QUERY):
        try:
            policies.append(Policy.parse(json.loads(request.query[QUERY]), None, "sent by the client"))
        except ValueError as e:
            raise errors.InvalidArgument(f"signature policy sent by the client: not JSON: {e}") from None

    def check(reg: Any, ref: reference.Reference, digest: str) -> None:
        fetched: list[attachments.Attached] = []

        def signatures() -> list[attachments.Attached]:
            if not fetched:
                fetched.extend(attachments.fetch(reg, ref.repository, digest))
            return fetched

        for policy in policies:
            policy.check(ref, digest, signatures)
        if fetched:  # for the checks at run (container_create)
            kept.keep(ref.name, digest, fetched)

    return [check] if policies else []
# --8<-- [end:pull_checks]


# --8<-- [start:container_create]
def container_create(app: Any, config: dict[str, Any]) -> None:
    """Refuse a container whose image the daemon's policy does not accept with the kept signatures."""
    policy = app.get("trust.policy")
    if policy is None:
        return
    name = config["Config"].get("Image") or ""
    image = app["images"].store.get(name)
    try:
        named = reference.parse(name)
    except errors.InvalidArgument:  # an image ID: the names it has
        named = None
    names = [named] if named and str(named) in image.repo_tags else \
        [reference.parse(n) for n in image.repo_tags + image.repo_digests]
    ref = names[0] if names else reference.Reference("", "", digest=image.id)  # never pulled: no name
    pinned = [d.digest for d in map(reference.parse, image.repo_digests) if d.name == ref.name]
    digest = ref.digest or (pinned[0] if pinned else image.id)
    policy.check(ref, digest, lambda: kept.kept(ref.name, digest), action="run")
# --8<-- [end:container_create]
