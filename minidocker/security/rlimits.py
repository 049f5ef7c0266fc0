"""Chapter 06: resource limits per process (``--ulimit``): open files, processes, core dumps, stack...

Cgroups (chapter 03) limit a container as a whole; rlimits limit each *process*, and every program
inherits its parent's. They are old (setrlimit(2), 4.3BSD) and still the only way to cap, say, the
number of open files of one process (``nofile``) or to forbid core dumps (``core=0``). Each has a
soft limit, which the kernel enforces, and a hard limit, the ceiling up to which the process may
raise its soft limit itself. Raising a hard limit needs ``CAP_SYS_RESOURCE``.

``--ulimit`` takes Docker's syntax: ``NAME=SOFT[:HARD]``, with ``-1`` or ``unlimited`` for no limit.

Example (in the container, before exec)::

    >>> apply(parse(["nofile=1024:2048", "core=0"]))
"""

from __future__ import annotations

import resource
from collections.abc import Iterable, Mapping

from minidocker.core.process import EngineError

__all__ = ["NAMES", "apply", "parse"]

# Docker's names -> <sys/resource.h>. "locks", "sigpending", "msgqueue", "nice", "rtprio" and
# "rttime" are Linux-only, and resource has them only on Linux.
NAMES = {name: getattr(resource, f"RLIMIT_{name.upper()}") for name in (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack", "as") if hasattr(resource, f"RLIMIT_{name.upper()}")}


def _value(text: str, item: str) -> int:
    if text in ("-1", "unlimited"):
        return resource.RLIM_INFINITY
    try:
        value = int(text)
    except ValueError:
        raise EngineError(f"invalid --ulimit {item!r}: {text!r} is not a number") from None
    if value < 0:
        raise EngineError(f"invalid --ulimit {item!r}: limits are 0 or more (-1: unlimited)")
    return value


# --8<-- [start:parse]
def parse(items: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``["nofile=1024:2048"]`` -> ``{"nofile": (1024, 2048)}``; a lone value is both soft and hard."""
    limits = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in NAMES:
            raise EngineError(f"invalid --ulimit {item!r}: use NAME=SOFT[:HARD] with NAME one of "
                              f"{', '.join(sorted(NAMES))}")
        soft_text, _, hard_text = values.partition(":")
        soft = _value(soft_text, item)
        hard = _value(hard_text, item) if hard_text else soft
        if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
            raise EngineError(f"invalid --ulimit {item!r}: the soft limit must not exceed the hard limit")
        limits[name] = (soft, hard)
    return limits
# --8<-- [end:parse]


# --8<-- [start:apply]
def apply(limits: Mapping[str, tuple[int, int]]) -> None:
    """Set each limit on the calling process (children and exec'd programs inherit them)."""
    for name, (soft, hard) in limits.items():
        try:
            resource.setrlimit(NAMES[name], (soft, hard))
        except (ValueError, OSError) as e:
            current = resource.getrlimit(NAMES[name])[1]
            raise EngineError(f"--ulimit {name}={soft}:{hard}: {e} (the hard limit here is {current}; "
                              "raising it needs CAP_SYS_RESOURCE)") from None
# --8<-- [end:apply]
