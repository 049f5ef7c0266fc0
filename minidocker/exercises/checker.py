"""``check``: run a chapter's cumulative tests against a workspace and judge each exercise on its own.

How a test result becomes an exercise's verdict, in as few pytest runs as possible:

1. An exercise whose body is still the generated stub is *not attempted*: it runs the reference,
   so that it blocks nothing else, and it is not run at all when nothing is attempted.
2. One run of the cumulative suite with the student's code for every attempted exercise. The trace
   says which exercises each test called. An exercise passes when every test that called it
   passed; it fails when a failing test called no other attempted exercise.
3. The rest (a failing test that called several attempted exercises, or an exercise no test
   reached) is settled by running just those tests again with the student's code for that one
   exercise and the reference for all the others. Those reruns are packed into as few pytest
   runs as possible (a test may run once per run, each time for another exercise).

So a workspace with one exercise written passes exactly that exercise, a complete and correct one
takes a single run, and a failure is always pinned on the exercise that causes it.

Example::

    report = check(Path("ws"), 2)
    print(format_report(report)); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from minidocker._process import EngineError
from minidocker.exercises import labs
from minidocker.exercises.marks import PACKAGE, Exercise, find_exercises
from minidocker.exercises.runtree import Run, RunTree
from minidocker.exercises.workspace import ATTEMPTED, NOT_ATTEMPTED, read_metadata, statuses

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


def _pack(jobs: dict[str, list[str]]) -> list[dict[str, str]]:
    """Spread (exercise -> tests) jobs over runs in which each test appears at most once."""
    runs: list[dict[str, str]] = []
    for exercise, tests in jobs.items():
        for test in tests:
            slot = next((r for r in runs if test not in r), None)
            if slot is None:
                slot = {}
                runs.append(slot)
            slot[test] = exercise
    return runs


def _failing(run: Run) -> list[str]:
    return [t for t, r in run.results.items() if r["outcome"] == "failed"]


def check(workspace: Path, chapter: int, package: Path = PACKAGE, timeout: float = 900,
          keep: bool = False, own: bool = False) -> Report:
    """Judge every exercise of chapters 1..``chapter`` in ``workspace`` (see the module's docstring).

    With ``own``, judge only the chapter's own exercises, with its own tests (quicker; for authors).
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
    if attempted:
        chapters = [chapter] if own else range(1, chapter + 1)
        # Every stub of the workspace must be able to switch to the reference, judged or not.
        switches = find_exercises(package, max(chapter, int(meta.get("chapter") or 0)))
        with RunTree(workspace, chapter, switches, package, extra, timeout, keep, chapters) as tree:
            _judge(tree, attempted, verdicts, report)
            report.runs = tree.runs
    report.verdicts = [verdicts[e.id] for e in exercises]
    report.seconds = time.monotonic() - started
    return report


def _judge(tree: RunTree, attempted: list[Exercise], verdicts: dict[str, Verdict], report: Report) -> None:
    ids = {e.id for e in attempted}
    whole = tree.run(plan={"student": sorted(ids)})
    report.tests, report.package, report.origins = len(whole.results), whole.package, whole.origins
    order = list(whole.results)
    failing = _failing(whole)
    reached = {x for calls in whole.trace.values() for x in calls}
    jobs: dict[str, list[str]] = {}
    later: dict[str, list[str]] = {}  # more failures to confirm, if the first ones pass alone
    for exercise in attempted:
        mine = [t for t in order if exercise.id in whole.trace.get(t, ())]
        bad = [t for t in mine if t in failing]
        alone = [t for t in bad if whole.trace[t] & ids == {exercise.id}]
        if mine and not bad:
            verdicts[exercise.id] = Verdict(exercise, PASSED)
        elif not mine:  # no test reached it (an earlier exercise failed first): run them all
            jobs[exercise.id] = order
        else:  # confirm its failures with this exercise alone (two suffice when no other code ran)
            jobs[exercise.id] = alone[:2] + [t for t in bad if t not in alone]
            later[exercise.id] = alone[2:]
    orphans = [t for t in failing if not whole.trace.get(t, set()) & ids]
    if orphans:  # failing with the reference code only: confirm once (a flaky test must not count)
        jobs[""] = orphans
    # A failure counts once seen twice: in the whole run then alone, or alone twice for an exercise
    # that the whole run never reached. So a flaky test never fails a student.
    once = {x for x, tests in jobs.items() if x and tests is order}
    confirmed: set[str] = set()
    while jobs:
        again: dict[str, list[str]] = {}
        for plan in _pack(jobs):
            rerun = tree.run(list(plan), plan={"tests": {t: [x] if x else [] for t, x in plan.items()}})
            report.origins |= rerun.origins
            for test in order:
                if test not in plan or test not in rerun.results:
                    continue
                exercise_id = plan[test]
                reached |= rerun.trace.get(test, set())
                if rerun.results[test]["outcome"] != "failed":
                    continue
                if not exercise_id:
                    confirmed.add(test)
                elif exercise_id in once:
                    again.setdefault(exercise_id, []).append(test)
                elif exercise_id not in verdicts:
                    exercise = next(e for e in attempted if e.id == exercise_id)
                    verdicts[exercise_id] = _failed(exercise, test, rerun.results[test])
        once -= set(again)
        for x, tests in later.items():
            if tests and x not in verdicts and x not in again:
                again[x] = tests
        jobs, later = again, {}
    for exercise in attempted:
        if exercise.id not in verdicts:
            verdicts[exercise.id] = Verdict(exercise, PASSED) if exercise.id in reached else \
                Verdict(exercise, FAILED, "no test of these chapters reaches it: nothing can check it")
    failed = {x for x, v in verdicts.items() if v.result == FAILED}
    together = [t for t in failing if t not in orphans and not whole.trace.get(t, set()) & failed]
    if together:  # each exercise passes alone: does the workspace as a whole still fail them?
        again = tree.run(together, plan={"student": sorted(ids)})
        confirmed |= set(_failing(again))
    for test in order:
        if test in confirmed:
            report.others.append(f"{test}: {plain_words(test, whole.results[test])}")


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
    for other in report.others:
        lines.append(f"  also failing, with every exercise checked on its own: {other}")
    done, total = report.count(PASSED), len(report.verdicts)
    verdict = "all done." if report.ok else "keep going."
    if report.lab:
        verdict = "the defence is back: the attack fails." if report.ok else "the attack still works."
    lines.append(f"{done} of {total} passed, {report.count(FAILED)} failed, "
                 f"{report.count(NOT_ATTEMPTED)} not attempted: {verdict}")
    return "\n".join(lines)
