"""Exercise marks: which functions of the package are classroom exercises, with their titles and hints.

An exercise is a whole function that a chapter already shows as a snippet. Its mark is a block of
comment lines right *above* the snippet's start marker, so it is readable in the source and never
appears in the book (pymdownx.snippets includes only what lies between the markers)::

    # exercise 02.9: Pivot into the new root and detach the old one
    # hint: chdir into root; pivot_root(".", ".") stacks the old root over the new one at "/";
    #   umount2(".", MNT_DETACH) detaches it; then chdir("/").
    # --8<-- [start:pivot_into]
    def pivot_into(root: str) -> None:
        ...
    # --8<-- [end:pivot_into]

The id is ``CC.N``: the chapter, then the exercise's number in it. The hint is optional and may go
on over lines that start with ``#`` and at least two spaces. The snippet must hold exactly one
top-level function (decorators allowed), and the end marker must follow it.

Example::

    >>> [e.id for e in find_exercises() if e.chapter == 1]
    ['01.1', '01.2', '01.3', '01.4']
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PACKAGE", "Exercise", "MarkError", "find_exercises", "function_node", "problems"]

PACKAGE = Path(__file__).resolve().parent.parent  # the reference package: the code these tools ship in

MARK = re.compile(r"^# exercise (\d\d)\.(\d+): (\S.*)$")
HINT = re.compile(r"^# hint: (.*)$")
MORE = re.compile(r"^#\s{2,}(\S.*)$")
START = re.compile(r"^# --8<-- \[start:([\w-]+)\]")
END = "# --8<-- [end:{}]"


class MarkError(Exception):
    """A malformed exercise mark: the message says where and what is wrong."""


@dataclass(frozen=True)
class Exercise:
    """One marked function: ``id`` is ``"02.9"``, ``module`` the dotted name, ``path`` from the root."""

    id: str
    chapter: int
    number: int
    title: str
    hint: str
    module: str
    path: str
    function: str
    snippet: str

    @property
    def stub_message(self) -> str:
        """What the function raises in a student workspace until it is written."""
        return f"exercise {self.id}: {self.hint or self.title}"


def function_node(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The top-level function ``name`` of a parsed module, or None."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _marks_in(path: Path, root: Path) -> tuple[list[Exercise], list[tuple[int, str]]]:
    text = path.read_text()
    if "# exercise " not in text:
        return [], []
    lines = text.splitlines()
    rel = path.relative_to(root).as_posix()
    found: list[Exercise] = []
    errors: list[tuple[int, str]] = []
    tree = None
    for i, line in enumerate(lines):
        mark = MARK.match(line)
        if not mark:
            continue
        where, chapter = f"{rel}:{i + 1}", int(mark.group(1))
        hint: list[str] = []
        j = i + 1
        if j < len(lines) and HINT.match(lines[j]):
            hint.append(HINT.match(lines[j]).group(1).strip())
            j += 1
            while j < len(lines) and MORE.match(lines[j]):
                hint.append(MORE.match(lines[j]).group(1).strip())
                j += 1
        start = START.match(lines[j]) if j < len(lines) else None
        if not start:
            errors.append((chapter, f"{where}: an exercise mark must stand right above a snippet's "
                                    "start marker, '# --8<-- " "[start:NAME]'"))
            continue
        if tree is None:
            tree = ast.parse(text)
        node = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                     and min([n.lineno, *(d.lineno for d in n.decorator_list)]) == j + 2), None)
        snippet = start.group(1)
        if node is None:
            errors.append((chapter, f"{where}: snippet {snippet!r} must start with a top-level function"))
            continue
        if node.end_lineno is None or node.end_lineno >= len(lines) or \
                lines[node.end_lineno].strip() != END.format(snippet):
            errors.append((chapter, f"{where}: snippet {snippet!r} must hold only {node.name}()"))
            continue
        number = int(mark.group(2))
        module = "minidocker." + rel[:-3].replace("/", ".")
        found.append(Exercise(f"{chapter:02}.{number}", chapter, number, mark.group(3).strip(),
                              " ".join(hint), module, f"minidocker/{rel}", node.name, snippet))
    return found, errors


def _scan(package: Path) -> tuple[list[Exercise], list[tuple[int, str]]]:
    exercises: list[Exercise] = []
    errors: list[tuple[int, str]] = []
    for path in sorted(package.rglob("*.py")):
        if "exercises" in path.relative_to(package).parts or "__pycache__" in path.parts:
            continue
        found, bad = _marks_in(path, package)
        exercises += found
        errors += bad
    seen: dict[str, Exercise] = {}
    for exercise in exercises:
        if exercise.id in seen:
            errors.append((exercise.chapter, f"exercise {exercise.id} is marked twice: "
                                             f"{seen[exercise.id].path} and {exercise.path}"))
        seen[exercise.id] = exercise
    exercises.sort(key=lambda e: (e.chapter, e.number))
    return exercises, errors


def problems(package: Path = PACKAGE, chapter: int | None = None) -> list[str]:
    """Every malformed mark in ``package`` (of chapters up to ``chapter``), one line each."""
    return [text for number, text in _scan(package)[1] if chapter is None or number <= chapter]


def find_exercises(package: Path = PACKAGE, chapter: int | None = None,
                   strict: bool = True) -> list[Exercise]:
    """The exercises marked in ``package``, by chapter then number; with ``chapter``, those up to it.

    Raises :class:`MarkError` when a mark of those chapters is malformed, so that a broken mark
    never goes unnoticed (``strict=False``: skip the broken ones, e.g. to list the others).
    """
    exercises, errors = _scan(package)
    errors = [text for number, text in errors if chapter is None or number <= chapter]
    if errors and strict:
        raise MarkError("; ".join(errors))
    broken = {e.id for e in exercises if any(f"exercise {e.id} " in t for t in errors)}
    return [e for e in exercises if (chapter is None or e.chapter <= chapter) and e.id not in broken]
