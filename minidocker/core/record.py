"""A mutable record: a plain class whose ``__slots__`` are its fields, shown and compared as a dataclass is.

Why not ``dataclasses``: importing it pulls in ``inspect``, ``ast`` and ``dis``, and each class it
builds compiles generated code: about 13 ms on every start of the engine, for a handful of classes.
The frozen records of the runtime are ``collections.namedtuple`` subclasses (``core/spec.py``'s
``IdMap``); the few that change after they are made write their ``__init__`` by hand and take their
``repr`` and equality from here: equal when of the same class with equal fields, never hashable.
``_fields`` names the fields in order, as a named tuple's does.

Example::

    >>> class Point(Record):
    ...     _fields = ("x", "y")
    ...     __slots__ = _fields
    ...     def __init__(self, x: int, y: int = 0) -> None:
    ...         self.x, self.y = x, y
    >>> Point(1)
    Point(x=1, y=0)
    >>> Point(1) == Point(1, 0)
    True
"""

from __future__ import annotations

__all__ = ["Record"]


class Record:
    """Base of a mutable record: ``repr`` and ``==`` over the fields the subclass names in ``_fields``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if type(other) is type(self) else NotImplemented

    __hash__ = None  # mutable: equal records compare equal and none is hashable, as with a dataclass
