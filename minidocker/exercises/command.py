"""The exercises' command line: ``list``, ``new``, ``check``, ``grade``, ``lab``, ``verify``, ``graders``.

Example::

    main(["new", "2", "/tmp/ws"])      # 0
    main(["check", "2", "/tmp/ws"])    # 1 until every exercise passes
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from minidocker.core import stage as _stage
from minidocker.core.process import EngineError
from minidocker.exercises.marks import PACKAGE, MarkError, find_exercises

__all__ = ["main"]


def _chapter(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise argparse.ArgumentTypeError(f"invalid chapter {text!r}: a number such as 2 or 02")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = _stage._Parser(prog="python -m minidocker.exercises",
                            description="Classroom exercises generated from minidocker's own code.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="the exercises by chapter, and the labs")
    p.add_argument("chapter", nargs="?", type=_chapter, metavar="CHAPTER", help="up to this chapter")
    p = sub.add_parser("new", help="create a student workspace for chapters 01..CHAPTER")
    p.add_argument("chapter", type=_chapter, metavar="CHAPTER")
    p.add_argument("dir", type=Path, metavar="DIR", help="a new (or empty) directory")
    p = sub.add_parser("check", help="run the chapters' tests against a workspace, per exercise")
    p.add_argument("chapter", type=_chapter, metavar="CHAPTER")
    p.add_argument("dir", type=Path, nargs="?", default=Path("."), metavar="DIR")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the run tree (to read the test logs)")
    p.add_argument("--timeout", type=float, default=900, metavar="S", help="per pytest run (default 900)")
    p = sub.add_parser("grade", help="check every workspace of a folder: grades.md and grades.csv")
    p.add_argument("chapter", type=_chapter, metavar="CHAPTER")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR", help="one folder per student")
    p.add_argument("--out", type=Path, metavar="DIR", help="where to write them (default: SUBMISSIONS_DIR)")
    p.add_argument("--timeout", type=float, default=900, metavar="S", help="per pytest run (default 900)")
    p = sub.add_parser("lab", help='"break it, then fix it": a workspace with a defence removed')
    p.add_argument("name", nargs="?", metavar="NAME", help="the lab (without it: list the labs)")
    p.add_argument("dir", type=Path, nargs="?", metavar="DIR")
    p = sub.add_parser("verify", help="for authors: the reference passes, every removal is caught")
    p.add_argument("chapter", type=_chapter, metavar="CHAPTER")
    p.add_argument("--own", action="store_true", help="only the chapter's own exercises and tests")
    p = sub.add_parser("graders", help="for authors: record which tests call each exercise (graders.json)")
    p.add_argument("chapters", nargs="*", type=_chapter, metavar="CHAPTER", help="default: every chapter")
    return parser


def _list(chapter: int | None) -> int:
    from minidocker.exercises.labs import LABS

    exercises = find_exercises(PACKAGE, chapter)
    if not exercises:
        print("no exercises yet")
    width = max((len(e.function) for e in exercises), default=10)
    for number in sorted({e.chapter for e in exercises}):
        mine = [e for e in exercises if e.chapter == number]
        print(f"chapter {number:02}  ({', '.join(dict.fromkeys(e.path for e in mine))})")
        for e in mine:
            print(f"  {e.id:<6} {e.function:<{width}}  {e.title}")
    labs = [lab for lab in LABS.values() if chapter is None or lab.chapter <= chapter]
    if labs:
        print("labs  (python -m minidocker.exercises lab NAME DIR)")
        for lab in labs:
            print(f"  {lab.name:<16} chapter {lab.chapter:02}, exercise {lab.exercise}: {lab.title}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from minidocker.exercises.checker import check, format_report
    from minidocker.exercises.prerequisites import require

    require(args.chapter)
    report = check(args.dir, args.chapter, timeout=args.timeout, keep=args.keep)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps({
            "workspace": str(report.workspace), "chapter": report.chapter, "ok": report.ok,
            "seconds": round(report.seconds, 2), "runs": report.runs, "tests": report.tests,
            "package": report.package, "others": report.others,
            "exercises": [{"id": v.exercise.id, "function": v.exercise.function, "result": v.result,
                           "detail": v.detail, "test": v.test} for v in report.verdicts]}, indent=2))
    return 0 if report.ok else 1


def _grade(args: argparse.Namespace) -> int:
    from minidocker.exercises.grade import csv_table, grade, markdown
    from minidocker.exercises.prerequisites import require
    from minidocker.exercises.texts import ROOT_WARNING

    require(args.chapter)
    print(f"WARNING: {ROOT_WARNING}", file=sys.stderr)
    rows = grade(args.chapter, args.submissions, timeout=args.timeout, progress=True)
    out = args.out or args.submissions
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(args.chapter, rows)
    (out / "grades.md").write_text(table)
    (out / "grades.csv").write_text(csv_table(rows))
    print(table)
    print(f"written: {out / 'grades.md'} and {out / 'grades.csv'}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from minidocker.exercises.labs import LABS, new_lab

    if not args.name:
        for lab in LABS.values():
            print(f"{lab.name:<16} chapter {lab.chapter:02}, exercise {lab.exercise}: {lab.title}")
        return 0
    if args.dir is None:
        raise EngineError("lab NAME DIR: say where to create the lab's workspace")
    where = new_lab(args.name, args.dir)
    print(f"lab {args.name} ready in {where}: read {where / 'README.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; errors are one line and exit status 125."""

    def body() -> int:
        if (PACKAGE.parent / ".exercises.json").exists():
            raise EngineError(f"this is a workspace's copy of minidocker ({PACKAGE}): run the exercises "
                              "tool of the project itself (python -P -m minidocker.exercises ...)")
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        try:
            if args.command == "list":
                return _list(args.chapter)
            if args.command == "new":
                from minidocker.exercises.workspace import new_workspace

                where = new_workspace(args.chapter, args.dir)
                print(f"workspace for chapters 01 to {args.chapter:02} ready in {where}: "
                      f"read {where / 'README.md'}")
                return 0
            if args.command == "check":
                return _check(args)
            if args.command == "grade":
                return _grade(args)
            if args.command == "lab":
                return _lab(args)
            if args.command == "graders":
                from minidocker.exercises.graders import GRADERS, update

                chapters = args.chapters or sorted({e.chapter for e in find_exercises(PACKAGE)})
                update(chapters, progress=True)
                print(f"written: {GRADERS}")
                return 0
            from minidocker.exercises.verify import format_verify, verify

            result = verify(args.chapter, own=args.own)
            print(format_verify(result))
            return 0 if result.ok else 1
        except MarkError as e:
            raise EngineError(f"malformed exercise mark: {e}") from None

    return _stage.guarded(body)
