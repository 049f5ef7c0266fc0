"""``check``: run a chapter's cumulative tests against a workspace and judge each exercise on its own.

How a test result becomes an exercise's verdict, in as few pytest runs as possible:

1. An exercise whose body is still the generated stub is *not attempted*: it runs the reference,
   so that it blocks nothing else, and it is not run at all when nothing is attempted.
2. One run of the cumulative suite with the student's code for every attempted exercise. The trace
   says which exercises each test called. An exercise passes when every test that called it
   passed. (Attempted exercises that no test reached, because an earlier one failed first, get
   one more run of the suite with only their code.)
3. A failing test is then run again with the student's code for a *part* of the exercises it
   called and the reference for the rest, halving until the exercises that make it fail alone
   are found (group testing: a handful of rounds, each one pytest run for all failing tests at
   once). An exercise fails only when a test fails with its code alone, twice: never a flaky
   test's fault, never another exercise's.

So a workspace with one exercise written passes exactly that exercise, a complete and correct one
takes a single run, and a failure is always pinned on the exercise that causes it.

Example::

    report = check(Path("ws"), 2)
    print(format_report(report)); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.core.process import EngineError
from minidocker.exercises import labs
from minidocker.exercises.marks import PACKAGE, Exercise, find_exercises
from minidocker.exercises.runtree import Run, RunTree
from minidocker.exercises.workspace import ATTEMPTED, NOT_ATTEMPTED, fingerprints, read_metadata, statuses

__all__ = ["FAILED", "NOT_ATTEMPTED", "PASSED", "Report", "Verdict", "check", "format_report", "plain_words"]

PASSED, FAILED = "passed", "failed"


@dataclass
class Verdict:
    """One exercise's result: passed, failed (with what went wrong, in which test) or not attempted."""

    exercise: Exercise
    result: str
    detail: str = ""
    test: str = ""


@dataclass
class Report:
    """Everything ``check`` found out about one workspace."""

    workspace: Path
    chapter: int
    verdicts: list[Verdict]
    others: list[str] = field(default_factory=list)  # failures no single exercise explains
    changed: list[str] = field(default_factory=list)  # exercises whose reference changed since `new`
    tests: int = 0
    runs: int = 0
    seconds: float = 0.0
    package: str = ""  # where the tests imported minidocker from
    origins: set[str] = field(default_factory=set)  # the processes that ran exercises
    lab: str = ""

    @property
    def ok(self) -> bool:
        return not self.others and all(v.result == PASSED for v in self.verdicts)

    def count(self, result: str) -> int:
        return sum(v.result == result for v in self.verdicts)


def plain_words(test: str, result: dict) -> str:
    """A failed test's first complaint, readable: its docstring (or name), then the first line of why."""
    name = test.split("::")[-1]
    what = result.get("doc") or re.sub(r"\[.*\]$", "", name).removeprefix("test_").replace("_", " ")
    raw = result.get("message", "").splitlines()
    if raw and raw[0].strip().endswith("Traceback (most recent call last):"):
        raw = [line for line in raw[1:] if line and not line[0].isspace()] or raw  # the exception itself
    lines = [re.sub(r"^(AssertionError|E)\b:?\s*", "", line).strip() for line in raw]
    why = next((line for line in lines if line), "it failed")
    if len(why) > 200:
        why = why[:197] + "..."
    if result.get("phase") in ("setup", "teardown"):
        why = f"in its {result['phase']}: {why}"
    return f"{what.rstrip('.')}: {why}"


def _failed(exercise: Exercise, test: str, result: dict) -> Verdict:
    return Verdict(exercise, FAILED, plain_words(test, result), test)


def _halves(candidates: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    ordered = sorted(candidates)
    return frozenset(ordered[:len(ordered) // 2]), frozenset(ordered[len(ordered) // 2:])


def _failing(run: Run) -> list[str]:
    return [t for t, r in run.results.items() if r["outcome"] == "failed"]


def check(workspace: Path, chapter: int, package: Path = PACKAGE, timeout: float = 900,
          keep: bool = False, own: bool = False, tests: Sequence[str] | None = None) -> Report:
    """Judge every exercise of chapters 1..``chapter`` in ``workspace`` (see the module's docstring).

    With ``own``, judge only the chapter's own exercises, with its own tests (quicker; for authors).
    ``tests`` (test ids) runs only those: exercises no test of them reaches fail, so pass all of the
    tests that call the exercises you care about.
    """
    started = time.monotonic()
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise EngineError(f"workspace {workspace} is not a directory: create one with "
                          f"'python -m minidocker.exercises new {chapter} DIR'")
    meta = read_metadata(workspace)
    lab = labs.LABS.get(meta.get("lab", "")) if meta.get("kind") == "lab" else None
    exercises = [e for e in find_exercises(package, chapter) if not own or e.chapter == chapter]
    extra: dict[str, str] = {}
    if lab:
        chapter = max(chapter, lab.chapter)
        exercises = [e for e in find_exercises(package, lab.chapter) if e.id == lab.exercise]
        extra = {lab.test_file: lab.test_source()}
    state = statuses(workspace, exercises)
    if lab:
        state = {k: ATTEMPTED if v == NOT_ATTEMPTED else v for k, v in state.items()}
    verdicts = {e.id: Verdict(e, NOT_ATTEMPTED) if state[e.id] == NOT_ATTEMPTED else
                Verdict(e, FAILED, state[e.id]) for e in exercises if state[e.id] != ATTEMPTED}
    attempted = [e for e in exercises if state[e.id] == ATTEMPTED]
    report = Report(workspace, chapter, [], lab=lab.name if lab else "")
    made = meta.get("reference", {})
    now = fingerprints([e for e in exercises if e.id in made], package)
    report.changed = [x for x, print_ in now.items() if made[x] != print_]
    if attempted:
        chapters = [chapter] if own else range(1, chapter + 1)
        # Every stub of the workspace must be able to switch to the reference, judged or not.
        switches = find_exercises(package, max(chapter, int(meta.get("chapter") or 0)))
        with RunTree(workspace, chapter, switches, package, extra, timeout, keep, chapters) as tree:
            _judge(tree, attempted, verdicts, report, tests)
            report.runs = tree.runs
    report.verdicts = [verdicts[e.id] for e in exercises]
    report.seconds = time.monotonic() - started
    return report


def _judge(tree: RunTree, attempted: list[Exercise], verdicts: dict[str, Verdict], report: Report,
           tests: Sequence[str] | None = None, max_rounds: int = 24) -> None:
    ids = {e.id for e in attempted}
    by_id = {e.id: e for e in attempted}
    whole = tree.run(tests, plan={"student": sorted(ids)})
    report.tests, report.package, report.origins = len(whole.results), whole.package, whole.origins
    order = list(whole.results)
    reached = {x for calls in whole.trace.values() for x in calls} & ids
    # (test, candidates, known to fail with them): does the test fail because of one of them?
    items: list[tuple[str, frozenset[str], bool]] = []
    orphans: list[str] = []
    for test in _failing(whole):
        calls = frozenset(whole.trace.get(test, set()) & ids)
        if calls:
            items.append((test, calls, True))
        else:
            orphans.append(test)
    unreached = ids - reached
    if unreached:  # an earlier exercise failed first: run these on their own, once
        alone = tree.run(tests, plan={"student": sorted(unreached)})
        report.origins |= alone.origins
        reached |= {x for calls in alone.trace.values() for x in calls} & ids
        items += [(t, frozenset(alone.trace.get(t, set()) & unreached), True) for t in _failing(alone)
                  if alone.trace.get(t, set()) & unreached]
    culprits: set[str] = set()
    strikes: set[tuple[str, str]] = set()
    first_calls = {t: calls for t, calls, _ in items}
    blamed: set[str] = set()
    for _ in range(max_rounds):
        plan: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {}  # test -> (run, rest, known)
        waiting = []
        for test, candidates, known in items:
            candidates = candidates - culprits  # a known culprit needs no more proof
            if not candidates:
                continue
            if test in plan:
                waiting.append((test, candidates, known))
            elif known and len(candidates) > 1:
                half, rest = _halves(candidates)
                plan[test] = (half, rest, True)
            else:
                plan[test] = (candidates, frozenset(), False)
        for test in orphans:
            plan[test] = (frozenset(), frozenset(), False)
        if not plan:
            break
        run = tree.run(list(plan), plan={"tests": {t: sorted(c) for t, (c, _, _) in plan.items()}})
        report.origins |= run.origins
        items = waiting
        for test, (ran, rest, split) in plan.items():
            result = run.results.get(test, {"outcome": "failed"})
            reached |= run.trace.get(test, set()) & ids
            failed = result["outcome"] == "failed"
            if not ran:  # an orphan: failing with the reference code only, twice
                if failed:
                    report.others.append(f"{test}: {plain_words(test, result)}")
                continue
            if failed and len(ran) == 1 and (test, *ran) not in strikes:
                strikes.add((test, *ran))  # once more alone, to be sure: a flaky test must not decide
                items.append((test, ran, True))
            elif failed and len(ran) == 1:
                culprit = next(iter(ran))
                culprits.add(culprit)
                blamed.add(test)
                if culprit not in verdicts:
                    verdicts[culprit] = _failed(by_id[culprit], test, result)
            elif failed:
                items.append((test, ran, True))
            if split:
                items.append((test, rest, not failed))  # the other half: guilty for sure if this one passed
        orphans = []
    for exercise in attempted:
        if exercise.id not in verdicts:
            verdicts[exercise.id] = Verdict(exercise, PASSED) if exercise.id in reached else \
                Verdict(exercise, FAILED, "no test of these chapters reaches it: nothing can check it")
    together = [t for t in order if len(first_calls.get(t, ())) > 1 and t not in blamed
                and not first_calls[t] & culprits]
    if together:  # no exercise fails them alone: does the workspace as a whole still fail them?
        again = tree.run(together, plan={"student": sorted(ids)})
        for test in _failing(again):
            report.others.append(f"{test}: fails only with all your exercises together: "
                                 f"{plain_words(test, again.results[test])}")


def format_report(report: Report) -> str:
    """The report as the student reads it: one line per exercise, the hint under each failure."""
    chapters = f"chapters 01 to {report.chapter:02}" if report.chapter > 1 else "chapter 01"
    what = f"lab {report.lab}" if report.lab else f"exercises of {chapters}"
    lines = [f"{what} in {report.workspace}: {report.tests} tests in {report.runs} runs, "
             f"{report.seconds:.1f} s"]
    width = max((len(v.exercise.function) for v in report.verdicts), default=10)
    for v in report.verdicts:
        e = v.exercise
        head = f"  {e.id:<6} {e.function:<{width}}  "
        if v.result == FAILED:
            lines.append(f"{head}FAILED: {v.detail}")
            pad = " " * len(head)
            if v.test:
                lines.append(f"{pad}(test: {v.test})")
            lines.append(f"{pad}hint: {e.hint or e.title}")
        else:
            lines.append(f"{head}{v.result}")
    if report.changed:
        lines.append(f"  note: the reference of {', '.join(report.changed)} changed since this workspace was "
                     "made: grade with the version of minidocker that made it, or make a new one")
    for other in report.others:
        lines.append(f"  also failing, with every exercise checked on its own: {other}")
    done, total = report.count(PASSED), len(report.verdicts)
    verdict = "all done." if report.ok else "keep going."
    if report.lab:
        verdict = "the defence is back: the attack fails." if report.ok else "the attack still works."
    lines.append(f"{done} of {total} passed, {report.count(FAILED)} failed, "
                 f"{report.count(NOT_ATTEMPTED)} not attempted: {verdict}")
    return "\n".join(lines)
