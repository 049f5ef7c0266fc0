"""The grader's private copy of a workspace, and pytest runs in it.

``check`` never runs a workspace in place: it copies the student's package into a temporary *run
tree*, puts the grader's own tests and tools next to it, and adds one line to each module holding
exercises so that every exercise can run either the student's code or the reference, test by test
(see ``_dispatch``). pytest then runs in the tree with ``PYTHONPATH`` pointing at it, so the tests
and every stage they start import the student's package, never the installed one.

Example::

    with RunTree(Path("ws"), 2, find_exercises(chapter=2)) as tree:
        run = tree.run(plan={"student": ["02.9"]})
        run.results["tests/test_02_namespaces.py::test_minimal_dev"]["outcome"]   # "passed"
        run.trace["tests/test_02_namespaces.py::test_minimal_dev"]                # {"02.7", ...}
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.exercises import texts
from minidocker.exercises.marks import PACKAGE, Exercise, function_node
from minidocker.exercises.workspace import copy_tests, reference_tests

__all__ = ["Run", "RunTree"]

INSTALL = ("import minidocker.exercises._dispatch as _exercise_switch; "
           "_exercise_switch.install(globals(), {module!r}{function})  # added by the grader\n")


@dataclass
class Run:
    """One pytest run: outcomes per test id, which exercises each test called, and from where."""

    results: dict[str, dict[str, Any]]
    trace: dict[str, set[str]]
    origins: set[str] = field(default_factory=set)
    package: str = ""
    seconds: float = 0.0
    log: str = ""


def _instrument(path: Path, module: str, functions: Sequence[str]) -> None:
    """Switch each exercise right after its definition (on its end marker's line), and at the end."""
    try:
        source = path.read_text()
        tree = ast.parse(source)
    except (OSError, SyntaxError):
        return  # reported as a failed exercise; the tests will say the rest
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    where = len(lines)
    for node in tree.body:  # before `if __name__ == "__main__":`, which `python -m` runs
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            where = node.lineno - 1
            break
    lines.insert(where, INSTALL.format(module=module, function=""))
    for name in functions:  # bottom-up is not needed: replacing a line moves nothing
        node = function_node(tree, name)
        after = node.end_lineno if node is not None and node.end_lineno else None
        while after is not None and after < len(lines) and lines[after].startswith(" ") \
                and lines[after].lstrip().startswith("# --8<-- [end:"):  # a section's end inside it
            after += 1
        if after is not None and after < len(lines) and lines[after].startswith("# --8<-- [end:"):
            lines[after] = INSTALL.format(module=module, function=f", {name!r}")
    path.write_text("".join(lines))


def _reference_source(exercise: Exercise, package: Path) -> dict[str, Any]:
    source = (package.parent / exercise.path).read_text()
    node = function_node(ast.parse(source), exercise.function)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    text = "".join(source.splitlines(keepends=True)[first - 1:node.end_lineno])
    return {"module": exercise.module, "function": exercise.function, "path": exercise.path,
            "lineno": first, "source": text}


def _unmount_below(path: Path) -> None:
    """Detach anything a broken test left mounted in the tree, so rmtree never walks into a mount."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{path}/")), key=len, reverse=True):
        with contextlib.suppress(OSError):
            _syscalls.umount2(point, _syscalls.MNT_DETACH)


class RunTree:
    """A temporary copy of ``workspace`` ready for the grader's test runs (a context manager)."""

    def __init__(self, workspace: Path, chapter: int, exercises: Sequence[Exercise],
                 package: Path = PACKAGE, extra_tests: dict[str, str] | None = None,
                 timeout: float = 900, keep: bool = False,
                 test_chapters: Collection[int] | None = None) -> None:
        self.workspace, self.chapter, self.exercises = Path(workspace), chapter, list(exercises)
        self.test_chapters = range(1, chapter + 1) if test_chapters is None else test_chapters
        self.package, self.extra_tests, self.timeout, self.keep = package, extra_tests or {}, timeout, keep
        # Short: the tests' own sockets live below it, and a unix socket path has 108 bytes at most.
        self.path = Path(tempfile.mkdtemp(prefix="mdcheck-"))
        self.runs = 0
        self.files: list[str] = []

    def __enter__(self) -> RunTree:
        try:
            self._build()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.keep:
            print(f"minidocker exercises: run tree kept in {self.path}", file=sys.stderr)
            return
        _unmount_below(self.path)
        shutil.rmtree(self.path, ignore_errors=True)

    def _build(self) -> None:
        tree = self.path
        tree.chmod(0o755)
        student = self.workspace / "minidocker"
        source = student if student.is_dir() else self.package
        shutil.copytree(source, tree / "minidocker", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.rmtree(tree / "minidocker" / "exercises", ignore_errors=True)  # the grader's tools, not theirs
        shutil.copytree(self.package / "exercises", tree / "minidocker" / "exercises",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for path, module in sorted({(e.path, e.module) for e in self.exercises}):
            if (tree / path).is_file():
                _instrument(tree / path, module, [e.function for e in self.exercises if e.path == path])
        tests = reference_tests(self.package) or self.workspace / "tests"
        if not (tests / "conftest.py").is_file():
            raise EngineError(f"no tests to run: neither {self.package.parent / 'tests'} nor "
                              f"{self.workspace / 'tests'} exists")
        self.files = [f"tests/{name}" for name in copy_tests(tests, tree / "tests", self.test_chapters)]
        for name, text in self.extra_tests.items():
            (tree / "tests" / name).write_text(text)
            self.files.append(f"tests/{name}")
        (tree / "conftest.py").write_text(texts.WORKSPACE_CONFTEST)
        (tree / "pytest.ini").write_text(texts.pytest_ini(self.package))
        run = {"exercises": {e.id: _reference_source(e, self.package) for e in self.exercises}}
        (tree / ".run.json").write_text(json.dumps(run))

    def run(self, tests: Sequence[str] | None = None, plan: dict[str, Any] | None = None) -> Run:
        """Run pytest on ``tests`` (default: all the tree's test files) with a plan of switches."""
        n = self.runs
        self.runs += 1
        tree = self.path
        paths = {name: tree / f".{name}-{n}" for name in ("plan", "results", "trace", "log")}
        paths["plan"].write_text(json.dumps(plan or {}))
        paths["trace"].touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MINIDOCKER_EXERCISE_"))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # the tree is private: compile it once, not per stage
        env.update(PYTHONPATH=str(tree),
                   MINIDOCKER_EXERCISE_RUN=str(tree / ".run.json"),
                   MINIDOCKER_EXERCISE_TRACE=str(paths["trace"]),
                   MINIDOCKER_EXERCISE_PLAN=str(paths["plan"]),
                   MINIDOCKER_EXERCISE_RESULTS=str(paths["results"]))
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "-p", "minidocker.exercises._runner", f"--basetemp={tree / f't{n}'}",
                   *(tests if tests is not None else self.files)]
        started = time.monotonic()
        with open(paths["log"], "w") as log:
            proc = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise EngineError(f"the tests did not finish within {self.timeout:.0f} s: a function "
                                  "may hang (run check with --keep and read the run tree's .log-N)") from None
        seconds = time.monotonic() - started
        log_text = paths["log"].read_text(errors="replace")
        try:
            data = json.loads(paths["results"].read_text())
        except (OSError, ValueError):
            last = log_text.strip().splitlines()[-1:] or ["no output"]
            raise EngineError(f"the tests did not finish (after {seconds:.0f} s): {last[0]}") from None
        trace: dict[str, set[str]] = {}
        origins = set()
        for line in paths["trace"].read_text().splitlines():
            test, _, rest = line.partition("\t")
            exercise, _, origin = rest.partition("\t")
            trace.setdefault(test, set()).add(exercise)
            origins.add(origin)
        return Run(data["tests"], trace, origins, data["package"], seconds, log_text)
