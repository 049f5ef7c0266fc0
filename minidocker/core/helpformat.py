"""argparse's help formatter, as wide as the terminal, without importing ``shutil``.

argparse makes a formatter for every option added and, left alone, imports ``shutil`` (with bz2,
lzma and fnmatch: 2 ms of every start of a stage or a CLI command) only to ask for the terminal's
width. Stages (``_stage``) and the client (``_cliformat``) both use this one.

Example::

    argparse.ArgumentParser(prog="x", formatter_class=help_formatter)
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["help_formatter"]


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """A help formatter as wide as the terminal: ``$COLUMNS``, else the tty's width, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return argparse.HelpFormatter(prog, width=columns - 2)
