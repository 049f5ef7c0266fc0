"""Chapter 08: reading a Dockerfile: lines, continuations, directives, instructions and their forms.

A Dockerfile is a list of *instructions*, one a logical line. Docker's rules, which we follow:

* ``# escape=`` and ``# syntax=`` *parser directives* may open the file (``syntax`` is accepted
  and ignored: it names a BuildKit front end); the first other line ends them;
* a line ending with the escape character (``\\``, or ````` after ``# escape=`````) continues on the
  next; comment lines and empty lines inside a continuation are skipped;
* a line whose first non-blank character is ``#`` is a comment, anywhere else ``#`` is text;
* an instruction is a keyword (any case), ``--flags`` (``COPY --from=build``), then its arguments,
  in *exec form* (a JSON array: ``CMD ["nginx", "-g", "daemon off;"]``) or *shell form* (plain
  text, later run by ``/bin/sh -c``); ``ENV`` and ``LABEL`` take ``key=value`` pairs.

Everything is checked here, before the build runs a single step: an unknown instruction, a bad
flag, a missing argument is an error naming the file and the line (:class:`DockerfileError`).

Example::

    >>> df = parse('FROM busybox AS base\\nRUN echo hi \\\\\\n    there\\nCMD ["sh"]\\n')
    >>> [(i.keyword, i.args, i.json) for i in df.stages[0].instructions]
    [('RUN', ('echo hi     there',), False), ('CMD', ('sh',), True)]
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

from minidocker.core.process import EngineError

__all__ = ["INSTRUCTIONS", "Dockerfile", "DockerfileError", "Instruction", "Stage", "check_words",
           "instruction", "logical_lines", "parse", "parse_duration"]

# keyword -> the flags it accepts (name -> takes a value)
INSTRUCTIONS: dict[str, dict[str, bool]] = {
    "FROM": {"platform": True}, "RUN": {}, "CMD": {}, "ENTRYPOINT": {}, "SHELL": {},
    "COPY": {"from": True, "chown": True, "chmod": True}, "ADD": {"chown": True, "chmod": True},
    "ENV": {}, "ARG": {}, "LABEL": {}, "WORKDIR": {}, "USER": {}, "EXPOSE": {}, "VOLUME": {},
    "STOPSIGNAL": {}, "MAINTAINER": {}, "ONBUILD": {},
    "HEALTHCHECK": {"interval": True, "timeout": True, "start-period": True, "start-interval": True,
                    "retries": True},
}
BUILDKIT_ONLY = {"RUN": ("mount", "network", "security"), "COPY": ("link", "parents", "exclude"),
                 "ADD": ("link", "checksum", "keep-git-dir", "exclude")}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DockerfileError(EngineError):
    """A Dockerfile that cannot be built, found before anything runs: ``FILE:LINE: what is wrong``."""


@dataclass(frozen=True)
class Instruction:
    """One instruction, as written.

    ``args`` depends on the form: exec form (``json`` true) -> the JSON array's strings; shell form
    of RUN/CMD/ENTRYPOINT/USER/WORKDIR/... -> one string, the rest of the line; COPY/ADD/VOLUME/
    EXPOSE/FROM/ARG -> the words. ``pairs`` holds ENV's and LABEL's ``(key, value)``, still quoted
    (the builder expands them). ``original`` is the logical line, as ``Step 2/7 : ...`` shows it.
    """

    keyword: str
    args: tuple[str, ...]
    line: int
    original: str
    flags: tuple[tuple[str, str | None], ...] = ()
    json: bool = False
    pairs: tuple[tuple[str, str], ...] = ()
    trigger: Instruction | None = None  # ONBUILD's instruction

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The value of ``--name=value`` (``default`` if not given)."""
        return next((v for k, v in self.flags if k == name), default)


@dataclass
class Stage:
    """``FROM base [AS name]`` and the instructions up to the next FROM."""

    index: int
    base: str
    name: str | None
    origin: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """A parsed Dockerfile: the ARGs before the first FROM, then the stages."""

    filename: str
    escape: str
    meta_args: list[Instruction]
    stages: list[Stage]
    warnings: list[str] = field(default_factory=list)

    def stage(self, target: str | None) -> int:
        """The index of the stage named ``target`` (the last one if None)."""
        if target is None:
            return len(self.stages) - 1
        for stage in self.stages:
            if stage.name == target.lower():
                return stage.index
        raise DockerfileError(f"failed to reach build target {target} in Dockerfile: no stage is named "
                              f"{target!r} (FROM ... AS {target})")


# exercise 08.1: Split a Dockerfile into logical lines
# hint: read the escape/syntax directives while `looking` (the first other line ends them); skip comment
#   and blank lines; join a line ending with the escape character (regex escape + [ \t]*$) with the
#   next ones, skipping comment and blank lines inside (note a warning for the blank ones).
# --8<-- [start:logical_lines]
# --8<-- [start:logical_lines_part1]
def logical_lines(text: str, filename: str = "Dockerfile") -> tuple[str, list[tuple[int, str]], list[str]]:
    # --8<-- [end:logical_lines_part1]
    """Split the text into ``(escape character, [(first line number, logical line)], warnings)``.

    Parser directives are read first; then comments are dropped, and continuation lines (ending
    with the escape character, maybe followed by blanks) are joined. Inside a continuation,
    comment lines and empty lines are skipped (Docker warns about the empty ones).
    """
    # --8<-- [start:logical_lines_part2]
    escape, seen, looking = "\\", set(), True
    lines = text.removeprefix("\ufeff").split("\n")
    result, warnings, i = [], [], 0

    def directive(raw: str, number: int) -> None:
        nonlocal escape, looking
        match = _DIRECTIVE.match(raw.strip()) if looking else None
        if not match or match.group(1).lower() not in ("escape", "syntax"):
            looking = False
            return
        # --8<-- [end:logical_lines_part2]
        name = match.group(1).lower()
        if name in seen:
            raise DockerfileError(f"{filename}:{number}: only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            if match.group(2) not in ("\\", "`"):
                raise DockerfileError(f"{filename}:{number}: invalid escape token {match.group(2)!r}: "
                                      "use \\ or `")
            escape = match.group(2)

    # --8<-- [start:logical_lines_part3]
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        i += 1
        directive(raw, i)
        stripped = raw.lstrip()
        if stripped.startswith("#") or not stripped:
            continue
        start, empty_seen = i, False
        continued = re.compile(re.escape(escape) + r"[ \t]*$")
        more, line = bool(continued.search(stripped)), continued.sub("", stripped)
        while more and i < len(lines):
            raw = lines[i].rstrip("\r")
            i += 1
            directive(raw, i)
            if raw.lstrip().startswith("#"):
                continue
            if not raw.strip():
                empty_seen = True
                continue
            more, line = bool(continued.search(raw)), line + continued.sub("", raw)
        if empty_seen:
            warnings.append(f"{filename}:{start}: empty continuation line (Docker will make it an error)")
        result.append((start, line))
    return escape, result, warnings
# --8<-- [end:logical_lines_part3]
# --8<-- [end:logical_lines]


def _split_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--name[=value]`` words, and what follows them."""
    flags = []
    while True:
        rest = rest.lstrip()
        match = re.match(r"--(\S*)", rest)
        if not match or match.group(1) == "":
            if match:  # a lone "--" ends the flags
                rest = rest[2:]
            return flags, rest.strip()
        flags.append(match.group(1))
        rest = rest[match.end():]


def _words(rest: str, escape: str) -> list[str]:
    """Docker's ``parseWords``: split at blanks outside quotes; quotes and escapes are kept."""
    words, current, quote, i, blank_ok = [], [], "", 0, False
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == escape and quote != "'" and i + 1 < len(rest):
                current.append(ch)
                i += 1
                ch = rest[i]
            elif ch == quote:
                quote = ""
            current.append(ch)
        elif ch.isspace():
            if current or blank_ok:
                words.append("".join(current))
            current, blank_ok = [], False
        else:
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape and i + 1 < len(rest):
                current.append(ch)
                i += 1
                ch = rest[i]
            current.append(ch)
        i += 1
    if current or blank_ok:
        words.append("".join(current))
    return words


def _json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None if ``rest`` is not one (then it is shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, as HEALTHCHECK's flags take."""
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if not match:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return int(total)


def _flags(keyword: str, raw: list[str], fail) -> tuple[tuple[str, str | None], ...]:
    """Check ``--name=value`` flags against what ``keyword`` accepts."""
    allowed, found = INSTRUCTIONS[keyword], {}
    for item in raw:
        name, sep, value = item.partition("=")
        if name in BUILDKIT_ONLY.get(keyword, ()):
            fail(f"the --{name} option of {keyword} requires BuildKit, which minidocker does not have")
        if name not in allowed:
            fail(f"unknown flag: --{name}" + (f" ({keyword} takes "
                 + ", ".join(f"--{f}" for f in allowed) + ")" if allowed else f" ({keyword} takes none)"))
        if name in found:
            fail(f"duplicate flag specified: --{name}")
        if allowed[name] and not sep:
            fail(f"--{name} needs a value: --{name}=VALUE")
        found[name] = value if sep else None
    return tuple(found.items())


# exercise 08.2: Parse one instruction, its flags and its form
# hint: keyword (upper-cased, unknown -> difflib suggestion), _split_flags then _flags; _json_array decides
#   exec form; per keyword: RUN/CMD/ENTRYPOINT/SHELL one string or the array, COPY/ADD/VOLUME/EXPOSE/
#   FROM words, ENV/LABEL pairs (old form KEY VALUE), ARG words, HEALTHCHECK, ONBUILD (recursive).
# --8<-- [start:instruction]
# --8<-- [start:instruction_part1]
def instruction(number: int, text: str, escape: str = "\\", filename: str = "Dockerfile") -> Instruction:
    # --8<-- [end:instruction_part1]
    """Parse one logical line into an :class:`Instruction`, checking what can be checked now."""

    def fail(message: str) -> None:
        raise DockerfileError(f"{filename}:{number}: {message}")

    # --8<-- [start:instruction_part2]
    parts = re.split(r"\s+", text.strip(), maxsplit=1)
    keyword, rest = parts[0].upper(), parts[1] if len(parts) > 1 else ""
    if keyword not in INSTRUCTIONS:
        close = difflib.get_close_matches(keyword, INSTRUCTIONS, n=1)
        fail(f"unknown instruction: {keyword}" + (f" (did you mean {close[0]}?)" if close else ""))
    raw_flags, rest = _split_flags(rest)
    flags = _flags(keyword, raw_flags, fail)

    def make(args: list[str], **more: object) -> Instruction:
        return Instruction(keyword, tuple(args), number, text.strip(), flags, **more)  # type: ignore[arg-type]

    try:
        array = _json_array(rest)
    except ValueError as e:
        fail(str(e))
    if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if keyword == "SHELL" and array is None:
            fail("SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]")
        if not rest or (array == [] and keyword in ("RUN", "SHELL")):
            fail(f"{keyword} requires at least one argument")
        return make(array, json=True) if array is not None else make([rest])
    # --8<-- [end:instruction_part2]
    if keyword in ("COPY", "ADD", "VOLUME", "EXPOSE", "FROM"):
        words = array if array is not None and keyword in ("COPY", "ADD", "VOLUME") else rest.split()
        if keyword in ("COPY", "ADD") and len(words) < 2:
            fail(f"{keyword} requires at least two arguments: {keyword} SOURCE... DEST")
        if keyword == "FROM" and not (len(words) == 1 or (len(words) == 3 and words[1].lower() == "as")):
            fail("FROM requires either one or three arguments: FROM IMAGE [AS NAME]")
        if keyword == "FROM" and len(words) == 3 and not _STAGE_NAME.match(words[2].lower()):
            fail(f"invalid name for build stage: {words[2]!r}: it must start with a letter and hold only "
                 "letters, digits, '-', '_' and '.'")
        if not words or any(not w.strip() for w in words):
            fail(f"{keyword} requires at least one argument" + (" (an empty string is not a path)"
                                                                if words else ""))
        return make(words, json=array is not None)
    # --8<-- [start:instruction_part3]
    if keyword in ("ENV", "LABEL"):
        words = _words(rest, escape)
        if not words:
            fail(f"{keyword} requires at least one argument: {keyword} KEY=VALUE...")
        if "=" not in words[0]:  # the old form: ENV KEY VALUE WITH SPACES
            # --8<-- [end:instruction_part3]
            parts = re.split(r"\s+", rest, maxsplit=1)
            if len(parts) < 2:
                fail(f"{keyword} must have two arguments: {keyword} KEY=VALUE (or {keyword} KEY VALUE)")
            return make([], pairs=((parts[0], parts[1]),))
        # --8<-- [start:instruction_part4]
        for word in words:
            if "=" not in word or word.startswith("="):
                fail(f"syntax error: can't find = in {word!r}: use {keyword} NAME=VALUE")
        return make([], pairs=tuple(tuple(w.split("=", 1)) for w in words))
    # --8<-- [end:instruction_part4]
    if keyword == "ARG":
        words = _words(rest, escape)
        if not words:
            fail("ARG requires at least one argument: ARG NAME[=DEFAULT]")
        for word in words:
            if not _ARG_NAME.match(word.split("=", 1)[0]):
                fail(f"invalid ARG name {word.split('=', 1)[0]!r}")
        return make(words)
    if keyword == "HEALTHCHECK":
        kind, _, command = rest.partition(" ")
        kind = kind.upper()
        if kind == "NONE":
            if command.strip() or flags:
                fail("HEALTHCHECK NONE takes no other arguments")
            return make(["NONE"])
        if kind != "CMD":
            fail(f"unknown type {kind!r} for HEALTHCHECK: use HEALTHCHECK [OPTIONS] CMD command, or NONE")
        for name, value in flags:
            try:
                int(value or "") if name == "retries" else parse_duration(value or "")
            except ValueError:
                fail(f"invalid --{name} value {value!r}: " + ("a number" if name == "retries" else
                                                              "a duration such as 30s or 1m30s"))
        command = command.strip()
        try:
            array = _json_array(command)
        except ValueError as e:
            fail(str(e))
        if not command:
            fail("HEALTHCHECK CMD requires a command")
        return make(["CMD", *array], json=True) if array is not None else make(["CMD", command])
    if keyword == "ONBUILD":
        if not rest:
            fail("ONBUILD requires at least one argument")
        trigger = instruction(number, rest, escape, filename)
        if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            fail(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
        return make([rest], trigger=trigger)
    # --8<-- [start:instruction_part5]
    if not rest:  # WORKDIR, USER, STOPSIGNAL, MAINTAINER: the rest of the line, as one string
        fail(f"{keyword} requires exactly one argument")
    return make([rest])
# --8<-- [end:instruction_part5]
# --8<-- [end:instruction]


EXPANDED = ("ADD", "COPY", "ENV", "LABEL", "EXPOSE", "FROM", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ARG")


def check_words(step: Instruction, escape: str = "\\", filename: str = "Dockerfile") -> None:
    """Find a bad ``${...}`` or an unclosed quote now, in the instructions the builder expands."""
    from minidocker.build.shellwords import SubstitutionError, check_syntax

    if step.keyword not in EXPANDED:
        return
    words = [*step.args, *(w for pair in step.pairs for w in pair)]
    if step.keyword == "ARG":
        words = [w.partition("=")[2] for w in step.args]
    words += [value for name, value in step.flags if value and name in ("chown", "platform", "from")]
    for word in words:
        try:
            check_syntax(word, escape)
        except SubstitutionError as e:
            raise DockerfileError(f"{filename}:{step.line}: {e} (in {word!r})") from None


# --8<-- [start:parse]
def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile: directives, ARGs before the first FROM, then the stages."""
    escape, lines, warnings = logical_lines(text, filename)
    if not lines:
        raise DockerfileError(f"{filename}: the file has no instructions")
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for number, line in lines:
        step = instruction(number, line, escape, filename)
        check_words(step, escape, filename)
        if step.keyword == "FROM":
            name = step.args[2].lower() if len(step.args) == 3 else None
            if name and any(s.name == name for s in stages):
                raise DockerfileError(f"{filename}:{number}: duplicate name for build stage: {name!r}")
            stages.append(Stage(len(stages), step.args[0], name, step))
        elif stages:
            stages[-1].instructions.append(step)
        elif step.keyword == "ARG":
            meta_args.append(step)
        else:
            raise DockerfileError(f"{filename}:{number}: {step.keyword} before the first FROM: only ARG "
                                  "may come before FROM (every build stage starts with FROM IMAGE)")
    if not stages:
        raise DockerfileError(f"{filename}: no build stage: a Dockerfile needs a FROM instruction")
    return Dockerfile(filename, escape, meta_args, stages, warnings)
# --8<-- [end:parse]
