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
top-level function (decorators allowed), or exactly one method of a top-level class (the mark and the
markers then indented as the method is), and the end marker must follow it. Only the start and end
markers of sections inside it (a long listing shown in parts) may stand between them and it. A
method's exercise is named ``Class.method``: ``Ipam.allocate`` is exercise 05.12.

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

MARK = re.compile(r"^( *)# exercise (\d\d)\.(\d+): (\S.*)$")
HINT = re.compile(r"^# hint: (.*)$")  # these three match the line without the mark's indentation
MORE = re.compile(r"^#\s{2,}(\S.*)$")
START = re.compile(r"^# --8<-- \[start:([\w-]+)\]")
END = "# --8<-- [end:{}]"
ENDS = re.compile(r"^# --8<-- \[end:[\w-]+\]$")


class MarkError(Exception):
    """A malformed exercise mark: the message says where and what is wrong."""


@dataclass(frozen=True)
class Exercise:
    """One marked function: ``id`` is ``"02.9"``, ``module`` the dotted name, ``path`` from the root.

    ``function`` is the function's name, or ``Class.method`` for a method.
    """

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
    """The top-level function ``name`` of a parsed module, or the method ``Class.method``; or None."""
    body: list[ast.stmt] = tree.body
    *classes, name = name.split(".")
    for class_name in classes:
        found = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
        if found is None:
            return None
        body = found.body
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every top-level function and every method of a top-level class, with its exercise name."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [(f"{node.name}.{n.name}", n) for n in node.body
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return found


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
        indent, chapter = mark.group(1), int(mark.group(2))
        where = f"{rel}:{i + 1}"

        def line(k: int, indent: str = indent) -> str:  # line k without the mark's indentation, or ""
            return lines[k][len(indent):] if k < len(lines) and lines[k].startswith(indent) else ""

        hint: list[str] = []
        j = i + 1
        if HINT.match(line(j)):
            hint.append(HINT.match(line(j)).group(1).strip())
            j += 1
            while MORE.match(line(j)):
                hint.append(MORE.match(line(j)).group(1).strip())
                j += 1
        start = START.match(line(j))
        if not start:
            errors.append((chapter, f"{where}: an exercise mark must stand right above a snippet's "
                                    "start marker, '# --8<-- " "[start:NAME]'"))
            continue
        if tree is None:
            tree = ast.parse(text)
        k = j + 1
        while START.match(line(k)):  # sections of the listing (a long one shown in parts) may start here
            k += 1
        name, node = next(((q, n) for q, n in _functions(tree)
                           if min([n.lineno, *(d.lineno for d in n.decorator_list)]) == k + 1
                           and n.col_offset == len(indent)), ("", None))
        snippet = start.group(1)
        if node is None:
            errors.append((chapter, f"{where}: snippet {snippet!r} must start with a top-level function "
                                    "or a method of a top-level class"))
            continue
        end = node.end_lineno or len(lines)
        while end < len(lines) and ENDS.match(lines[end].strip()) and \
                lines[end].strip() != END.format(snippet):  # and its sections may end here
            end += 1
        if end >= len(lines) or lines[end].strip() != END.format(snippet):
            errors.append((chapter, f"{where}: snippet {snippet!r} must hold only {name}()"))
            continue
        number = int(mark.group(3))
        module = "minidocker." + rel[:-3].replace("/", ".")
        found.append(Exercise(f"{chapter:02}.{number}", chapter, number, mark.group(4).strip(),
                              " ".join(hint), module, f"minidocker/{rel}", name, snippet))
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
