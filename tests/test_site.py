"""The book's site builds with ``mkdocs build --strict``, in both editions, and shows what it should.

* The teachers' edition (``site/mkdocs.yml``): every snippet marker resolves, every link works.
* The student edition (``site/mkdocs-student.yml``, see ``site/student.py``) builds beside it, and
  no exercise's answer is in it: a distinctive line of each exercise's body is in the teachers'
  HTML and not in the student's (pages and search index), while its signature is in both.
* The notebooks' pages show a run: figures and outputs. The suite runs the notebooks before this
  file (tests/conftest.py builds the site last), so they are executed here only when
  ``.build/notebooks/`` has no run of the notebook as committed (this file run alone).
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minidocker.exercises.marks import Exercise, find_exercises, function_node
from minidocker.exercises.workspace import body_lines
from tests.notebooks import EXECUTED, NOTEBOOKS, execute, fresh

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["03", "04", "05", "07", "08"]  # the notebooks with figures: their pages must show them


def _build(config: str, dest: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    command = [str(mkdocs), "build", "--strict", "-f", config, "-d", str(dest)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both editions, built once for this file (after the notebooks with figures have a fresh run)."""
    for path in NOTEBOOKS:
        if path.name[:2] in FIGURES and not fresh(path):
            execute(path)
    base = tmp_path_factory.mktemp("site")
    built = {}
    for edition, config in (("teachers", "site/mkdocs.yml"), ("student", "site/mkdocs-student.yml")):
        _build(config, base / edition)
        built[edition] = base / edition
    return built


def _lines(site: Path) -> set[str]:
    """Every line of every page's text (tags out, entities decoded) and of the search index, stripped.

    Whole lines: a hint may quote a call of the answer, a listing shows it as a line of its own.
    """
    parts = [re.sub(r"<[^>]+>", "", page.read_text()) for page in sorted(site.rglob("*.html"))]
    index = site / "search" / "search_index.json"
    if index.exists():
        docs = json.loads(index.read_text())["docs"]
        parts += [re.sub(r"<[^>]+>", "", doc.get("text", "")) for doc in docs]
    return {line.strip() for line in html.unescape("\n".join(parts)).splitlines()}


def _answer_lines(exercise: Exercise, package_lines: dict[str, int]) -> tuple[str, list[str]]:
    """The exercise's ``def`` line, and its body's lines found nowhere else in the package, longest first."""
    source = (ROOT / exercise.path).read_text()
    node = function_node(ast.parse(source), exercise.function)
    lines = source.splitlines()
    first, last = body_lines(node)
    body = [line.strip() for line in lines[first - 1:last]]
    unique = [line for line in body if len(line) >= 16 and not line.startswith("#")
              and package_lines.get(line, 0) == 1]
    return lines[node.lineno - 1].strip(), sorted(set(unique), key=len, reverse=True)


def test_site_builds_strictly(sites: dict[str, Path]) -> None:
    assert (sites["teachers"] / "chapters" / "02-namespaces" / "index.html").exists()


def test_student_edition_builds_beside_it(sites: dict[str, Path]) -> None:
    page = (sites["student"] / "chapters" / "02-namespaces" / "index.html").read_text()
    assert "Exercise 02.9: Pivot into the new root and detach the old one" in page
    assert "Graded by" in page and "test_02_namespaces.py::" in page
    assert "minidocker (student edition)" in page


def test_no_answer_is_in_the_student_edition(sites: dict[str, Path]) -> None:
    """For every exercise: a line only its body has is in the teachers' edition, not the student's."""
    teachers, student = _lines(sites["teachers"]), _lines(sites["student"])
    counts: dict[str, int] = {}
    for path in (ROOT / "minidocker").rglob("*.py"):
        for line in path.read_text().splitlines():
            counts[line.strip()] = counts.get(line.strip(), 0) + 1
    exercises = find_exercises()
    assert len(exercises) > 100
    for exercise in exercises:
        signature, candidates = _answer_lines(exercise, counts)
        shown = [line for line in candidates if line in teachers]
        assert shown, f"{exercise.id} {exercise.function}: the teachers' edition shows no line of its body"
        assert shown[0] not in student, f"{exercise.id}: the student edition shows its answer: {shown[0]!r}"
        assert signature in student, f"{exercise.id}: the student edition lacks {signature!r}"
        called = f"{exercise.function.rsplit('.', 1)[-1]}("  # a listing in parts may leave the def to prose
        assert signature in teachers or any(called in line for line in teachers), exercise.id


@pytest.mark.parametrize("number", FIGURES)
def test_notebook_pages_show_their_figures_and_outputs(sites: dict[str, Path], number: str) -> None:
    """Each image of the run is on the page as data, each HTML figure and text output too."""
    path = next(p for p in NOTEBOOKS if p.name.startswith(number))
    run = nbformat.read(EXECUTED / path.name, as_version=4)
    outputs = [o for c in run.cells for o in c.get("outputs", [])]
    images = [o for o in outputs if {"image/png", "image/svg+xml"} & set(o.get("data", {}))]
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert images or tables, f"{path.name} has no figure"
    assert any(o["output_type"] == "stream" for o in outputs), f"{path.name} printed nothing"
    page = (sites["teachers"] / "notebooks" / path.stem / "index.html").read_text()
    assert page.count('src="data:image/') + page.count("jp-RenderedSVG") >= len(images)
    assert page.count("jp-RenderedHTML jp-OutputArea-output") >= len(tables)
    for o in outputs:
        if o["output_type"] == "stream" and o["text"].strip():
            assert html.escape(o["text"].strip().splitlines()[0], quote=False) in page, o["text"][:200]


def test_every_picture_is_rendered_from_its_source_and_shown() -> None:
    """Each ``chapters/img/src/X.dot`` renders to the committed ``X.svg``, and a chapter shows it."""
    result = subprocess.run([sys.executable, "site/pictures.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    sources = sorted((ROOT / "chapters" / "img" / "src").glob("*.dot"))
    assert sources
    chapters = "\n".join(path.read_text() for path in (ROOT / "chapters").glob("*.md"))
    for source in sources:
        assert re.search(rf"!\[[^\]]{{20,}}\]\(img/{re.escape(source.stem)}\.svg\)", chapters), \
            f"no chapter shows img/{source.stem}.svg with alt text"
