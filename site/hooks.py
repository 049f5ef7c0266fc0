"""mkdocs hook: serve the book from where it really lives instead of copying it into docs/.

* ``README.md`` becomes the home page;
* ``chapters/*.md``, their pictures (``chapters/img/``) and ``notebooks/*.ipynb`` keep their
  paths, so the README's and chapters' relative links work both on the site and in the repository;
* a notebook executed by the test suite or ``./setup.sh book`` (``.build/notebooks/NAME.ipynb``,
  with its outputs) is rendered instead of the committed one, which is kept without outputs;
* the chapters are rewritten for the edition being built (``extra: edition: student`` in
  ``site/mkdocs-student.yml`` makes the student edition: see ``site/student.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mkdocs loads hooks by path: find student.py
from student import Book

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / ".build" / "notebooks"
BOOK: Book | None = None


def on_config(config):
    """Read the exercises once per build, for the edition the configuration asks for."""
    global BOOK
    BOOK = Book.load(student=config["extra"].get("edition") == "student")
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Runs before the Markdown extensions, so the snippet lines can still be rewritten."""
    return BOOK.page(page.file.src_uri, markdown) if BOOK else markdown


@event_priority(100)  # before mkdocs-jupyter, which must see the notebooks to render them
def on_files(files: Files, config) -> Files:
    def add(uri: str, src_dir: Path) -> None:
        files.append(File(uri, str(src_dir), config["site_dir"], config["use_directory_urls"]))

    add("README.md", ROOT)
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        add(f"chapters/{chapter.name}", ROOT)
    for image in sorted((ROOT / "chapters" / "img").glob("*")):
        if image.is_file():  # not src/, the pictures' sources (site/pictures.py renders them)
            add(f"chapters/img/{image.name}", ROOT)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        executed = (EXECUTED / notebook.name).exists()
        add(f"notebooks/{notebook.name}", EXECUTED.parent if executed else ROOT)
    return files
