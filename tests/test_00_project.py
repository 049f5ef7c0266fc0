"""Chapter 00: the project's own rules: layout, one-direction imports, lint, docs from code, CI = README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.importgraph import ImportGraph

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minidocker"


def test_every_import_follows_the_rules_and_none_makes_a_cycle() -> None:
    """Every module's imports, lazy ones included, against the rules of :mod:`tests.importgraph`."""
    graph = ImportGraph.of(PACKAGE)
    problems = graph.violations() + graph.cycles()
    print(f"{len(graph.files)} modules, {len(graph.edges)} imports of the package checked")
    assert len(graph.files) > 100  # the walk found the package, not an empty directory
    assert not problems, "\n" + "\n".join(problems)


@pytest.mark.parametrize("module", ["minidocker.build.builder", "minidocker.images.run",
                                    "minidocker.images.cli", "minidocker.registry.server"])
def test_a_module_run_as_a_program_is_not_imported_again(module: str) -> None:
    """``python -m M`` runs M as ``__main__``; an import of M through a cycle would load it a second time.

    No cycle (above) means no second copy; this shows it for the modules that are programs.
    """
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    twice = [line for line in result.stderr.splitlines() if line.rstrip().endswith(f"| {module}")]
    assert twice == []


def _scratch_package(root: Path, files: dict[str, str]) -> ImportGraph:
    """A package named minidocker under ``root`` made of ``files`` (path -> source), parsed."""
    for name, text in files.items():
        path = root / "minidocker" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in (root / "minidocker").rglob("*"):
        if directory.is_dir():
            (directory / "__init__.py").touch()
    (root / "minidocker" / "__init__.py").touch()
    return ImportGraph.of(root / "minidocker")


def test_the_import_rules_catch_each_kind_of_violation(tmp_path: Path) -> None:
    """A scratch package with one violation of each kind: each is one line naming file:line and the rule."""
    graph = _scratch_package(tmp_path, {
        "core/paths.py": "from minidocker.overlay import layers\n",
        "overlay/layers.py": "import os\n\n\ndef lazy():\n    from minidocker.network.bridge import up\n",
        "network/bridge.py": "def up():\n    pass\n",
        "client/cli.py": "def main():\n    from minidocker.daemon import engine\n",
        "client/images.py": "from minidocker.images import reference\n",
        "daemon/engine.py": "from minidocker.client.client import default_socket\n",
        "client/client.py": "",
        "images/reference.py": "from minidocker import doctor\n",
        "doctor.py": "",
        "build/builder.py": "from minidocker.build import cli\n",
        "build/cli.py": "def main():\n    from . import builder\n",
        "testing/fixtures.py": "from minidocker.registry import server\n",
        "registry/server.py": "",
    })
    found = graph.violations()
    expected = [
        "minidocker/client/cli.py:2: from minidocker.daemon import engine: only the daemon imports",
        "minidocker/client/images.py:1: from minidocker.images import reference: the client imports only",
        "minidocker/core/paths.py:1: from minidocker.overlay import layers: core imports only core",
        "minidocker/daemon/engine.py:1: from minidocker.client.client import default_socket: chapter 10 "
        "(daemon) imports only chapters <= 10, not chapter 11 (client)",
        "minidocker/images/reference.py:1: from minidocker import doctor: chapter 07 (images) imports only "
        "core, rootfs, testing and chapters",
        "minidocker/overlay/layers.py:5: from minidocker.network.bridge import up: chapter 04 (overlay) "
        "imports only chapters <= 04, not chapter 05 (network)",
        "minidocker/testing/fixtures.py:1: from minidocker.registry import server: testing imports only core",
    ]
    assert len(found) == len(expected), "\n".join(found)
    for line, start in zip(sorted(found), expected, strict=True):
        assert line.startswith(start), line
        assert "\n" not in line
    cycles = graph.cycles()
    assert cycles == ["import cycle: minidocker.build.builder (minidocker/build/builder.py:1) -> "
                      "minidocker.build.cli (minidocker/build/cli.py:2) -> minidocker.build.builder"]


def test_the_import_rules_let_the_assembler_and_the_exercises_import_lazily(tmp_path: Path) -> None:
    graph = _scratch_package(tmp_path, {
        "__main__.py": "def main():\n    from minidocker.build import cli\n    import minidocker.rootfs\n",
        "rootfs.py": "",
        "exercises/grade.py": "def grade():\n    from minidocker.network import bridge\n",
        "exercises/verify.py": "from minidocker.network import bridge\n",
        "network/bridge.py": "from minidocker import __version__\n",
        "build/cli.py": "", "doctor.py": "from minidocker.cgroups import stage\n", "cgroups/stage.py": "",
    })
    assert graph.violations() == ["minidocker/exercises/verify.py:1: from minidocker.network import bridge: "
                                  "exercises import only core at import time (the chapters lazily, inside "
                                  "functions)"]
    assert graph.cycles() == []


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


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
    """A ```python block in a chapter may only hold snippet includes (and ``# …`` where a listing
    leaves lines out): the code lives in the package."""
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        text = chapter.read_text()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            lines = [line for line in block.splitlines() if line.strip()]
            assert all(line.strip().startswith("--8<--") or line.strip() == "# …" for line in lines), \
                f"{chapter.name} pastes code:\n{block}"
        pages = ("00-teachers.md", "00-benchmarks.md")  # pages for teachers and the numbers, not chapters
        assert "## Check your work" in text or chapter.name in pages, chapter.name


def test_every_listing_has_prose_before_it() -> None:
    """A ```python listing never follows another block with only blank lines between: a sentence says
    what comes next (chapters 00-13; the newer ones are being written)."""
    for chapter in sorted((ROOT / "chapters").glob("[01][0-9]-*.md")):
        if int(chapter.name[:2]) > 13:
            continue
        back_to_back = re.findall(r"^```\n\s*\n```python\n(.*)", chapter.read_text(), re.M)
        assert back_to_back == [], f"{chapter.name}: no prose before {back_to_back}"


MAX_LISTING = 40  # lines a reader takes in at once; a longer function is shown in parts, with '# …'
INCLUDE = re.compile(r'^\s*--8<-- "(?P<path>[^":]+)(?::(?P<name>[\w-]+))?"\s*$')
MARKER = re.compile(r"# --8<-- \[(start|end):([\w-]+)\]")


def _snippet_lines(path: str, name: str | None) -> int:
    """How many lines the snippet ``name`` of ``path`` shows (the file's, without a name); markers hidden."""
    lines = (ROOT / path).read_text().splitlines()
    if name is None:
        return sum(1 for line in lines if not MARKER.search(line))
    shown, inside = 0, False
    for line in lines:
        marker = MARKER.search(line)
        if marker and marker.group(2) == name:
            if marker.group(1) == "end":
                break
            inside = True
        elif inside and not marker:
            shown += 1
    return shown


def test_no_listing_is_longer_than_a_reader_takes_in() -> None:
    """A ```python listing shows at most MAX_LISTING lines: its snippets' lines, plus one for each ``# …``
    that stands for the lines left out (a long function is shown in parts: markers in the code)."""
    long = []
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        for block in re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", chapter.read_text(), re.S | re.M):
            included = [INCLUDE.match(line) for line in block.splitlines() if line.strip()]
            count = sum(_snippet_lines(m["path"], m["name"]) if m else 1 for m in included)
            if count > MAX_LISTING:
                long.append(f"{chapter.name}: {count} lines: {[m['name'] for m in included if m]}")
    assert long == [], "\n".join(long)


def test_the_listing_length_counts_snippets_and_elisions() -> None:
    """The count the test above relies on: a section's lines without nested markers, '# …' as one."""
    assert _snippet_lines("minidocker/overlay/untar.py", "unpack_member") > MAX_LISTING  # shown in parts
    assert _snippet_lines("minidocker/overlay/untar.py", "unpack_member_part1") == 2  # the signature


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


def test_doctor_reports_bridge_netfilter(tmp_path: Path) -> None:
    """ok when br_netfilter is not loaded or bridge-nf-call-iptables is 0; a warning with the fix at 1."""
    from minidocker.doctor import bridge_netfilter

    absent = bridge_netfilter(str(tmp_path / "bridge"))
    assert absent.ok and not absent.required and absent.seen == "br_netfilter not loaded"
    (tmp_path / "bridge-nf-call-iptables").write_text("0\n")
    off = bridge_netfilter(str(tmp_path))
    assert off.ok and off.seen == "br_netfilter loaded, bridge-nf-call-iptables=0"
    (tmp_path / "bridge-nf-call-iptables").write_text("1\n")
    on = bridge_netfilter(str(tmp_path))
    assert not on.ok and not on.required and on.seen.endswith("=1")
    assert "DOCKER-USER" in on.fix and "bridge-nf-call-iptables=0" in on.fix
    result = subprocess.run([sys.executable, "-m", "minidocker.doctor"], capture_output=True, text=True)
    assert re.search(r"^bridge netfilter\s+(ok|warn)\s+br_netfilter", result.stdout, re.M), result.stdout


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
