"""JSON through the standard library's C scanner and C encoder alone, without the ``json`` package.

Why? ``import json`` compiles three regular expressions, so it imports ``re`` and ``enum``: about
5 ms, a quarter of what ``minidocker ps`` may take in all. ``json``'s own decoder is a thin layer
over ``_json.make_scanner``, a C function: this calls it directly. It decodes exactly what
``json.loads`` decodes (same types, same floats, ``NaN`` and ``Infinity`` accepted as ``json``
does); anything it cannot decode is handed to ``json.loads``, imported then, for its error message.
:func:`dumps` is ``json.dumps`` with its defaults, through ``_json.make_encoder`` alike: ``run``
sends a body, and needs no more of ``json`` than that.

Example::

    >>> loads(b'[{"Id": "4bf2", "Names": ["/web"]}]')
    [{'Id': '4bf2', 'Names': ['/web']}]
    >>> dumps({"Image": "busybox", "Cmd": None})
    '{"Image": "busybox", "Cmd": null}'
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    from typing import Any

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``: its options, as ``json``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}  # keys seen, shared while one document is scanned


_CONTEXT = _Context()
_scan = _json.make_scanner(_CONTEXT)


def loads(data: bytes | bytearray | str) -> Any:
    """One JSON document (UTF-8 bytes or text) as Python values, like :func:`json.loads`."""
    value, end, text = None, -1, ""
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else data
        value, end = _scan(text, len(text) - len(text.lstrip(_WHITESPACE)))
    except (StopIteration, ValueError):  # UnicodeDecodeError too: json.loads also reads UTF-16 and -32
        pass
    finally:
        _CONTEXT.memo.clear()
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json  # not a document we decode: json.loads says what is wrong (or decodes a BOM'd one)

        return json.loads(data)
    return value


def _unserializable(value: object) -> None:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(value: Any, separators: tuple[str, str] = (", ", ": ")) -> str:
    """``value`` as JSON text, exactly as :func:`json.dumps` with its defaults writes it (ASCII only,
    ``", "`` and ``": "`` between items unless ``separators`` says otherwise, as json's does, ``NaN``
    allowed, a cycle a ``ValueError``)."""
    item_separator, key_separator = separators
    encode = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, key_separator,
                                item_separator, False, False, True)
    return "".join(encode(value, 0))
