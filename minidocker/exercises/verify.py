"""``verify``: prove that a chapter's exercises are gradable: the reference passes, every stub fails.

For authors marking a chapter's functions, and for teachers before handing exercises out:

1. a fresh workspace is made, and the chapter's cumulative tests run with the reference code for
   every exercise: they must all pass (and the trace tells which tests call which exercise);
2. then each exercise, alone, runs its stub from the fresh workspace (everything else the
   reference) in one of the tests that call it: that test must fail. One failing test is enough,
   so each exercise costs about one test, and each pytest run gives every exercise a different
   test: one or two runs cover a chapter.

An exercise that no test calls, or whose removal no test notices, is reported: it cannot be graded.

Example::

    result = verify(2)
    assert result.ok, format_verify(result)
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.exercises.checker import _failing, plain_words
from minidocker.exercises.marks import PACKAGE, Exercise, find_exercises
from minidocker.exercises.runtree import RunTree
from minidocker.exercises.workspace import new_workspace

__all__ = ["Verification", "format_verify", "verify"]


@dataclass
class Verification:
    """What ``verify`` found: the reference's failures, and for each exercise the test that caught it."""

    chapter: int
    exercises: list[Exercise]
    reference_failures: list[str] = field(default_factory=list)
    caught: dict[str, str] = field(default_factory=dict)  # exercise id -> "test: what it said"
    uncaught: dict[str, str] = field(default_factory=dict)  # exercise id -> why not
    calls: dict[str, list[str]] = field(default_factory=dict)  # exercise id -> the tests that call it
    tests: int = 0
    reference_seconds: float = 0.0
    seconds: float = 0.0
    runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.reference_failures and not self.uncaught


def verify(chapter: int, package: Path = PACKAGE, timeout: float = 900, rounds: int = 6,
           own: bool = False, tests: Sequence[str] | None = None) -> Verification:
    """Check that the reference passes and that each exercise's stub makes a test fail.

    With ``own``, only the chapter's own exercises and tests: quicker, for the chapter's author.
    ``tests`` (test ids or files of those chapters) runs only those, as ``check`` does: an
    exercise that none of them calls is reported.
    """
    started = time.monotonic()
    exercises = [e for e in find_exercises(package, chapter) if not own or e.chapter == chapter]
    result = Verification(chapter, exercises)
    with tempfile.TemporaryDirectory(prefix="minidocker-verify-") as tmp:
        workspace = new_workspace(chapter, Path(tmp) / "fresh", package)
        chapters = [chapter] if own else range(1, chapter + 1)
        switches = find_exercises(package, chapter)  # earlier chapters' stubs run the reference
        with RunTree(workspace, chapter, switches, package, timeout=timeout, test_chapters=chapters) as tree:
            reference = tree.run(tests, plan={"student": []})
            result.tests, result.reference_seconds = len(reference.results), reference.seconds
            failing = _failing(reference)
            for _ in range(2):  # a flaky test must fail three times in a row to count
                if failing:
                    again = tree.run(failing, plan={"student": []})
                    failing = [t for t in failing if t in _failing(again)]
            result.reference_failures = [f"{t}: {plain_words(t, reference.results[t])}" for t in failing]
            own = {e.id: f"test_{e.chapter:02}_" for e in exercises}
            candidates = {}
            for e in exercises:
                calls = [t for t in reference.results if e.id in reference.trace.get(t, ())]
                # the exercise's own chapter first, then the quickest
                calls.sort(key=lambda t: (own[e.id] not in t, reference.results[t]["duration"]))
                candidates[e.id] = calls
                result.calls[e.id] = list(calls)
                if not calls:
                    result.uncaught[e.id] = "no test calls it"
            for _ in range(rounds):  # one pytest run per round, each test once, for one exercise
                plan: dict[str, str] = {}
                for x in sorted(candidates, key=lambda x: len(candidates[x])):
                    if x in result.caught or x in result.uncaught:
                        continue
                    test = next((t for t in candidates[x] if t not in plan), None)
                    if test is not None:
                        plan[test] = x
                        candidates[x].remove(test)
                if not plan:
                    break
                # A stub may make a stage hang instead of fail: that counts as caught, after a while.
                limits = {t: max(15.0, 3 * reference.results[t]["duration"] + 5) for t in plan}
                switches = {t: [x] for t, x in plan.items()}
                run = tree.run(list(plan), plan={"tests": switches, "timeouts": limits})
                for test in _failing(run):
                    result.caught.setdefault(plan[test], f"{test}: {plain_words(test, run.results[test])}")
            for e in exercises:
                if e.id not in result.caught and e.id not in result.uncaught:
                    result.uncaught[e.id] = "its stub passed every test tried"
            result.runs = tree.runs
    result.seconds = time.monotonic() - started
    return result


def format_verify(result: Verification) -> str:
    """One line per exercise: which test catches its removal."""
    lines = [f"verify chapter {result.chapter:02}: the reference ran {result.tests} tests in "
             f"{result.reference_seconds:.1f} s; {result.runs} runs, {result.seconds:.1f} s in all"]
    lines += [f"  the REFERENCE fails: {f}" for f in result.reference_failures]
    for e in result.exercises:
        if e.id in result.caught:
            lines.append(f"  {e.id:<6} {e.function}: caught by {result.caught[e.id]}")
        else:
            lines.append(f"  {e.id:<6} {e.function}: NOT CAUGHT: {result.uncaught[e.id]}")
    lines.append("ok: every exercise can be graded." if result.ok else "NOT OK: fix the marks or the tests.")
    return "\n".join(lines)
