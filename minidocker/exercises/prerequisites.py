"""What a chapter's tests need from the machine beyond ``./setup.sh``: outside programs, by chapter.

``check`` grades an exercise by the chapters' own tests, and from chapter 07 on those tests talk to
real peers: Debian's ``docker-registry`` and ``skopeo``. Plain ``./setup.sh`` installs only what
the engine needs; ``./setup.sh test`` installs the peers too. Without them a test would fail or
skip for a reason that is not the student's, and a correct exercise would be marked failed. So
``check`` and ``grade`` look first and stop with one line that says what to install.

Example::

    >>> needed(6)
    ()
    >>> needed(7)
    ('docker-registry', 'skopeo')
"""

from __future__ import annotations

import shutil

from minidocker.core.process import EngineError

__all__ = ["PROGRAMS", "missing", "needed", "require"]

# The first chapter whose tests need each program (the tests from there on keep needing it).
PROGRAMS = {"docker-registry": 7, "skopeo": 7}


def needed(chapter: int) -> tuple[str, ...]:
    """The outside programs the tests of chapters 01..``chapter`` run."""
    return tuple(name for name, first in PROGRAMS.items() if first <= chapter)


def missing(chapter: int, path: str | None = None) -> list[str]:
    """Those of :func:`needed` not found on ``path`` (default: ``$PATH``)."""
    return [name for name in needed(chapter) if shutil.which(name, path=path) is None]


def require(chapter: int, path: str | None = None) -> None:
    """Raise :class:`EngineError` (one line) when the chapter's tests lack a program."""
    absent = missing(chapter, path)
    if absent:
        raise EngineError(f"the tests of chapters 01 to {chapter:02} need {' and '.join(absent)}: "
                          "run ./setup.sh test once (it installs them), then check again")
