"""The book's "Check your work" blocks: find them, and compare what they print with what the book prints.

A chapter's runnable blocks are the ```` ```console ```` blocks of its "Check your work" sections
(a heading that contains those words, down to the next heading of the same level or above). In a
block, a line that starts with ``# `` is a command typed as root (with its continuation lines: a
trailing ``\\``, an open quote or a here-document), and the lines after it, up to the next command,
are what it prints (stdout and stderr together). A block that cannot run unattended is marked by an
HTML comment on the line before its fence, which the site does not show::

    <!-- not run: it needs a terminal -->

or, for a block whose output is that of one kind of host, by ``<!-- only on a cgroup v2 host -->``
(see :data:`HOSTS`).

Values that vary by host or run (ids, digests, times, ages, pids, durations) are recognised by
:data:`VARYING` and compare equal whatever they are; anything else that varies is written in the
book as ``<placeholder>`` (any text on one line: ``<port>``, ``<address>``...; ``<none>`` and
``<missing>`` stay literal, as Docker prints them), or elided with ``…`` (any text on that line) or
a line of its own ``…`` (any number of lines). Columns compare with runs of blanks as one blank.

Example::

    >>> [block] = blocks_of_text("## Check your work\\n\\n```console\\n# echo hi\\nhi\\n```\\n")
    >>> block.commands[0].text, block.commands[0].expected
    ('echo hi', ['hi'])
    >>> matches(["hello from 8bf9aaf68a11"], ["hello from fb09df821d4a"])
    True
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
ONLY_ON = re.compile(r"<!--\s*only on (.+?)\s*-->")
HOSTS = {  # the hosts a block may be for, and how to tell this is one
    "a cgroup v2 host": lambda: Path("/sys/fs/cgroup/cgroup.controllers").exists(),
    "a cgroup v1 or hybrid host": lambda: not Path("/sys/fs/cgroup/cgroup.controllers").exists(),
}
LITERAL = {"<none>", "<missing>"}

# What varies by host and run, whatever the chapter: replaced by one token on both sides.
VARYING: list[tuple[re.Pattern[str], str]] = [(re.compile(p), t) for p, t in (
    (r"\b[0-9a-f]{64}\b", "<id>"),
    (r"\b[0-9a-f]{12}\b", "<id>"),
    (r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d| \+0000 UTC)?", "<time>"),
    (r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", "<time>"),
    (r"\b\d\d:\d\d:\d\d\b", "<time>"),
    (r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d (\d\d:\d\d|\d{4})\b", "<time>"),
    (r"\bl/[A-Z0-9]{12}\b", "l/<link>"),
    (r"\^{3,}", "^^^"),  # nft's marks under a name
    (r"\b\d+m ?\d+\.\d+s\b", "<duration>"),
    (r"\b(Less than a second|About an? (minute|hour)|\d+ (second|minute|hour|day|week|month|year)s?)\b",
     "<duration>"),
    (r"\(pid \d+\)", "(pid <n>)"),
    (r"\b1[0-9]{9}(\d{9})?\b", "<time>"),  # Unix times, in seconds or nanoseconds
)]


@dataclass
class Command:
    """One command of a block, where it is in its chapter, and what the book says it prints."""

    text: str
    line: int
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """A ```console block of a "Check your work" section."""

    chapter: str
    line: int
    commands: list[Command]
    not_run: str = ""  # why, for a block the test does not run


def _complete(text: str) -> bool:
    """True if ``text`` is a whole shell command (no open quote, here-document or continuation)."""
    if text.endswith("\\") or text.rstrip().endswith(("|", "&&", "||")):
        return False
    heredoc = re.search(r"<<-?\s*'?\"?(\w+)", text)
    if heredoc and heredoc.group(1) not in text.split("\n")[1:]:
        return False
    return subprocess.run(["bash", "-n", "-c", text], capture_output=True).returncode == 0


def _commands(lines: list[str], first: int) -> list[Command]:
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# "):
            text, start = line[2:], i
            while not _complete(text) and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i]
            commands.append(Command(text, first + start))
        elif commands:
            commands[-1].expected.append(line)
        i += 1
    for command in commands:
        while command.expected and not command.expected[-1].strip():
            command.expected.pop()
    return commands


def blocks_of_text(text: str, chapter: str = "") -> list[Block]:
    """The runnable blocks of a chapter's Markdown, in order."""
    blocks: list[Block] = []
    lines = text.split("\n")
    section_level = 0  # > 0 inside a "Check your work" section
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,6}) ", line)
        if heading:
            level = len(heading.group(1))
            if "check your work" in line.lower():
                section_level = level
            elif section_level and level <= section_level:
                section_level = 0
        fence = re.match(r"(\s*)```console\s*$", line)
        if fence and section_level:
            indent, start = fence.group(1), i
            body = []
            i += 1
            while not re.match(rf"{indent}```\s*$", lines[i]):
                body.append(lines[i][len(indent):])
                i += 1
            previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            mark, only = NOT_RUN.search(previous), ONLY_ON.search(previous)
            why = mark.group(1) if mark else ""
            if only and not HOSTS[only.group(1)]():
                why = f"only on {only.group(1)}"
            blocks.append(Block(chapter, start + 1, _commands(body, start + 2), why))
        i += 1
    return blocks


def chapter_blocks(paths: list[Path]) -> list[Block]:
    """Every runnable block of these chapters, in book order."""
    found: list[Block] = []
    for path in sorted(paths):
        found += blocks_of_text(path.read_text(), path.name)
    return found


def normalise(line: str) -> str:
    """``line`` with its varying values replaced by tokens and its runs of blanks by one blank."""
    for pattern, token in VARYING:
        line = pattern.sub(token, line)
    return re.sub(r"\s+", " ", line).strip()


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = re.split(r"(<[a-z][a-z0-9 _-]*>|…)", normalise(expected))
    regex = ""
    for part in parts:
        if part == "…":
            regex += ".*"
        elif part.startswith("<") and part.endswith(">") and part not in LITERAL and part not in _TOKENS:
            regex += ".+?"
        else:
            regex += re.escape(part)
    return re.compile(regex)


_TOKENS = {token for _, token in VARYING}


def matches(actual: list[str], expected: list[str]) -> bool:
    """True if the lines ``actual`` are what the book's ``expected`` lines describe."""
    got = [normalise(line) for line in actual]
    while got and not got[-1]:
        got.pop()
    want = list(expected)

    def match(i: int, j: int) -> bool:
        if j == len(want):
            return i == len(got)
        if want[j].strip() == "…":
            return any(match(k, j + 1) for k in range(i, len(got) + 1))
        return i < len(got) and bool(_line_pattern(want[j]).fullmatch(got[i])) and match(i + 1, j + 1)

    return match(0, 0)
