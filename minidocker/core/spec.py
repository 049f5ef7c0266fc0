"""The container spec: the one typed object every stage writes to and chapter 02's engine runs.

As runc's ``specconv`` turns a command line into one OCI spec, every stage turns its options into
fields and hooks of a :class:`ContainerSpec`; nothing else passes between stages. A stage that
needs what an earlier one worked out (the image's layers, the variables given with ``-e``) reads it
here, never from the earlier stage's command-line options.

Hooks run at fixed points of the container's start (``on_created``, ``before_pivot``,
``before_exec``, ``on_exit``). Where two hooks of one point must run in a given order, each says so
when it is added: :meth:`ContainerSpec.add_hook` takes an ``order``, lower first, and hooks of equal
order run as they were added. So "restrict the process, then become the image's user" is declared
by the two chapters that add those hooks, not repaired afterwards by whoever assembles them::

    spec.add_hook("before_exec", restrict, order=ORDER_RESTRICT)          # chapter 06
    spec.add_hook("before_exec", switch_user, order=ORDER_SWITCH_USER)    # chapter 07: last

Example::

    >>> spec = ContainerSpec(rootfs="/tmp/rootfs", argv=["/bin/true"])
    >>> spec.add_hook("before_exec", lambda: print("second"), order=ORDER_SWITCH_USER)
    >>> spec.add_hook("before_exec", lambda: print("first"))
    >>> for hook in spec.hooks("before_exec"): hook()
    first
    second
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Callable

__all__ = ["DEFAULT_NAMESPACES", "HOOK_POINTS", "ORDER_DEFAULT", "ORDER_FINAL", "ORDER_FIRST",
           "ORDER_RESTRICT", "ORDER_SWITCH_USER", "ContainerSpec", "IdMap"]

DEFAULT_NAMESPACES = frozenset({"mount", "uts", "ipc", "pid", "net", "cgroup"})
HOOK_POINTS = ("on_created", "before_pivot", "before_exec", "on_exit")

# The order of hooks at one point, lower first. A hook added without one (or appended to the list
# directly) has ORDER_DEFAULT.
ORDER_FIRST = -100  # before everything: take the controlling terminal while the process is whole
ORDER_DEFAULT = 0
ORDER_RESTRICT = 100  # drop what the process may do (capabilities, seccomp): after all that needs them
ORDER_SWITCH_USER = 200  # become the image's user, once the restrictions are set
ORDER_FINAL = 300  # after the switch: the capability sets the user keeps (runc's finalizeNamespace)


class IdMap(namedtuple("IdMap", "inside outside count", defaults=(0, 100000, 65536))):
    """One line of ``/proc/PID/uid_map``: ids ``inside..inside+count`` are host ids ``outside..``."""

    __slots__ = ()
    inside: int
    outside: int
    count: int


class ContainerSpec:
    """Everything needed to start one container, plus the hooks later chapters attach.

    Hooks run at fixed points of chapter 02's ``start``, each point's in :meth:`hooks` order:

    * ``on_created(pid)``: in the engine, once the namespaces exist, before the container runs
      anything (join a cgroup, move a network device in);
    * ``before_pivot(root)``: in the container, after /proc, /dev and /sys are mounted under
      ``root`` and before pivot_root (bind-mount more files in);
    * ``before_exec()``: in the container, last thing before exec (drop privileges);
    * ``on_exit(wait_status)``: in the engine, after the container's PID 1 has exited.

    The fields stages hand on to later ones: ``layers`` (the image's layers, bottom first: ``sha256:``
    diff IDs or paths, for chapter 04's overlay stage), ``image_config`` (the image's config, ``{"config":
    {...}}``, when it runs one) and ``user_env`` (the variables the user set, also in ``env``: they win
    over an image's). An empty ``hostname`` means the short id, an empty ``cwd`` means ``/`` (or the
    image's working directory). ``rootfs_propagation`` is how the container's mounts relate to the
    host's: ``rprivate`` (none), or ``rslave`` (the host's new mounts reach it: a bind asked for it).

    Every field is also a keyword of the constructor, and stays a plain attribute that later
    chapters change (``spec.rootfs = ...``). A plain class rather than a dataclass: ``dataclasses``
    alone would add 10 ms to every start of the engine.
    """

    def __init__(self, rootfs: str = "", argv: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: str = "/", hostname: str = "", id: str | None = None,
                 namespaces: set[str] | None = None, id_map: IdMap | None = None, init: bool = False,
                 on_created: list[Callable[[int], None]] | None = None,
                 before_pivot: list[Callable[[str], None]] | None = None,
                 before_exec: list[Callable[[], None]] | None = None,
                 on_exit: list[Callable[[int], None]] | None = None,
                 layers: list[str] | None = None, image_config: dict | None = None,
                 user_env: dict[str, str] | None = None) -> None:
        self.rootfs = rootfs
        self.argv = [] if argv is None else argv
        self.env = {} if env is None else env
        self.cwd = cwd
        self.hostname = hostname
        self.id = os.urandom(32).hex() if id is None else id
        self.namespaces = set(DEFAULT_NAMESPACES) if namespaces is None else namespaces
        self.id_map = id_map
        self.init = init
        self.on_created = [] if on_created is None else on_created
        self.before_pivot = [] if before_pivot is None else before_pivot
        self.before_exec = [] if before_exec is None else before_exec
        self.on_exit = [] if on_exit is None else on_exit
        self.layers = [] if layers is None else layers
        self.image_config = image_config
        self.user_env = {} if user_env is None else user_env
        self.rootfs_propagation = "rprivate"
        self.hook_order: dict[int, int] = {}  # id(hook) -> its order, for those added with one

    def add_hook(self, point: str, hook: Callable, order: int = ORDER_DEFAULT) -> None:
        """Add ``hook`` at ``point`` (one of :data:`HOOK_POINTS`), to run in ``order`` (lower first)."""
        if point not in HOOK_POINTS:
            raise ValueError(f"no hook point {point!r}: use one of {', '.join(HOOK_POINTS)}")
        getattr(self, point).append(hook)
        self.hook_order[id(hook)] = order

    def hooks(self, point: str) -> list[Callable]:
        """The hooks of ``point`` in the order they run: by their declared order, then as added."""
        return sorted(getattr(self, point), key=lambda hook: self.hook_order.get(id(hook), ORDER_DEFAULT))

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if k != "hook_order"}
        return f"ContainerSpec({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if type(other) is type(self) else NotImplemented

    __hash__ = None  # mutable: like a dataclass, equal specs compare equal and none is hashable
