"""Chapter 10: ``docker run -u USER[:GROUP]``: become another user inside the container, by name or number.

Names mean what the *container's* ``/etc/passwd`` and ``/etc/group`` say, not the host's: so the
lookup happens inside, after pivot_root, as the last step before exec (a ``before_exec`` hook).
Supplementary groups are reset, then the group, then the user: in that order, because after
``setuid`` to a non-root user we would no longer be allowed to change groups.

Example (in the container, before exec)::

    switch_user("nobody")        # uid 65534, gid 65534 from /etc/passwd
    switch_user("1000:1000")     # numbers need no entry in /etc/passwd
"""

from __future__ import annotations

import os

from minidocker.core.process import EngineError

__all__ = ["resolve_user", "switch_user"]


def _lookup(path: str, name: str) -> list[str] | None:
    try:
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0] == name:
                    return fields
    except OSError:
        pass
    return None


# --8<-- [start:resolve_user]
def resolve_user(user: str) -> tuple[int, int, str]:
    """``USER[:GROUP]`` (names or numbers) -> ``(uid, gid, home)`` from this root's /etc files."""
    name, _, group = user.partition(":")
    entry = _lookup("/etc/passwd", name)
    if entry and len(entry) >= 6:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    elif name.isdigit():
        uid, gid, home = int(name), int(name) if not entry else int(entry[3]), "/"
    else:
        raise EngineError(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        elif found := _lookup("/etc/group", group):
            gid = int(found[2])
        else:
            raise EngineError(f"unable to find group {group}: no matching entries in group file")
    return uid, gid, home
# --8<-- [end:resolve_user]


# --8<-- [start:switch_user]
def switch_user(user: str) -> None:
    """Become ``USER[:GROUP]``: groups first, user last (once we are not root we can't change them)."""
    uid, gid, home = resolve_user(user)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if uid != 0 and os.environ.get("HOME") in (None, "/root"):
        os.environ["HOME"] = home
# --8<-- [end:switch_user]
