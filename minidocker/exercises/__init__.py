"""Classroom exercises generated from the engine's own code, graded offline by the chapters' own tests.

A function marked as an exercise in the package (see :mod:`minidocker.exercises.marks`) is the
reference solution; the chapter's cumulative test suite is the grader. For a class::

    python -m minidocker.exercises list [CHAPTER]            # the exercises, by chapter, and the labs
    python -m minidocker.exercises new CHAPTER DIR           # a student workspace
    python -m minidocker.exercises check CHAPTER [DIR]       # passed / failed / not attempted, per exercise
    python -m minidocker.exercises grade CHAPTER SUBMISSIONS # every workspace of a folder: Markdown + CSV
    python -m minidocker.exercises lab NAME DIR              # "break it, then fix it"
    python -m minidocker.exercises verify CHAPTER            # every exercise's removal is caught

Importing this package imports nothing else: the engine's modules import its dispatcher in the
grader's runs, and ``minidocker exercises ...`` routes to :func:`main`.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m minidocker.exercises COMMAND ...`` (and ``minidocker exercises COMMAND ...``)."""
    from minidocker.exercises.command import main as command

    return command(argv)
