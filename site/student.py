"""The book's two editions: the teachers' shows every exercise's answer, the student's only its stub.

An exercise (see ``minidocker/exercises/marks.py``) is a function the chapter shows as a listing,
so in the teachers' edition "write this function" is "retype the listing". The student edition is
the same sources built with ``site/mkdocs-student.yml`` (``extra: edition: student``), and this
module rewrites each chapter's Markdown before the snippet extension reads it:

* every ``--8<-- "minidocker/x/y.py:NAME"`` line that includes an exercise (or the first part of a
  long one shown in parts; the later parts become a comment) is pointed at a copy of
  the module under ``.build/student/`` in which the exercise's body is the stub a student workspace
  has (signature, docstring, ``raise NotImplementedError("exercise CC.N: hint")``), with the same
  snippet markers; the listing's code fence is followed by a box with the exercise's id, title,
  hint and the tests that grade it (recorded in ``minidocker/exercises/graders.json``);
* in both editions, an exercise the chapter's text never shows gets its listing after the
  chapter's generated exercises table, so the teachers' edition has every answer;
* the one-line note at the top of each chapter for readers on a forge is dropped (the site is the
  readable version it points to), and links into the package's folders become plain text.

Rewriting the include lines (rather than the HTML afterwards) keeps the stub inside the same code
fence, highlighted like the rest, and a stub can never leak a line of the answer.

Example::

    book = Book.load(student=True)        # writes .build/student/minidocker/...
    markdown = book.page("chapters/02-namespaces.md", markdown)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.exercises import graders
from minidocker.exercises.marks import Exercise, find_exercises
from minidocker.exercises.workspace import stub_module

ROOT = Path(__file__).resolve().parent.parent
STUBS = Path(".build") / "student"  # from ROOT, which is the snippets' base path
SNIPPET = re.compile(r'^(?P<indent>[ \t]*)--8<-- "(?P<path>[^":]+):(?P<name>[\w-]+)"[ \t]*$')
FENCE = re.compile(r"^[ \t]*(```|~~~)")
FORGE_NOTE = "> Reading this on a forge?"
PACKAGE_LINK = re.compile(r"\[([^\]]+)\]\((?:\.\./)*(?:minidocker|tests)/[^)]*\)")  # code, not pages
SHOWN_TESTS = 5  # graders named under an exercise; the others are counted


def plain(text: str) -> str:
    """``text`` (a hint: a comment in the code) as Markdown that shows it unchanged: ``*`` stays ``*``."""
    return re.sub(r"([\\`*_\[\]{}()#+!|-])", r"\\\1", text).replace("<", "&lt;")


@dataclass
class Book:
    """The exercises, which of them the chapters show, and the edition being built."""

    student: bool
    exercises: dict[tuple[str, str], Exercise]  # (path, snippet) -> exercise
    shown: set[tuple[str, str]] = field(default_factory=set)
    tests: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[tuple[str, str], Exercise] = field(default_factory=dict)  # sections inside an exercise

    @classmethod
    def load(cls, student: bool, root: Path = ROOT) -> Book:
        """Read the marks and the chapters; for the student edition, write the stub modules."""
        exercises = find_exercises(root / "minidocker")
        shown = set()
        for chapter in (root / "chapters").glob("*.md"):
            for line in chapter.read_text().splitlines():
                if match := SNIPPET.match(line):
                    shown.add((match["path"], match["name"]))
        parts = {}
        for e in exercises:  # a long listing shown in parts: sections between the exercise's markers
            lines = (root / e.path).read_text().splitlines()
            first = next(i for i, line in enumerate(lines) if line.strip() == f"# --8<-- [start:{e.snippet}]")
            for line in lines[first + 1:]:
                if line.strip() == f"# --8<-- [end:{e.snippet}]":
                    break
                if match := re.match(r"\s*# --8<-- \[start:([\w-]+)\]", line):
                    parts[(e.path, match.group(1))] = e
        shown = {(e.path, e.snippet) for key, e in parts.items() if key in shown} | shown
        book = cls(student, {(e.path, e.snippet): e for e in exercises}, shown, graders.load(), parts)
        if student:
            for path in sorted({e.path for e in exercises}):
                target = root / STUBS / path
                target.parent.mkdir(parents=True, exist_ok=True)
                text = stub_module((root / path).read_text(), [e for e in exercises if e.path == path])
                if not target.exists() or target.read_text() != text:
                    target.write_text(text)
        return book

    def page(self, uri: str, markdown: str) -> str:
        """A page's Markdown for this edition (chapters change; other pages pass through)."""
        if not uri.startswith("chapters/"):
            return PACKAGE_LINK.sub(r"\1", markdown)
        lines = [line for line in markdown.splitlines() if not line.startswith(FORGE_NOTE)]
        lines = self._unshown(uri, lines)
        if self.student:
            lines = self._stubbed(lines)
        return PACKAGE_LINK.sub(r"\1", "\n".join(lines) + "\n")

    def _unshown(self, uri: str, lines: list[str]) -> list[str]:
        """Add the listings of this chapter's exercises that its text never shows."""
        number = re.match(r"chapters/(\d\d)-", uri)
        missing = [e for key, e in self.exercises.items()
                   if number and e.chapter == int(number.group(1)) and key not in self.shown]
        if not missing:
            return lines
        block = ["", "The text above does not show these exercises' functions; here they are:", ""]
        for e in sorted(missing, key=lambda e: e.number):
            block += [f"**{e.id}** `{e.function}()`, in `{e.path}`: {e.title}.", "",
                      "```python", f'--8<-- "{e.path}:{e.snippet}"', "```", ""]
        start = next((i for i, line in enumerate(lines) if line.startswith("### Generated exercises")), None)
        if start is None:
            return [*lines, *block]
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        return [*lines[:end], *block, *lines[end:]]

    def _stubbed(self, lines: list[str]) -> list[str]:
        """Point each exercise's include at its stub, and put the exercise's box after the fence."""
        result: list[str] = []
        pending: list[str] = []
        done: set[str] = set()
        for line in lines:
            match = SNIPPET.match(line)
            key = (match["path"], match["name"]) if match else None
            exercise = self.exercises.get(key) or self.parts.get(key)
            if exercise is not None and exercise.id in done:  # a later part: the stub above holds it all
                result.append(f"{match['indent']}# ... the rest of exercise {exercise.id}: see above")
                continue
            if exercise is not None:
                done.add(exercise.id)
                stub = f"{STUBS.as_posix()}/{exercise.path}:{exercise.snippet}"
                result.append(f'{match["indent"]}--8<-- "{stub}"')
                pending += self.box(exercise, match["indent"])
                continue
            result.append(line)
            if pending and FENCE.match(line):
                result += ["", *pending]
                pending = []
        return result + pending

    def box(self, e: Exercise, indent: str = "") -> list[str]:
        """The admonition under a stubbed listing: what to write, the hint, the tests that grade it."""
        tests = self.tests.get(e.id, [])
        named = ", ".join(f"`{t.removeprefix('tests/')}`" for t in tests[:SHOWN_TESTS])
        if len(tests) > SHOWN_TESTS:
            named += f" and {len(tests) - SHOWN_TESTS} more"
        title = plain(e.title).replace('"', "&quot;")
        body = [f'!!! question "Exercise {e.id}: {title}"',
                f"    Write the body of `{e.function}()` in `{e.path}` of your workspace "
                f"(`python -m minidocker.exercises new {e.chapter} DIR`)."]
        if e.hint:
            body += ["", f"    **Hint:** {plain(e.hint)}"]
        if named:
            check = f"python -m minidocker.exercises check {e.chapter} DIR"
            body += ["", f"    **Graded by** (`{check}`): {named}."]
        return [f"{indent}{line}" if line else "" for line in body] + [""]
