"""Chapter 16's ``pull`` option: ``--signature-policy FILE``, checked before anything is stored.

Chapter 07's pull finds this module (``images/checks.py`` discovers ``minidocker/*/pullcheck.py``)
and so takes ``python -m minidocker.images pull --signature-policy FILE NAME``: the policy is read
once, and the digest the pull is about to fetch must satisfy the scope that names the image,
its signatures fetched from the same repository (``attachments.py``) only when a
``sigstoreSigned`` requirement asks for them.

Example::

    $ python -m minidocker.images pull --signature-policy policy.json 127.0.0.1:5000/app:v1
    pull refused by policy (scope 127.0.0.1:5000/app, sigstoreSigned): no signature for sha256:4b3e…
"""

from __future__ import annotations

from typing import Any

from minidocker.images import checks
from minidocker.trust import attachments
from minidocker.trust.policy import Policy

__all__ = ["policy_check"]


# --8<-- [start:policy_check]
def policy_check(policy: Policy | str) -> checks.Check:
    """The pull check of a policy (or of the policy file at that path): raise ``Refused`` or return."""
    policy = policy if isinstance(policy, Policy) else Policy.load(policy)

    def check(reg: Any, ref: Any, digest: str) -> None:
        policy.check(ref, digest, lambda: attachments.fetch(reg, ref.repository, digest))

    return check
# --8<-- [end:policy_check]


checks.register_option("--signature-policy", "FILE",
                       "refuse an image the containers-policy.json(5) FILE does not accept", policy_check)
