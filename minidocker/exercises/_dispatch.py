"""In the grader's copy of a workspace only: each exercise switches between student code and reference.

In its private copy of a workspace (never in the workspace itself) the grader puts, right after each
exercise function, on the line of its snippet end marker (so no line number moves):
``install(globals(), "minidocker.namespaces.mounts", "pivot_into")``; and one more at the end of the
module for any exercise a student deleted. That replaces the function by a switch *before* the rest of the
module can take a reference to it (a ``STAGES`` tuple, say). At every call, the switch

* records "test X called exercise E" in the trace file (``$MINIDOCKER_EXERCISE_TRACE``), opened at
  import, so the record works after chroot, pivot_root or setuid in the container too;
* runs the student's function if E is listed in ``$MINIDOCKER_EXERCISE_STUDENT``, else the reference
  (compiled from the source in ``$MINIDOCKER_EXERCISE_RUN`` into the module's own globals, so it
  calls the other exercises through their switches).

The grader's pytest plugin sets both variables per test; stages started by a test inherit them.
A process that outlives its test (a daemon a test module starts once, and its monitors) would keep
the first test's values, so the plugin also writes the current test and its student exercises to
the file ``$MINIDOCKER_EXERCISE_CURRENT`` before each test; the switch reads that, through a file
descriptor opened at import (it works after chroot and pivot_root too), in preference.
An exception escaping a student's function in a *forked child* ends that child (exit 125): it must
never unwind into the code of the process that forked it (pytest, say). Standard library only: this
module is imported by ``core/process.py``, at the bottom of the package.
"""

from __future__ import annotations
import __future__

import functools
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the switch is on the path of every command (see below)
    from collections.abc import Callable
    from typing import Any

__all__ = ["install"]

_MAIN_PID = os.getpid()
_SEEN: set[tuple[str, str]] = set()
_TRACE: int | None = None
_CONFIG: dict[str, Any] | None = None
_CURRENT: int | None = None
_TRACE_ID: tuple[int, int] | None = None
_CURRENT_ID: tuple[int, int] | None = None
CURRENT_SIZE = 4096  # the current-test record: one page, written whole by one pwrite


def _open(variable: str, flags: int) -> tuple[int | None, tuple[int, int] | None]:
    """Open the file ``$variable`` names; the descriptor and its identity, or (None, None)."""
    try:
        fd = os.open(os.environ[variable], flags | os.O_CLOEXEC, 0o644)
    except (KeyError, OSError):
        return None, None
    info = os.fstat(fd)
    return fd, (info.st_dev, info.st_ino)


def _ours(fd: int | None, identity: tuple[int, int] | None) -> bool:
    """Whether ``fd`` is still the file we opened: a process that closes every descriptor it does
    not pass on (the exec helper does, before it joins a container) may reuse the number."""
    if fd is None:
        return False
    try:
        info = os.fstat(fd)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == identity


def _config() -> dict[str, Any] | None:
    global _CONFIG, _TRACE, _TRACE_ID, _CURRENT, _CURRENT_ID
    if _CONFIG is None and os.environ.get("MINIDOCKER_EXERCISE_RUN"):
        import json  # only in a graded run: a student's `minidocker ps` keeps its import budget

        with open(os.environ["MINIDOCKER_EXERCISE_RUN"]) as f:
            _CONFIG = json.load(f)
        _TRACE, _TRACE_ID = _open("MINIDOCKER_EXERCISE_TRACE", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        _CURRENT, _CURRENT_ID = _open("MINIDOCKER_EXERCISE_CURRENT", os.O_RDONLY)
    return _CONFIG


def _current() -> tuple[str, list[str]]:
    """The test now running and the exercises that run the student's code in it."""
    global _CURRENT, _CURRENT_ID
    if _CURRENT is not None and not _ours(_CURRENT, _CURRENT_ID):  # closed under us: open it again
        _CURRENT, _CURRENT_ID = _open("MINIDOCKER_EXERCISE_CURRENT", os.O_RDONLY)
    if _CURRENT is not None:
        try:
            test, student = os.pread(_CURRENT, CURRENT_SIZE, 0).decode().split("\n")[:2]
            return test, student.split(",")
        except (OSError, ValueError):
            pass
    return os.environ.get("MINIDOCKER_EXERCISE_TEST", ""), os.environ.get("MINIDOCKER_EXERCISE_STUDENT",
                                                                           "").split(",")


def _origin() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec else os.path.basename(sys.argv[0] if sys.argv else "?")


def _record(exercise: str, test: str) -> None:
    global _TRACE, _TRACE_ID
    if _TRACE is None or (test, exercise) in _SEEN:
        return
    if not _ours(_TRACE, _TRACE_ID):  # closed under us (see _ours): open it again, or give up
        _TRACE, _TRACE_ID = _open("MINIDOCKER_EXERCISE_TRACE", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        if _TRACE is None:
            return
    _SEEN.add((test, exercise))
    try:
        os.write(_TRACE, f"{test}\t{exercise}\t{_origin()}\n".encode())
    except OSError:
        pass


def _switch(exercise: str, name: str, student: Callable | None, reference: Callable) -> Callable:
    @functools.wraps(reference)
    def switch(*args: Any, **kwargs: Any) -> Any:
        test, student_exercises = _current()
        _record(exercise, test)
        if exercise not in student_exercises:
            return reference(*args, **kwargs)
        if student is None:
            raise NotImplementedError(f"exercise {exercise}: {name}() is missing from the workspace")
        try:
            return student(*args, **kwargs)
        except BaseException as e:
            if os.getpid() == _MAIN_PID:
                raise
            code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 125
            try:
                os.write(2, f"minidocker: exercise {exercise} ({name}): {type(e).__name__}: {e}\n".encode())
            finally:
                os._exit(code)

    switch.__exercise__ = exercise  # type: ignore[attr-defined]
    return switch


def _reference(namespace: dict[str, Any], where: dict[str, Any]) -> Callable:
    """Compile the reference function (or method: inside a stand-in class) in the module's globals."""
    lineno, source, method = where["lineno"], where["source"], "." in where["function"]
    if method:  # an indented method: a class line right above it keeps the line numbers
        source = "\n" * (lineno - 2) + "class _exercise_reference_:\n" + source
    else:
        source = "\n" * (lineno - 1) + source
    code = compile(source, f"<reference {where['path']}>", "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)
    if not method:
        return namespace[where["function"]]
    holder = namespace.pop("_exercise_reference_")
    return holder.__dict__[where["function"].rsplit(".", 1)[1]]


def install(namespace: dict[str, Any], module: str, function: str | None = None) -> None:
    """Replace ``function`` (default: every exercise not switched yet) of ``module`` by a switch.

    A method (``Class.method``) is switched in its class, so it must run once the class exists: the
    grader's line at the end of the module does it.
    """
    config = _config()
    if not config:
        return
    for exercise, where in config["exercises"].items():
        name = where["function"]
        if where["module"] != module or function not in (None, name):
            continue
        *path, attribute = name.split(".")
        owner: Any = namespace.get(path[0]) if path else None
        if path and not isinstance(owner, type):
            continue  # the class is not defined (yet)
        holder = owner.__dict__ if path else namespace
        student = holder.get(attribute)
        if getattr(student, "__exercise__", None) == exercise:
            continue
        switch = _switch(exercise, name, student, _reference(namespace, where))
        if path:
            setattr(owner, attribute, switch)
        else:
            namespace[name] = switch
