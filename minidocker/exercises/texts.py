"""The files a workspace gets besides the package and the tests: README, pytest.ini, a guard conftest."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Sequence
from pathlib import Path

from minidocker.exercises.marks import Exercise

__all__ = ["ROOT_WARNING", "WORKSPACE_CONFTEST", "exercise_table", "pytest_ini", "workspace_readme"]

ROOT_WARNING = ("Submissions run as root with kernel privileges: a submission can do anything to the "
                "machine that grades it. Grade only on a throwaway machine (a VM you can delete).")

# The workspace's root conftest: loaded by pytest before tests/conftest.py, it makes sure that the
# tests (and every stage they start, through PYTHONPATH) import this workspace's minidocker, never
# an installed one; and it stops a forked child whose exception would unwind into pytest itself.
WORKSPACE_CONFTEST = '''\
"""Added by minidocker.exercises: the tests import *this* workspace's minidocker, nothing else."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
import minidocker  # noqa: E402

if Path(minidocker.__file__).resolve().parent != HERE / "minidocker":
    raise pytest.UsageError(f"the tests would import {minidocker.__file__}, not {HERE / 'minidocker'}: "
                            "run them from the workspace with 'python -m pytest'")
MAIN_PID = os.getpid()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """A forked child (an unfinished exercise that never returns) must not go on running pytest."""
    if os.getpid() != MAIN_PID:
        if call.excinfo is not None:
            print(f"minidocker: in a forked child: {call.excinfo.exconly()}", file=sys.stderr)
        os._exit(125)
    yield
'''


def pytest_ini(package: Path) -> str:
    """A pytest.ini with the project's markers, so the copied tests run with --strict-markers."""
    markers = ["chapter(n): the chapter a test belongs to"]
    try:
        with open(package.parent / "pyproject.toml", "rb") as f:
            markers = tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"] or markers
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    lines = "".join(f"    {m}\n" for m in markers)
    return f"[pytest]\ntestpaths = tests\naddopts = -ra --strict-markers\nmarkers =\n{lines}"


def exercise_table(exercises: Sequence[Exercise]) -> str:
    """A Markdown table of exercises: id, where, what to write."""
    rows = "".join(f"| {e.id} | `{e.path}`: `{e.function}()` | {e.title} |\n" for e in exercises)
    return "| exercise | function | what to write |\n|---|---|---|\n" + rows


def workspace_readme(chapter: int, exercises: Sequence[Exercise], where: Path, python: str) -> str:
    """The README of a student workspace: what to do, and how to check it."""
    py, ws = shlex.quote(python), shlex.quote(str(where))
    hints = "".join(f"* **{e.id} {e.title}** (`{e.path}`, `{e.function}()`): {e.hint}\n"
                    for e in exercises)
    return f"""# minidocker exercises: chapters 01 to {chapter:02}

This is a copy of minidocker in which the functions below have lost their bodies: each one now
only raises `NotImplementedError("exercise CC.N: ...")`. Their signatures and docstrings are still
there. Everything else is the real engine, so you can run it while you work.

{exercise_table(exercises)}
Write them back, in any order: each one is checked on its own, with the real code around it.
Read the chapters of the book first: they explain every function you have to write, and the man
pages they name are your best friends.

## Check your work

As root (containers need it):

```console
# {py} -m minidocker.exercises check {chapter} {ws}
```

runs the tests of chapters 01 to {chapter:02} (they are in `tests/`) against *this* copy and prints,
for every exercise, `passed`, `failed` with the first thing that went wrong and the hint, or
`not attempted`. It exits with 0 only when every exercise passes.

Try the engine of this workspace directly (from this directory, so that Python imports this copy):

```console
# cd {ws}
# ROOTFS=$({py} -m minidocker.rootfs)
# {py} -m minidocker.chroot $ROOTFS -- /bin/sh -c 'echo hello from $(pwd)'
# {py} -m minidocker.namespaces --hostname box $ROOTFS -- /bin/sh -c 'echo $$; hostname'
# {py} -m pytest tests/test_01_chroot.py -x     # the raw tests, all of them at once
```

An unfinished function raises its exercise's message, so the stages that need it fail with it.

## Hints

{hints}"""
