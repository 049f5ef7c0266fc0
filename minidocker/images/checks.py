"""Chapter 07: checks a later chapter adds to ``pull``: an image refused before anything is stored.

A pull learns the digest of what it is about to fetch (the manifest or index a tag points at)
before it stores a byte. A later chapter may want a say right there (refuse an image whose
signatures a policy does not accept, say). This chapter cannot name a later one, so it offers a
registry instead: a module ``minidocker/<package>/pullcheck.py`` (found by ``core.plugins``)
registers an *option* of ``pull``, a flag and a function that turns the flag's value into a
:data:`Check`; ``pull(..., checks=[...])`` calls each check with the registry, the reference and
the digest, and a check that raises stops the pull with its one line.

Example::

    >>> register_option("--only-from", "REGISTRY", "refuse images of other registries", make_check)
    >>> [o.flag for o in options()]
    ['--only-from', ...]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minidocker.core import plugins

__all__ = ["Check", "PullOption", "options", "register_option"]

# check(registry, reference, digest): raise one of core.errors' errors to refuse the image
Check = Callable[[Any, Any, str], None]


@dataclass(frozen=True)
class PullOption:
    """An option of ``pull`` that a later chapter adds: ``make(value)`` is the check it asks for."""

    flag: str
    metavar: str
    help: str
    make: Callable[[str], Check]


_OPTIONS: dict[str, PullOption] = {}


# --8<-- [start:register_option]
def register_option(flag: str, metavar: str, help: str, make: Callable[[str], Check]) -> None:
    """Add ``flag VALUE`` to ``pull``: ``make(VALUE)`` gives the check to run (registered once per flag)."""
    _OPTIONS[flag] = PullOption(flag, metavar, help, make)


def options() -> list[PullOption]:
    """The options the plug-ins registered (their ``pullcheck`` modules imported on first use)."""
    plugins.discover("pullcheck")
    return sorted(_OPTIONS.values(), key=lambda o: o.flag)
# --8<-- [end:register_option]
