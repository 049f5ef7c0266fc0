"""The grader's pytest plugin (``-p minidocker.exercises._runner``): per-test switches, results as JSON.

Before each test it sets ``MINIDOCKER_EXERCISE_TEST`` (the test's id, for the trace) and
``MINIDOCKER_EXERCISE_STUDENT`` (which exercises run the student's code, from the plan in
``$MINIDOCKER_EXERCISE_PLAN``); at the end it writes every test's outcome, first failure message,
docstring and duration to ``$MINIDOCKER_EXERCISE_RESULTS``, with the path of the ``minidocker``
package the tests imported: the proof that they ran the workspace, not an installed copy. A plan
may give tests a time limit (``"timeouts": {test: seconds}``): past it, the test fails.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

_PLAN: dict[str, Any] = {}
_RESULTS: dict[str, dict[str, Any]] = {}
_KEYS = ("MINIDOCKER_EXERCISE_TEST", "MINIDOCKER_EXERCISE_STUDENT")


class TimeLimit(Exception):
    """A test ran longer than the plan allows (a stub that makes a stage hang, say)."""


def _alarm(signum: int, frame: object) -> None:
    raise TimeLimit(f"the test took longer than the {_PLAN.get('_limit', 0):.0f} s allowed")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MINIDOCKER_EXERCISE_PLAN"):
        _PLAN.update(json.loads(Path(os.environ["MINIDOCKER_EXERCISE_PLAN"]).read_text()))
        current = Path(os.environ["MINIDOCKER_EXERCISE_PLAN"]).with_suffix(".current")
        _PLAN["_current"] = os.open(current, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        _set_current("", [])
        os.environ["MINIDOCKER_EXERCISE_CURRENT"] = str(current)  # before any test starts a daemon


def _set_current(test: str, student: list[str]) -> None:
    """Tell every process of this run, long-lived ones too, which test runs now (see ``_dispatch``)."""
    from minidocker.exercises._dispatch import CURRENT_SIZE

    record = f"{test}\n{','.join(student)}\n".encode()
    if "_current" in _PLAN and len(record) <= CURRENT_SIZE:
        os.pwrite(_PLAN["_current"], record.ljust(CURRENT_SIZE), 0)


def _entry(nodeid: str) -> dict[str, Any]:
    return _RESULTS.setdefault(nodeid, {"outcome": "passed", "message": "", "doc": "", "duration": 0.0})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    saved = {key: os.environ.get(key) for key in _KEYS}
    student = _PLAN.get("tests", {}).get(item.nodeid, _PLAN.get("student", []))
    os.environ["MINIDOCKER_EXERCISE_TEST"] = item.nodeid
    os.environ["MINIDOCKER_EXERCISE_STUDENT"] = ",".join(student)
    _set_current(item.nodeid, list(student))
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    _entry(item.nodeid)["doc"] = doc.strip().split("\n")[0]
    limit = _PLAN.get("timeouts", {}).get(item.nodeid)
    if limit:
        _PLAN["_limit"] = limit
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        if limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _set_current(saved["MINIDOCKER_EXERCISE_TEST"] or "",
                     (saved["MINIDOCKER_EXERCISE_STUDENT"] or "").split(",") if saved[
                         "MINIDOCKER_EXERCISE_STUDENT"] else [])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text[:3000]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _entry(report.nodeid)
    entry["duration"] += report.duration
    if report.failed and entry["outcome"] != "failed":
        entry.update(outcome="failed", message=_message(report), phase=report.when)
    elif report.skipped and entry["outcome"] == "passed":
        entry.update(outcome="skipped", message=_message(report))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _entry(report.nodeid or "collection").update(outcome="failed", message=_message(report),
                                                     phase="collect")


def pytest_sessionfinish(session: pytest.Session) -> None:
    import minidocker

    if os.environ.get("MINIDOCKER_EXERCISE_RESULTS"):
        Path(os.environ["MINIDOCKER_EXERCISE_RESULTS"]).write_text(json.dumps(
            {"package": str(Path(minidocker.__file__).resolve().parent), "tests": _RESULTS}))
