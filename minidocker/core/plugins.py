"""Discovery of plug-ins: how a later chapter joins an earlier one that never names it.

The book's rule is that chapter N runs with chapters 0..N alone: the daemon (chapter 10) may not
import chapter 12's networks, nor chapter 07's pull chapter 16's signature policy. So the earlier
chapter names a *module name* instead (``plugin`` for the daemon, ``pullcheck`` for the pull), and
imports ``minidocker.<package>.<that name>`` from every package that has one, in name order. A
plug-in whose own imports fail is logged and left out: the rest runs without it.

Example::

    >>> [m.__name__ for m in discover("plugin", skip=("daemon",))]
    ['minidocker.networks.plugin', 'minidocker.trust.plugin']
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from types import ModuleType

import minidocker

__all__ = ["discover"]

log = logging.getLogger("minidocker")
_FOUND: dict[tuple[str, tuple[str, ...]], list[ModuleType]] = {}


# --8<-- [start:discover]
def discover(module: str, skip: tuple[str, ...] = ()) -> list[ModuleType]:
    """Import (once) every ``minidocker.<package>.<module>`` there is, but in ``skip``, in name order."""
    key = (module, skip)
    if key not in _FOUND:
        found = []
        for info in sorted(pkgutil.iter_modules(minidocker.__path__), key=lambda i: i.name):
            if not info.ispkg or info.name in skip:
                continue
            name = f"minidocker.{info.name}.{module}"
            try:
                if importlib.util.find_spec(name) is None:
                    continue
                found.append(importlib.import_module(name))
            except ImportError as e:  # a plug-in whose dependencies are missing: the rest runs on
                log.warning("plug-in %s not loaded: %s", name, e)
        _FOUND[key] = found
    return _FOUND[key]
# --8<-- [end:discover]
