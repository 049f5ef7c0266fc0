"""Execute the book's notebooks as root, top to bottom, into ``.build/notebooks/`` (what the site renders).

The test suite (``tests/test_notebooks.py``) and ``./setup.sh book`` both run them through
:func:`execute`, so the reader's book shows the outputs and figures of a run on the reader's own
machine, made exactly as the tests make them. The committed notebooks stay without outputs.

    python -m tests.notebooks             # every notebook, one progress line each
    python -m tests.notebooks 03 05       # those whose names start so

Example::

    notebook = execute(ROOT / "notebooks" / "03-cgroups.ipynb")   # written to .build/notebooks/
    assert not errors(notebook)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / ".build" / "notebooks"


def errors(notebook: nbformat.NotebookNode) -> list[dict]:
    """The error outputs of an executed notebook (empty when every cell ran)."""
    return [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def execute(path: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Run one notebook from the repository's root; write it, outputs and all, to ``EXECUTED``.

    A cell's error stops the run (nbclient raises it). The executed copy is written only when
    every cell ran; a failed run removes an older copy, so the site never shows a stale run
    (it falls back to the committed notebook, without outputs).
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute()
    except BaseException:
        (EXECUTED / path.name).unlink(missing_ok=True)
        raise
    if errors(notebook):
        (EXECUTED / path.name).unlink(missing_ok=True)
    else:
        EXECUTED.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, EXECUTED / path.name)
    return notebook


def fresh(path: Path) -> bool:
    """Whether ``EXECUTED`` holds a run of the notebook as committed now (same code, newer file)."""
    done = EXECUTED / path.name
    if not done.exists() or done.stat().st_mtime < path.stat().st_mtime:
        return False
    ran, source = nbformat.read(done, as_version=4), nbformat.read(path, as_version=4)
    return [c.source for c in ran.cells] == [c.source for c in source.cells]


def main(argv: list[str]) -> int:
    """Run the notebooks named by prefix in ``argv`` (all by default), one line each; 1 if any failed."""
    chosen = [p for p in NOTEBOOKS if not argv or any(p.name.startswith(a) for a in argv)]
    failed = 0
    EXECUTED.mkdir(parents=True, exist_ok=True)
    log = EXECUTED / "kernels.log"  # the kernels' own chatter, kept off the progress lines
    saved = os.dup(2)
    with open(log, "w") as f:
        os.dup2(f.fileno(), 2)
    try:
        for number, path in enumerate(chosen, 1):
            print(f"notebook {number}/{len(chosen)}: {path.name} ...", end=" ", flush=True)
            started = time.monotonic()
            try:
                execute(path)
                print(f"done in {time.monotonic() - started:.0f} s", flush=True)
            except Exception as e:  # one bad notebook must not hide the others: report, go on
                failed += 1
                reason = str(e).strip().splitlines()[-1:] or [type(e).__name__]
                print(f"FAILED after {time.monotonic() - started:.0f} s: {reason[0][:200]}", flush=True)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    if failed:
        print(f"{failed} of {len(chosen)} notebooks failed (the kernels' messages: {log})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
