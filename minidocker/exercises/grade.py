"""``grade``: check every workspace of a folder of submissions, into a Markdown and a CSV table.

Each sub-folder of the submissions folder is one student's workspace (its name is the student's).
Every exercise of the chapter gets one row: student, exercise, result (passed, failed, not
attempted), and the detail of a failure. A submission that cannot be checked at all (no package,
tests that hang) gets one row saying why, instead of stopping the grading.

Submissions are code run as root with kernel privileges: grade them on a throwaway machine.

Example::

    rows = grade(2, Path("submissions"))
    Path("grades.md").write_text(markdown(2, rows))
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from minidocker.core.process import EngineError
from minidocker.exercises.checker import PASSED, check
from minidocker.exercises.marks import PACKAGE
from minidocker.exercises.texts import ROOT_WARNING

__all__ = ["Row", "csv_table", "grade", "markdown"]


@dataclass(frozen=True)
class Row:
    """One line of the grades: a student's result on one exercise."""

    student: str
    exercise: str
    title: str
    result: str
    detail: str = ""


def grade(chapter: int, submissions: Path, package: Path = PACKAGE, timeout: float = 900,
          progress: bool = False) -> list[Row]:
    """Check each sub-folder of ``submissions`` for ``chapter``; the rows, student by student."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise EngineError(f"{submissions} is not a directory of submissions (one folder per student)")
    rows: list[Row] = []
    for folder in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if progress:
            print(f"grading {folder.name} ...", flush=True)
        try:
            report = check(folder, chapter, package, timeout)
        except EngineError as e:
            rows.append(Row(folder.name, "-", "", "error", str(e)))
            continue
        for v in report.verdicts:
            rows.append(Row(folder.name, v.exercise.id, v.exercise.title, v.result, v.detail))
        for other in report.others:
            rows.append(Row(folder.name, "-", "", "failed", other))
    return rows


def csv_table(rows: list[Row]) -> str:
    """The rows as CSV: student, exercise, title, result, detail."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "exercise", "title", "result", "detail"])
    for row in rows:
        writer.writerow([row.student, row.exercise, row.title, row.result, row.detail])
    return out.getvalue()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(chapter: int, rows: list[Row]) -> str:
    """The rows as a Markdown page: the warning, a summary per student, then every result."""
    students = list(dict.fromkeys(r.student for r in rows))
    lines = [f"# Grades: exercises of chapters 01 to {chapter:02}", "", f"> **Warning.** {ROOT_WARNING}", "",
             "| student | passed | of |", "|---|---|---|"]
    for student in students:
        mine = [r for r in rows if r.student == student and r.exercise != "-"]
        lines.append(f"| {_cell(student)} | {sum(r.result == PASSED for r in mine)} | {len(mine)} |")
    lines += ["", "| student | exercise | result | detail |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_cell(r.student)} | {r.exercise} | {r.result} | {_cell(r.detail)} |")
    return "\n".join(lines) + "\n"
