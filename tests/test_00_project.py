"""Chapter 00: the project's own rules: layout, one-direction imports, lint, docs from code, CI = README."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minidocker"


def chapter_of_module(path: Path) -> int | None:
    """A chapter module's docstring starts with ``Chapter NN:``; shared ``_`` helpers and tools have none."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    match = re.match(r"Chapter (\d\d):", doc)
    return int(match.group(1)) if match else None


def package_imports(path: Path) -> set[str]:
    """The minidocker modules that ``path`` imports (at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minidocker"):
            if node.module == "minidocker":
                found |= {a.name for a in node.names}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("minidocker.")}
    return found


MODULES = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_stages_import_only_earlier_chapters(name: str) -> None:
    """Chapter N's module imports only chapters <= N and shared helpers; helpers import only helpers."""
    path = MODULES[name]
    mine = chapter_of_module(path)
    for imported in package_imports(path):
        if imported not in MODULES:
            continue
        theirs = chapter_of_module(MODULES[imported])
        if name.startswith("_") and not name.startswith("__"):
            assert imported.startswith("_"), f"shared helper {name} imports the stage {imported}"
        elif mine is not None and theirs is not None:
            assert theirs <= mine, f"{name} (chapter {mine:02}) imports {imported} (chapter {theirs:02})"


def test_the_rule_above_would_catch_a_backward_import(tmp_path: Path) -> None:
    fake = tmp_path / "chroot/stage.py"
    fake.write_text('"""Chapter 01: x."""\nfrom minidocker import namespaces\n')
    assert chapter_of_module(fake) == 1 and package_imports(fake) == {"namespaces"}
    assert chapter_of_module(MODULES["namespaces"]) == 2


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_stay_small() -> None:
    """Files over ~400 lines hide more than one concept: split them."""
    big = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not big


def test_layout() -> None:
    for entry in ("README.md", "pyproject.toml", "chapters", "minidocker", "notebooks", "tests", "site",
                  ".ci/run", "setup.sh", "site/mkdocs.yml"):
        assert (ROOT / entry).exists(), entry


def test_each_chapter_has_its_notebook_and_tests() -> None:
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        number = chapter.name[:2]
        if number == "00":
            continue
        assert list((ROOT / "notebooks").glob(f"{number}-*.ipynb")), f"no notebook for {chapter.name}"
        assert list((ROOT / "tests").glob(f"test_{number}_*.py")), f"no tests for {chapter.name}"


def test_chapters_include_code_instead_of_pasting_it() -> None:
    """A ```python block in a chapter may only hold snippet includes: the code lives in the package."""
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        text = chapter.read_text()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            lines = [line for line in block.splitlines() if line.strip()]
            assert all(line.startswith("--8<--") for line in lines), f"{chapter.name} pastes code:\n{block}"
        pages = ("00-teachers.md", "00-benchmarks.md")  # pages for teachers and the numbers, not chapters
        assert "## Check your work" in text or chapter.name in pages, chapter.name


def test_snippet_markers_are_paired_and_unique() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        starts = re.findall(r"# --8<-- \[start:([\w-]+)\]", text)
        ends = re.findall(r"# --8<-- \[end:([\w-]+)\]", text)
        assert sorted(starts) == sorted(ends), path.name
        assert len(starts) == len(set(starts)), path.name


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./setup.sh test" in readme and "./setup.sh demo" in readme
    assert re.search(r"^exec \./setup\.sh test$", ci, re.M)


def test_doctor_reports_this_host() -> None:
    result = subprocess.run([sys.executable, "-m", "minidocker.doctor"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    for row in ("root", "pid namespace", "user namespace", "cgroups", "overlayfs", "ip forwarding"):
        assert re.search(rf"^{row}\s+(ok|warn|FAIL)", result.stdout, re.M), row
    assert re.search(r"^overlayfs\s+ok\s+a test mount works", result.stdout, re.M), result.stdout


def test_doctor_as_a_user_says_so_without_a_traceback() -> None:
    """Not root: a table that says what fails and why, exit 1, no traceback."""
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                             "-m", "minidocker.doctor"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"^root\s+FAIL", result.stdout, re.M)
    assert re.search(r"^pid namespace\s+FAIL.*needs root", result.stdout, re.M), result.stdout


def test_cgroup_mode_probe(tmp_path: Path) -> None:
    from minidocker.doctor import cgroup_mode

    def table(*types: str) -> Path:
        path = tmp_path / "mountinfo"
        lines = [f"{i} 1 0:{i} / /sys/fs/cgroup/x{i} rw - {t} {t} rw\n" for i, t in enumerate(types)]
        path.write_text("".join(lines))
        return path

    assert cgroup_mode(str(table("cgroup2"))) == "v2"
    assert cgroup_mode(str(table("cgroup", "cgroup"))) == "v1"
    assert cgroup_mode(str(table("cgroup", "cgroup2"))) == "hybrid"


def test_import_minidocker_is_instant() -> None:
    """``import minidocker`` imports nothing: each command imports only what it uses."""
    code = "import sys, minidocker; print(sorted(m for m in sys.modules if m.startswith('minidocker')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "['minidocker']"
