"""Chapter 08: the Dockerfile's own little shell: quotes, escapes and ``$VAR`` substitution in words.

Some instructions (``ENV``, ``LABEL``, ``ARG``, ``COPY``, ``ADD``, ``WORKDIR``, ``USER``, ``EXPOSE``,
``VOLUME``, ``STOPSIGNAL``, ``FROM``) are not run by a shell, yet they understand a bit of shell
syntax: the *builder* replaces ``$NAME``, ``${NAME}``, ``${NAME:-default}`` and ``${NAME:+alt}``
with the values of ``ENV`` and ``ARG`` known at that point, and removes quotes and escapes.
``RUN``, ``CMD`` and ``ENTRYPOINT`` are not touched: their ``$HOME`` is for the shell in the
container, which sees the container's environment.

The rules are Docker's (``moby/buildkit``'s ``shell/lex.go``): single quotes keep everything
literal; double quotes keep everything but ``$`` and the escape character (``\\`` by default,
or ````` after ``# escape=`````); ``${NAME-x}``/``${NAME+x}`` test *set*, the ``:`` forms test
*set and not empty*, ``${NAME?msg}`` and ``${NAME:?msg}`` fail the build.

Example::

    >>> expand('"${GREETING:-hello} $NAME"', {"NAME": "world"})
    'hello world'
    >>> expand_words("a 'b c' $X", {"X": "d e"})
    ['a', 'b c', 'd', 'e']
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SubstitutionError", "check_syntax", "expand", "expand_words"]

_SPECIAL = "@*#?-$!0"


class SubstitutionError(ValueError):
    """A word that cannot be expanded: unbalanced quotes, ``${`` without ``}``, ``${X:?message}``."""


class _Scanner:
    """One word being expanded: the text, a position in it, the variables, the escape character."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.pos, self.env, self.escape = text, 0, env, escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    # --8<-- [start:scan_word]
    def word(self, stop: str = "") -> tuple[str, list[str]]:
        """Scan up to ``stop`` (or the end): the expanded text, and the same split into words.

        Text from quotes stays in one word; text from a variable is split at spaces (as a shell
        would); an escaped character is kept literally, whatever it is.
        """
        result, words, current, in_word = [], [], [], False

        def add(text: str, split: bool) -> None:
            nonlocal in_word
            for ch in text:
                if split and ch.isspace():
                    if in_word and current:
                        words.append("".join(current))
                        current.clear()
                    in_word = False
                else:
                    current.append(ch)
                    in_word = True

        while (ch := self.peek()) != "":
            if stop and ch == stop:
                self.next()
                break
            if ch == "$":
                value = self.dollar()
                result.append(value)
                add(value, split=True)
            elif ch == "'":
                value = self.single_quoted()
                result.append(value)
                add(value, split=False)
                in_word = True
            elif ch == '"':
                value = self.double_quoted()
                result.append(value)
                add(value, split=False)
                in_word = True
            else:
                self.next()
                if ch == self.escape:
                    ch = self.next()
                    if ch == "":
                        break  # an escape at the very end is dropped
                    add(ch, split=False)
                else:
                    add(ch, split=True)
                result.append(ch)
        else:
            if stop:
                raise SubstitutionError(f"missing '{stop}'")
        if current:
            words.append("".join(current))
        return "".join(result), words
    # --8<-- [end:scan_word]

    def single_quoted(self) -> str:
        self.next()
        start = self.pos
        end = self.text.find("'", start)
        if end < 0:
            raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
        self.pos = end + 1
        return self.text[start:end]

    def double_quoted(self) -> str:
        self.next()
        result = []
        while True:
            ch = self.peek()
            if ch == "":
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(result)
            if ch == "$":
                result.append(self.dollar())
                continue
            self.next()
            if ch == self.escape and self.peek() == "":
                continue  # an escape at the very end is dropped
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                ch = self.next()  # \" \$ \\ lose their backslash; any other stays as it is
            result.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            start = self.pos
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        if ch and ch in _SPECIAL:
            return self.next()
        start = self.pos
        while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
            self.next()
        return self.text[start:self.pos]

    # --8<-- [start:dollar]
    def dollar(self) -> str:
        """One substitution: ``$NAME``, ``${NAME}``, or ``${NAME`` + modifier + ``word}``.

        Modifiers: ``-`` (the word if unset), ``+`` (the word if set), ``?`` (fail if unset); with a
        ``:`` before them (``:-``, ``:+``, ``:?``) an empty value counts as unset.
        """
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if self.peek() in ("", "{", "}", ":"):
            raise SubstitutionError("bad substitution" if self.peek() else "missing '}'")
        name = self.name()
        ch = self.next()
        if ch == "":
            raise SubstitutionError("missing '}'")
        if ch == "}":
            return self.env.get(name, "")
        modifier = ch
        if ch == ":":
            modifier += self.next()
        if modifier[-1:] not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        word, _ = self.word(stop="}")
        is_set = name in self.env
        empty = is_set and self.env[name] == ""
        unset = not is_set or (modifier.startswith(":") and empty)
        if modifier.endswith("-"):
            return word if unset else self.env[name]
        if modifier.endswith("+"):
            return "" if unset else word
        if unset:
            why = word or ("is not allowed to be empty" if is_set else "is not allowed to be unset")
            raise SubstitutionError(f"{name}: {why}")
        return self.env[name]
    # --8<-- [end:dollar]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word, variables substituted and quotes and escapes removed (spaces inside are kept)."""
    return _Scanner(word, env, escape).word()[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Substitute, then split into words at unquoted spaces (``EXPOSE $PORTS``)."""
    return _Scanner(text, env, escape).word()[1]


class _Anything(dict):
    """Variables for a syntax check: every name is set (to "x"), so only bad syntax can fail."""

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: object, default: object = None) -> str:  # type: ignore[override]
        return "x"

    def __getitem__(self, key: object) -> str:
        return "x"


def check_syntax(word: str, escape: str = "\\") -> None:
    """Raise :class:`SubstitutionError` if ``word`` is malformed, whatever the variables' values."""
    _Scanner(word, _Anything(), escape).word()
