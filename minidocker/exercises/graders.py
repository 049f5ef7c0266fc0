"""Which tests grade each exercise: the grader's trace of a reference run, recorded in ``graders.json``.

``check`` learns at every run which tests call which exercise (the switches' trace, see
``_dispatch``). The student edition of the book names those tests under each exercise, and it is
built without running anything, so the trace of a reference run of each chapter's own tests is
recorded here, quickest test first. ``tests/test_exercises.py`` compares it with the trace of its
own verify runs, so it cannot go stale unnoticed; an author refreshes it after changing a chapter's
tests or marks:

    python -m minidocker.exercises graders 5        # chapter 05's own tests, about a minute here
    python -m minidocker.exercises graders          # every chapter with exercises

Example::

    >>> "tests/test_02_namespaces.py::test_setup_error_is_one_line_125" in load()["02.9"]
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from minidocker.core.atomic import atomic_write
from minidocker.exercises.marks import PACKAGE, find_exercises

__all__ = ["GRADERS", "load", "record", "update"]

GRADERS = Path(__file__).resolve().with_name("graders.json")


def load(path: Path = GRADERS) -> dict[str, list[str]]:
    """Exercise id -> the tests of its chapter that call it, quickest first ({} when none recorded)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record(chapter: int, package: Path = PACKAGE, timeout: float = 1800) -> dict[str, list[str]]:
    """Run chapter ``chapter``'s own tests with the reference code and return who called what."""
    from minidocker.exercises.runtree import RunTree

    exercises = find_exercises(package, chapter)
    with RunTree(package.parent, chapter, exercises, package, timeout=timeout,
                 test_chapters=[chapter]) as tree:
        run = tree.run(plan={"student": []})
    took = {test: result.get("duration", 0.0) for test, result in run.results.items()}
    return {e.id: sorted((t for t, calls in run.trace.items() if e.id in calls and t in took),
                         key=lambda t: (took[t], t))
            for e in exercises if e.chapter == chapter}


def update(chapters: Iterable[int], package: Path = PACKAGE, path: Path = GRADERS,
           progress: bool = False) -> dict[str, list[str]]:
    """Record ``chapters`` again and rewrite ``path``, keeping the other chapters' records."""
    data = load(path)
    for chapter in chapters:  # written after each chapter: a long run keeps what it has done
        found = record(chapter, package)
        marked = {e.id for e in find_exercises(package)}
        data = {k: v for k, v in data.items() if int(k.split(".")[0]) != chapter} | found
        data = {k: data[k] for k in sorted(data, key=lambda k: tuple(map(int, k.split(".")))) if k in marked}
        atomic_write(path, (json.dumps(data, indent=1) + "\n").encode())
        if progress:
            print(f"chapter {chapter:02}: {len(found)} exercises, "
                  f"{sum(bool(v) for v in found.values())} called by a test", flush=True)
    return data
