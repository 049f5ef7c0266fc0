"""The book's site builds with ``mkdocs build --strict``: every snippet marker resolves, every link works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    command = [str(mkdocs), "build", "--strict", "-f", "site/mkdocs.yml", "-d", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "chapters" / "02-namespaces" / "index.html").exists()


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
