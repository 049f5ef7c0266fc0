"""Chapter 13: the one error of Compose's client side: a file or project that cannot be used."""

from __future__ import annotations

__all__ = ["ComposeError"]


class ComposeError(Exception):
    """A Compose file (or project) that cannot be used: the message is one line naming where."""
