"""Every notebook runs top to bottom as root; the executed copy is what the site renders."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests.notebooks import NOTEBOOKS, errors, execute


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.stem, marks=pytest.mark.chapter(int(re.match(r"\d+", p.name).group())))
     for p in NOTEBOOKS],
)
def test_notebook_runs(path: Path) -> None:
    """The run is tests/notebooks.py's, shared with ./setup.sh book: it writes .build/notebooks/."""
    assert not errors(execute(path))


def test_committed_notebooks_have_no_outputs() -> None:
    """Outputs belong to a run, not to the repository: they would drift from the code."""
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), path.name
