"""How the ``minidocker`` client prints things the way ``docker`` does: tables, ages, templates.

Sizes are :func:`minidocker.core.units.human_size`.

Example::

    >>> print(table([["CONTAINER ID", "NAMES"], ["4bf2315b4ab9", "web"]]))
    CONTAINER ID   NAMES
    4bf2315b4ab9   web
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    import argparse
    from typing import Any

# argparse, json and re are imported where they are used: each imports enum, and together they were
# a third of what `minidocker ps` took; `ps` without options parses them with `flags` instead.
__all__ = ["Flags", "ago", "confirm", "flags", "human_duration", "parser", "render_template", "table"]


def table(rows: list[list[str]]) -> str:
    """Columns padded to the widest cell plus three spaces, as Docker's tabwriter does."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return "1 second" if s == 1 else f"{s} seconds"
    minutes = s // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = round(s / 3600)
    if hours < 48:
        return "About an hour" if hours == 1 else f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    return f"{hours // 24 // 30} months" if hours < 24 * 365 * 2 else f"{hours // 24 // 365} years"


def ago(unix_time: float) -> str:
    return f"{human_duration(time.time() - unix_time)} ago"


def _lookup(value: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in value.items()) + "]"
    return "<no value>" if value is None else str(value)


def render_template(template: str, value: Any) -> str:
    """The part of Go templates people use with ``--format``: ``{{.A.B}}`` and ``{{json .A}}``.

    A field is the shortest ``{{...}}`` without a line break inside (what ``re.sub(r"\\{\\{(.*?)\\}\\}")``
    finds), read without ``re`` and ``json``: ``images --format`` imports neither (``enum`` with them).

    Example::

        >>> render_template("{{.Name}} {{json .Tags}}", {"Name": "web", "Tags": ["a"]})
        'web ["a"]'
    """
    from minidocker.core.jsonscan import dumps

    out, at = [], 0
    while (start := template.find("{{", at)) >= 0 and (end := template.find("}}", start + 2)) >= 0:
        expression = template[start + 2:end]
        if "\n" in expression:  # no field starts here: look again from the next character
            out.append(template[at:start + 1])
            at = start + 1
            continue
        expression = expression.strip()
        out += [template[at:start], dumps(_lookup(value, expression[5:].strip())) if
                expression.startswith("json ") else _show(_lookup(value, expression))]
        at = end + 2
    return "".join(out) + template[at:]


def parser(command: str, usage: str) -> argparse.ArgumentParser:
    """A parser for one subcommand; ``-h`` stays free (``run -h HOSTNAME``), ``--help`` prints usage."""
    import argparse

    from minidocker.core.helpformat import help_formatter

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise SystemExit(f"minidocker {self.prog.split()[-1]}: {message} (see '{self.prog} --help')")

    p = _Parser(prog=f"minidocker {command}", usage=f"minidocker {command} {usage}", add_help=False,
                formatter_class=help_formatter)
    p.add_argument("--help", action="help")
    return p


class Flags:
    """Options parsed by :func:`flags`: each a boolean attribute, as argparse's ``store_true`` gives."""

    def __init__(self, names: dict[str, str], given: set[str]) -> None:
        for name in names.values():
            setattr(self, name, name in given)


def flags(argv: list[str], names: dict[str, str], values: dict[str, str] | None = None) -> Flags | None:
    """On/off options (``-a``, ``--all``, ``-aq``) without argparse; None if ``argv`` holds anything else.

    argparse costs a command about 4 ms to import and to look up its messages' translations; the
    commands typed most (``ps``, ``ps -a``, ``images``) take only flags. Long options with a value
    (``values``: ``--format T`` or ``--format=T``, the last one given wins) are read too. Anything
    else (``--help``, another option, a value that looks like an option, a mistake) returns None: the
    caller's argparse parser reads it then, with its usage and its errors. ``names`` and ``values``
    map each spelling to its attribute (a value not given is None).

    Example::

        >>> opts = flags(["-aq", "--format", "{{.ID}}"], {"-a": "all", "-q": "quiet"}, {"--format": "format"})
        >>> opts.all, opts.quiet, opts.format
        (True, True, '{{.ID}}')
    """
    values = values or {}
    given: set[str] = set()
    found: dict[str, str | None] = dict.fromkeys(values.values())
    words = iter(argv)
    for word in words:
        option, equals, value = word.partition("=")
        if option in values:
            value = value if equals else next(words, None)
            if value is None or (not equals and value.startswith("-")):
                return None  # argparse says what is missing
            found[values[option]] = value
            continue
        spellings = [word] if word.startswith("--") or len(word) == 2 else [f"-{c}" for c in word[1:]]
        if len(word) < 2 or not word.startswith("-") or any(s not in names for s in spellings):
            return None
        given.update(names[s] for s in spellings)
    opts = Flags(names, given)
    for name, value in found.items():
        setattr(opts, name, value)
    return opts


def confirm(message: str) -> bool:
    """Docker's question before a prune: ``MESSAGE`` then ``Are you sure you want to continue? [y/N]``.

    As docker does, the answer is a line read from stdin, a terminal or not: only ``y`` (or ``Y``)
    goes on; an empty line, or no input at all (``</dev/null``, a script), is no. ``-f`` skips it.
    Here, not in the client, because chapter 08's ``builder prune`` asks it too.

    Example::

        if not confirm("WARNING! This will remove all stopped containers."):
            return 0
    """
    print(f"{message}\nAre you sure you want to continue? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline() if sys.stdin else ""
    return answer.strip().lower() == "y"
