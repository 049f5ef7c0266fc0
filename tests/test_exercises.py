"""Classroom exercises (issue 10): workspaces generated from the package, graded by the chapters' own tests.

These test the tooling, for every chapter that has marked exercises; each test belongs to the
chapter it exercises (the ``chapter`` marker), so ``pytest --chapter N`` runs those of chapters
1..N. From chapter 03 on they use the chapter's own tests only (``own=True``), to stay quick.
"""

from __future__ import annotations

import ast
import csv
import functools
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minidocker.exercises import graders, labs
from minidocker.exercises.checker import FAILED, NOT_ATTEMPTED, PASSED, _halves, check, plain_words
from minidocker.exercises.marks import PACKAGE, MarkError, find_exercises, function_node, problems
from minidocker.exercises.runtree import RunTree
from minidocker.exercises.verify import Verification, format_verify, verify
from minidocker.exercises.workspace import ATTEMPTED, body_lines, new_workspace, restore, statuses

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = find_exercises(strict=False)  # a broken mark fails only its own chapter's tests
CHAPTERS = sorted({e.chapter for e in EXERCISES})


def per_chapter() -> list:
    return [pytest.param(c, id=f"chapter{c:02}", marks=pytest.mark.chapter(c)) for c in CHAPTERS]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minidocker.exercises", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


@pytest.mark.parametrize("chapter", per_chapter())
def test_marks_are_well_formed(chapter: int) -> None:
    """Every mark parses, ids are unique, and a chapter module's exercises carry its chapter."""
    assert problems(chapter=chapter) == []
    assert CHAPTERS[:2] == [1, 2]
    assert [e.id for e in EXERCISES if e.chapter == 1] == ["01.1", "01.2", "01.3", "01.4"]
    for e in find_exercises(chapter=chapter):
        doc = ast.get_docstring(ast.parse((ROOT / e.path).read_text())) or ""
        module_chapter = re.match(r"Chapter (\d\d):", doc)
        if module_chapter:
            assert int(module_chapter.group(1)) == e.chapter, f"{e.id} is marked in {e.path}"
        assert statuses(ROOT, [e]) == {e.id: ATTEMPTED}  # the reference is never a stub


def test_a_malformed_mark_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "minidocker"
    package.mkdir()
    (package / "x.py").write_text("# exercise 03.1: Title\n# hint: a\n#   b\n\ndef f():\n    pass\n")
    (package / "y.py").write_text("# exercise 03.2: T\n# --8<-- [start:g]\ndef g():\n    pass\n"
                                  "# --8<-- [end:g]\n")
    assert len(problems(package)) == 1 and "must stand right above" in problems(package)[0]
    with pytest.raises(MarkError):
        find_exercises(package)
    (package / "x.py").unlink()
    [exercise] = find_exercises(package)
    assert (exercise.id, exercise.function, exercise.module) == ("03.2", "g", "minidocker.y")


def test_chapters_list_their_generated_exercises() -> None:
    """A chapter whose Exercises section has the generated list names exactly its marked exercises."""
    for chapter in CHAPTERS:
        path = next(iter(sorted((ROOT / "chapters").glob(f"{chapter:02}-*.md"))), None)
        text = path.read_text().split("## Exercises", 1)[-1] if path else ""
        if chapter <= 2 or "minidocker.exercises" in text:
            listed = set(re.findall(rf"\b({chapter:02}\.\d+)\b", text))
            assert listed == {e.id for e in EXERCISES if e.chapter == chapter}, f"chapter {chapter:02}"


@pytest.mark.parametrize("chapter", per_chapter())
def test_fresh_workspace_fails_its_check(chapter: int, tmp_path: Path) -> None:
    """Every exercise up to the chapter is a stub; the workspace imports itself; the raw tests fail."""
    ws = new_workspace(chapter, tmp_path / "ws")
    mine = find_exercises(chapter=chapter)
    assert set(statuses(ws, mine).values()) == {NOT_ATTEMPTED}
    for e in mine:  # still parses; signature and docstring kept
        stub = function_node(ast.parse((ws / e.path).read_text()), e.function)
        reference = function_node(ast.parse((ROOT / e.path).read_text()), e.function)
        assert ast.dump(stub.args) == ast.dump(reference.args)
        assert ast.get_docstring(stub) == ast.get_docstring(reference)
    modules = sorted({e.module for e in mine})
    imported = subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}, minidocker; "
                               "print(minidocker.__file__)"], cwd=ws, capture_output=True, text=True)
    assert imported.stdout.strip() == str(ws / "minidocker" / "__init__.py"), imported.stderr
    result = cli("check", str(chapter), str(ws))
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("not attempted") == len(mine) + 1  # + the summary line
    own = [f"tests/{p.name}" for p in sorted((ws / "tests").glob(f"test_{chapter:02}_*.py"))]
    raw = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                          f"--basetemp={tmp_path / 'raw'}", *own], cwd=ws, capture_output=True,
                         text=True, timeout=600)  # -x: up to the first failure (a file may skip here)
    assert raw.returncode == 1, raw.stdout[-2000:]  # failed tests (4 would be the import guard)
    assert "NotImplementedError" in raw.stdout or "exercise" in raw.stdout


# Chapter 10's own tests take over a minute (a daemon per module). Here it is verified with one
# module, whose tests reach each of its exercises; `minidocker exercises verify 10` runs them all.
# Chapter 13's exercises (interpolation, dependency order) are reached by its file tests, no daemon.
VERIFY_TESTS = {10: ["tests/test_10_ports.py"], 13: ["tests/test_13_compose_file.py"]}


def verify_tests(chapter: int) -> list[str] | None:
    """The tests verify runs for ``chapter`` in the suite: the two quickest graders of each exercise.

    The chapter's own tests already ran in the suite; running them all again under the grader
    (about four minutes over the chapters) proves no more than the tests graders.json names for each
    exercise: they must pass with the reference and still call it (a renamed test or one that no
    longer reaches its exercise fails below), and one of them must fail with its stub.
    ``minidocker exercises verify N`` runs every test of the chapter.
    """
    if chapter in VERIFY_TESTS:
        return VERIFY_TESTS[chapter]
    recorded = graders.load()
    scope = [e for e in find_exercises(chapter=chapter) if chapter <= 2 or e.chapter == chapter]
    return sorted({t for e in scope for t in recorded.get(e.id, [])[:2]}) or None


@functools.cache
def verified(chapter: int) -> Verification:
    """verify() once per chapter: its reference run also says which tests call which exercise."""
    return verify(chapter, own=chapter > 2, tests=verify_tests(chapter))


@pytest.mark.parametrize("chapter", per_chapter())
def test_reference_passes_and_every_removal_is_caught(chapter: int) -> None:
    """The reference passes the tests; each exercise's stub alone makes at least one test fail."""
    result = verified(chapter)
    assert result.reference_failures == [], format_verify(result)
    assert result.ok, format_verify(result)
    assert set(result.caught) == {e.id for e in result.exercises}


@pytest.mark.parametrize("chapter", per_chapter())
def test_recorded_graders_still_call_their_exercises(chapter: int) -> None:
    """graders.json (the student edition's "graded by") agrees with the trace of verify's reference run.

    Every exercise has a record, and each test recorded for it (of the files verify ran) still calls
    it: a new exercise, a renamed test or a test that no longer reaches the exercise fails here
    (refresh with ``python -m minidocker.exercises graders CHAPTER``).
    """
    recorded = graders.load()
    result = verified(chapter)
    files = verify_tests(chapter) or [f"tests/test_{chapter:02}_"]
    for e in (e for e in result.exercises if e.chapter == chapter):
        assert recorded.get(e.id), f"{e.id} has no recorded graders"
        ran = [t for t in recorded[e.id] if t.startswith(tuple(files))]
        assert set(ran) <= set(result.calls[e.id]), (e.id, sorted(set(ran) - set(result.calls[e.id])))


@pytest.mark.parametrize("chapter", per_chapter())
def test_one_exercise_restored_passes_exactly_it(chapter: int, tmp_path: Path) -> None:
    """Restore one exercise and get another wrong: exactly one pass, one fail, the rest not attempted.

    The two are those the fewest tests call, and only those tests run: quick in every chapter.
    """
    ws = new_workspace(chapter, tmp_path / "ws")
    calls = verified(chapter).calls
    mine = sorted((e for e in find_exercises(chapter=chapter) if e.chapter == chapter),
                  key=lambda e: len(calls.get(e.id, ())))
    right, wrong = mine[0], mine[1]
    restore(ws, right)
    restore(ws, wrong, body='raise RuntimeError("a wrong attempt")\n')
    tests = sorted(set(calls[right.id]) | set(calls[wrong.id]))
    report = check(ws, chapter, own=chapter > 2, tests=tests)
    results = {v.exercise.id: v for v in report.verdicts}
    assert results[right.id].result == PASSED, results[right.id]
    assert results[wrong.id].result == FAILED and results[wrong.id].test and results[wrong.id].detail
    assert {v.result for k, v in results.items() if k not in (right.id, wrong.id)} <= {NOT_ATTEMPTED}
    assert not report.ok and report.others == []
    # The tests imported the workspace's copy, in pytest and in the stages they started.
    assert Path(report.package).name == "minidocker" and Path(report.package).parent.name.startswith(
        "mdcheck-")
    if chapter <= 2:  # their exercises run in stages (python -m minidocker.chroot ...) too
        assert any(origin.startswith("minidocker.") for origin in report.origins), report.origins


@pytest.mark.chapter(1)
def test_grade_three_submissions(tmp_path: Path) -> None:
    """A complete, a partial and an empty submission give the expected table, in Markdown and CSV."""
    subs = tmp_path / "submissions"
    chapter1 = find_exercises(chapter=1)
    for student in ("ada", "bob", "cy"):
        new_workspace(1, subs / student)
    for e in chapter1:
        restore(subs / "ada", e)
    restore(subs / "bob", chapter1[0])
    restore(subs / "bob", chapter1[-1], body='return "exit 1"\n')
    result = cli("grade", "1", str(subs), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "throwaway machine" in result.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    table = {(r["student"], r["exercise"]): r["result"] for r in rows}
    ids = [e.id for e in chapter1]
    expected = {("ada", i): PASSED for i in ids} | {("cy", i): NOT_ATTEMPTED for i in ids}
    expected |= {("bob", i): NOT_ATTEMPTED for i in ids[1:-1]} | {("bob", ids[0]): PASSED,
                                                                   ("bob", ids[-1]): FAILED}
    assert table == expected
    markdown = (tmp_path / "out" / "grades.md").read_text()
    assert "throwaway machine" in markdown and "| ada | 4 | 4 |" in markdown and "| cy | 0 | 4 |" in markdown
    assert "| bob | 01.4 | failed |" in markdown


@pytest.mark.chapter(2)
def test_lab_pivot_root_attack_works_until_the_defence_is_back(tmp_path: Path) -> None:
    lab = labs.LABS["02-pivot-root"]
    ws = labs.new_lab(lab.name, tmp_path / "lab")
    assert (ws / "tests" / lab.test_file).exists() and (ws / "attack.sh").exists()
    attack = [f"tests/{lab.test_file}::test_the_attack_fails"]  # the chapter's own tests: see above
    broken = check(ws, 2, tests=attack)
    assert not broken.ok and broken.verdicts[0].result == FAILED
    assert "the attack worked" in broken.verdicts[0].detail
    restore(ws, next(e for e in EXERCISES if e.id == lab.exercise))
    fixed = check(ws, 2, tests=attack)
    assert fixed.ok, [v.detail for v in fixed.verdicts] + fixed.others


@pytest.mark.chapter(6)
def test_lab_shocker_attack_works_until_the_capability_is_dropped_again(tmp_path: Path) -> None:
    from minidocker.security import elf as _elf

    if not _elf.supported():
        pytest.skip("the shocker lab's program is x86-64 machine code")
    lab = labs.LABS["06-shocker"]
    ws = labs.new_lab(lab.name, tmp_path / "lab")
    weakened = (ws / "minidocker" / "security/capabilities.py").read_text()
    assert 'base = base | {"DAC_READ_SEARCH"}' in weakened and "def tweak(" in weakened
    assert lab.secret in (ws / "README.md").read_text()
    attack = [f"tests/{lab.test_file}::test_the_attack_fails"]
    broken = check(ws, 6, tests=attack)
    assert not broken.ok and broken.verdicts[0].result == FAILED
    assert "the attack worked" in broken.verdicts[0].detail
    restore(ws, next(e for e in EXERCISES if e.id == lab.exercise))
    fixed = check(ws, 6, tests=attack)
    assert fixed.ok, [v.detail for v in fixed.verdicts] + fixed.others


@pytest.mark.chapter(11)
def test_a_daemon_started_by_an_earlier_test_runs_each_tests_own_code(tmp_path: Path) -> None:
    """The daemon outlives the test that started it: a wrong 10.3 must still fail the test it breaks."""
    ws = tmp_path / "ws"
    new_workspace(11, ws)  # with chapter 11's tests: they drive the daemon
    for exercise in EXERCISES:
        if exercise.chapter <= 11 and exercise.id != "10.3":
            restore(ws, exercise)
    wrong = next(e for e in EXERCISES if e.id == "10.3")
    source = (PACKAGE.parent / wrong.path).read_text()
    first, last = body_lines(function_node(ast.parse(source), wrong.function))
    body = textwrap.dedent("".join(source.splitlines(keepends=True)[first - 1:last]))
    assert '("-u", cfg.get("User"))' in body
    restore(ws, wrong, body=body.replace('("-u", cfg.get("User"))', '("-u", None)'))  # forgets -u
    tests = ["tests/test_11_cli.py::test_version_and_info",  # starts the module's daemon
             "tests/test_11_cli.py::test_user_workdir_env_hostname_and_hardening"]
    verdicts = {v.exercise.id: v.result for v in check(ws, 11, tests=tests).verdicts}
    assert verdicts["10.3"] == FAILED and verdicts["10.2"] == PASSED


def test_plain_words_and_halving() -> None:
    failure = {"doc": "", "message": "AssertionError: minidocker: no such thing\nassert 125 == 0"}
    assert plain_words("tests/test_01_x.py::test_exit_status_is_kept", failure) == \
        "exit status is kept: minidocker: no such thing"
    traceback = {"doc": "Maps ids.", "message": "AssertionError: Traceback (most recent call last):\n"
                 "  File \"x\", line 1\nPermissionError: [Errno 1] nope\nassert 125 == 0"}
    assert plain_words("t::test_x", traceback) == "Maps ids: PermissionError: [Errno 1] nope"
    assert _halves(frozenset({"02.1", "02.2", "02.3"})) == (frozenset({"02.1"}), frozenset({"02.2", "02.3"}))


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert cli("new", "0", str(tmp_path / "x")).returncode == 125
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("mine")
    result = cli("new", "1", str(tmp_path / "full"))
    assert result.returncode == 125 and "not empty" in result.stderr
    assert (tmp_path / "full" / "file").read_text() == "mine"
    listing = cli("list", "2")
    assert listing.returncode == 0 and "02.9" in listing.stdout and "02-pivot-root" in listing.stdout


@pytest.mark.chapter(7)
def test_check_without_the_registry_says_what_to_install(tmp_path: Path) -> None:
    """From chapter 07 the tests need docker-registry and skopeo: without them, one line, no grading."""
    ws = new_workspace(7, tmp_path / "ws")
    (tmp_path / "bin").mkdir()
    bare = {**os.environ, "PATH": str(tmp_path / "bin")}
    line = ("minidocker: the tests of chapters 01 to 07 need docker-registry and skopeo: "
            "run ./setup.sh test once (it installs them), then check again\n")
    for command in (["check", "7", str(ws)], ["grade", "7", str(tmp_path)]):
        result = subprocess.run([sys.executable, "-m", "minidocker.exercises", *command], capture_output=True,
                                text=True, env=bare, timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (125, "", line), command
    assert not (tmp_path / "grades.md").exists()
    earlier = subprocess.run([sys.executable, "-m", "minidocker.exercises", "check", "6", str(ws)],
                             capture_output=True, text=True, env=bare, timeout=60)
    assert earlier.returncode == 1 and "not attempted: keep going" in earlier.stdout  # 06 needs neither


def test_run_tree_is_removed(tmp_path: Path) -> None:
    ws = new_workspace(1, tmp_path / "ws")
    with RunTree(ws, 1, find_exercises(chapter=1), PACKAGE) as tree:
        assert (tree.path / "minidocker" / "exercises" / "_dispatch.py").exists()
        assert "_exercise_switch.install" in (tree.path / "minidocker" / "chroot/stage.py").read_text()
    assert not tree.path.exists()
