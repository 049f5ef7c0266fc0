"""Student workspaces: a copy of the package with the exercises' bodies taken out, and their tests.

``new_workspace(2, "ws")`` copies ``minidocker/`` into ``ws/`` and replaces the body of every
exercise of chapters 01 and 02 by ``raise NotImplementedError("exercise 02.9: <hint>")``, keeping
the signature and the docstring. The change is made on the syntax tree's line numbers, so the rest
of each file (comments, other functions, later chapters) is untouched and the result still parses
and imports. The tests of chapters 01..02 come along, with a README that says what to do.

Example::

    ws = new_workspace(2, "/tmp/ws")         # then edit /tmp/ws/minidocker/namespaces/mounts.py ...
    statuses(ws, find_exercises(chapter=2))  # {"02.9": "not attempted", ...}
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Collection, Iterable
from pathlib import Path

from minidocker.core.process import EngineError
from minidocker.exercises import texts
from minidocker.exercises.marks import PACKAGE, Exercise, find_exercises, function_node

__all__ = ["METADATA", "body_lines", "chapter_test_files", "copy_tests", "fingerprints", "new_workspace",
           "read_metadata", "reference_tests", "replace_body", "restore", "statuses", "stub_body",
           "stub_module"]

METADATA = ".exercises.json"
NOT_ATTEMPTED, ATTEMPTED = "not attempted", "attempted"


def reference_tests(package: Path = PACKAGE) -> Path | None:
    """The project's ``tests/`` next to the reference package (None for a package installed alone)."""
    tests = package.parent / "tests"
    return tests if (tests / "conftest.py").is_file() else None


def chapter_test_files(tests: Path, chapters: Collection[int]) -> list[Path]:
    """The tests of ``chapters`` (``test_NN_*.py``); ``range(1, N + 1)`` is chapter N's cumulative suite."""
    return [p for p in sorted(tests.glob("test_[0-9][0-9]_*.py")) if int(p.name[5:7]) in chapters]


def copy_tests(tests: Path, dest: Path, chapters: Collection[int]) -> list[str]:
    """Copy the tests of ``chapters`` and every helper of ``tests/`` (never other chapters' tests)."""
    keep = {p.name for p in chapter_test_files(tests, chapters)}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (n.startswith("test_") and n.endswith(".py")
                                                          and Path(folder) == tests and n not in keep)}

    shutil.copytree(tests, dest, ignore=ignore)
    return sorted(keep)


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """The 1-based first and last line of a function's body without its docstring."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[0].lineno, node.end_lineno or body[-1].lineno


def stub_body(exercise: Exercise, indent: str) -> str:
    """``raise NotImplementedError("exercise CC.N: hint")``, wrapped to stay readable."""
    message = exercise.stub_message
    chunks = textwrap.wrap(message, 90 - len(indent), drop_whitespace=False) or [message]
    if len(chunks) == 1:
        return f"{indent}raise NotImplementedError({message!r})\n"
    inner = "".join(f"{indent}    {json.dumps(c)}\n" for c in chunks)
    return f"{indent}raise NotImplementedError(\n{inner}{indent})\n"


def replace_body(source: str, function: str, new_body: str) -> str:
    """``source`` with the body (docstring kept) of the top-level ``function`` replaced by ``new_body``.

    ``new_body`` is indented as the old body was. The result must still parse.
    """
    tree = ast.parse(source)
    node = function_node(tree, function)
    if node is None:
        raise EngineError(f"function {function}() not found")
    first, last = body_lines(node)
    lines = source.splitlines(keepends=True)
    first_line = lines[first - 1]
    indent = first_line[:len(first_line) - len(first_line.lstrip())]
    body = textwrap.indent(textwrap.dedent(new_body), indent)
    result = "".join(lines[:first - 1]) + body + "".join(lines[last:])
    ast.parse(result)
    return result


def stub_module(source: str, exercises: Iterable[Exercise]) -> str:
    """``source`` with the body of each of ``exercises`` (all in it) replaced by its stub."""
    # Replace from the bottom up so that earlier line numbers stay valid.
    tree = ast.parse(source)
    nodes = sorted(((function_node(tree, e.function), e) for e in exercises), key=lambda p: -p[0].lineno)
    lines = source.splitlines(keepends=True)
    for node, exercise in nodes:
        first, last = body_lines(node)
        indent = re.match(r"\s*", lines[first - 1]).group()
        lines[first - 1:last] = [stub_body(exercise, indent)]
    result = "".join(lines)
    ast.parse(result)
    return result


def is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef, exercise: Exercise) -> bool:
    """True when the function is still the generated stub (docstring + raise NotImplementedError)."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or not isinstance(body[0].exc, ast.Call):
        return False
    call = body[0].exc
    return (isinstance(call.func, ast.Name) and call.func.id == "NotImplementedError" and len(call.args) == 1
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
            and call.args[0].value.startswith(f"exercise {exercise.id}"))


def statuses(workspace: Path, exercises: Iterable[Exercise]) -> dict[str, str]:
    """Each exercise's state in a workspace: "not attempted", "attempted", or why it can't be run."""
    result: dict[str, str] = {}
    trees: dict[str, ast.Module | str] = {}
    for exercise in exercises:
        path = Path(workspace) / exercise.path
        if exercise.path not in trees:
            try:
                trees[exercise.path] = ast.parse(path.read_text(), str(path))
            except FileNotFoundError:
                trees[exercise.path] = f"{exercise.path} is missing"
            except SyntaxError as e:
                trees[exercise.path] = f"{exercise.path}:{e.lineno}: syntax error: {e.msg}"
        tree = trees[exercise.path]
        if isinstance(tree, str):
            result[exercise.id] = tree
            continue
        node = function_node(tree, exercise.function)
        if node is None:
            result[exercise.id] = f"{exercise.function}() is missing from {exercise.path}"
        else:
            result[exercise.id] = NOT_ATTEMPTED if is_stub(node, exercise) else ATTEMPTED
    return result


def fingerprints(exercises: Iterable[Exercise], package: Path = PACKAGE) -> dict[str, str]:
    """A short hash of each exercise's reference source: ``check`` tells when it changed since ``new``."""
    found = {}
    for e in exercises:
        source = (package.parent / e.path).read_text()
        node = function_node(ast.parse(source), e.function)
        found[e.id] = hashlib.sha256((ast.get_source_segment(source, node) or "").encode()).hexdigest()[:12]
    return found


def read_metadata(workspace: Path) -> dict:
    """The workspace's ``.exercises.json`` ({} when there is none: any copy of the package works)."""
    try:
        return json.loads((Path(workspace) / METADATA).read_text())
    except (OSError, ValueError):
        return {}


def _copy_package(package: Path, dest: Path) -> None:
    shutil.copytree(package, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def build(dest: Path, chapter: int, metadata: dict, readme: str,
          change: dict[str, str] | None = None, package: Path = PACKAGE) -> Path:
    """Write a workspace atomically: package copy (with ``change``: path -> new source), tests, README."""
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EngineError(f"{dest} already exists and is not empty: choose a new directory")
    tests = reference_tests(package)
    if tests is None:
        raise EngineError(f"no tests found next to {package}: exercises need a checkout of minidocker")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        _copy_package(package, tmp / "minidocker")
        for rel, source in (change or {}).items():
            (tmp / rel).write_text(source)
        metadata["tests"] = copy_tests(tests, tmp / "tests", range(1, chapter + 1))
        (tmp / "conftest.py").write_text(texts.WORKSPACE_CONFTEST)
        (tmp / "pytest.ini").write_text(texts.pytest_ini(package))
        (tmp / "README.md").write_text(readme)
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        tmp.chmod(0o755)
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def new_workspace(chapter: int, dest: str | Path, package: Path = PACKAGE) -> Path:
    """Create a student workspace for ``chapter`` in ``dest`` (which must not exist, or be empty)."""
    exercises = find_exercises(package, chapter)
    if not exercises:
        raise EngineError(f"chapter {chapter:02} has no exercises yet "
                          "(see 'python -m minidocker.exercises list')")
    change = {}
    for rel in sorted({e.path for e in exercises}):
        source = (package.parent / rel).read_text()
        change[rel] = stub_module(source, [e for e in exercises if e.path == rel])
    metadata = {"kind": "workspace", "chapter": chapter, "exercises": [e.id for e in exercises],
                "reference": fingerprints(exercises, package)}
    readme = texts.workspace_readme(chapter, exercises, Path(dest).resolve(), sys.executable)
    return build(Path(dest), chapter, metadata, readme, change, package)


def restore(workspace: Path, exercise: Exercise, body: str | None = None, package: Path = PACKAGE) -> None:
    """Put the reference body of ``exercise`` back into ``workspace`` (or ``body``, e.g. a wrong one).

    For answer keys and for tests of the grader: a workspace with some exercises solved.
    """
    path = Path(workspace) / exercise.path
    if body is None:  # the reference's lines as they are: re-indenting would change a multi-line string
        source = (package.parent / exercise.path).read_text()
        first, last = body_lines(function_node(ast.parse(source), exercise.function))
        text = path.read_text()
        start, end = body_lines(function_node(ast.parse(text), exercise.function))
        lines = text.splitlines(keepends=True)
        lines[start - 1:end] = source.splitlines(keepends=True)[first - 1:last]
        path.write_text("".join(lines))
        return
    path.write_text(replace_body(path.read_text(), exercise.function, body))
