"""Sizes as Docker reads and prints them: ``--memory 64m`` in, ``4.28MB`` out.

Docker does both with one small Go library, go-units, and users know its rules from every
command: sizes *typed* are binary (``RAMInBytes``: ``k`` is 1024, so ``64m`` is 64 MiB), sizes
*printed* are decimal (``HumanSizeWithPrecision``: ``kB`` is 1000, so ``docker images`` shows
``4.28MB``). Every option that takes a size (``--memory``, ``--memory-swap``, ``--log-opt
max-size``) and every table that shows one goes through these two functions, so they cannot drift.

Example::

    >>> parse_size("64m"), parse_size("1.5GiB"), parse_size("512")
    (67108864, 1610612736, 512)
    >>> parse_size("12x")
    Traceback (most recent call last):
    ValueError: invalid size: '12x'
    >>> human_size(4283948), human_size(4100), human_size(1_048_576, 4)
    ('4.28MB', '4.1kB', '1.049MB')
"""

from __future__ import annotations

__all__ = ["human_size", "parse_size"]

# go-units' RAMInBytes: a number, one optional space, an optional unit, then an optional "b" or "ib"
# ("64m", "64 MB", "64MiB", "100b"); any case. Nothing else: no sign, no exponent, no spaces around.
# A pattern, compiled (and cached) by re at its first use: `images` prints sizes and needs no re (nor enum).
_SIZE = r"(?i)(\d+(?:\.\d+)?) ?(?:([kmgtp])(?:i?b)?|b)?"
_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


# exercise 03.2: Parse Docker's sizes: 64m, 1.5g, 512k, bytes
# hint: an int is already bytes (refuse negatives); otherwise re.fullmatch(_SIZE, text) (import re in the
#   function: this module leaves it out for `images`) gives the number and
#   the unit, _UNITS[unit.lower() if unit else None] the multiplier; int(float(number) * multiplier).
#   ValueError("invalid size: '12x'") for anything else, as Docker says it.
# --8<-- [start:parse_size]
def parse_size(text: str | int) -> int:
    """Docker's size syntax in bytes: ``64m``, ``1.5g``, ``512k``, ``64MiB``, ``64 MB``, ``1048576``.

    Units are binary (``k`` is 1024), in any case, with an optional ``b`` or ``ib`` after them, as
    go-units' ``RAMInBytes`` (which ``docker run --memory`` uses) reads them. Anything else raises
    ``ValueError`` with Docker's own message, ``invalid size: '12x'``; so does a negative number.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"invalid size: '{text}'")
        return text
    import re

    match = re.fullmatch(_SIZE, text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower() if unit else None])
# --8<-- [end:parse_size]


def human_size(size: float, precision: int = 3) -> str:
    """A size in decimal units with ``precision`` significant digits, as go-units prints it.

    ``docker images``, ``ps --size`` and ``system df`` print 3 digits (``4.28MB``, ``4.1kB``,
    ``512B``: go-units' ``HumanSizeWithPrecision(size, 3)``); pull and push progress bars print 4
    (``1.049MB``: its ``HumanSize``). Units are powers of 1000 written ``kB``, ``MB``, ``GB``...
    """
    unit = 0
    while size >= 1000 and unit < len(_DECIMAL) - 1:
        size /= 1000
        unit += 1
    return f"{size:.{precision}g}{_DECIMAL[unit]}"
