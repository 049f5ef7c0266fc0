"""Chapter 07: an image's config becomes the container's command, environment, directory and user.

An image says how it wants to run: ``Entrypoint`` and ``Cmd``, ``Env``, ``WorkingDir``, ``User``,
``ExposedPorts``, ``StopSignal``. ``docker run`` options override it, by rules that surprise
everyone once: a user ``--entrypoint`` drops the image's ``Cmd``; image ``Env`` keys the user did
not set are kept; an empty ``User`` means the image's; the image's ``ExposedPorts`` and
``Labels`` are added to the user's. :func:`merge` applies Docker's rules to the options of a run;
:func:`merge_api_config` applies the same rules to the Engine API's ``Config`` (what ``docker
inspect`` shows): the daemon (chapter 10) calls it when it creates a container, and its engine
then calls :func:`merge` on the result. A user *name* means what the image's own ``/etc/passwd``
says, so :func:`resolve_user` runs inside the container, after ``pivot_root``.

Example::

    >>> merge({"config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Env": ["A=1"]}},
    ...       RunOptions(env={"B": "2"})).argv
    ['/bin/sh', '-c', 'echo hi']
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minidocker.core.process import DEFAULT_PATH, EngineError

__all__ = ["RunConfig", "RunOptions", "merge", "merge_api_config", "parse_signal", "resolve_groups",
           "resolve_user", "user_switcher"]


@dataclass
class RunOptions:
    """What the user of ``docker run`` asked for; ``None`` means "not given, use the image's".

    ``entrypoint=[""]`` is ``--entrypoint ""``: no entrypoint at all, and no image ``Cmd`` either.
    """

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    stop_signal: str | None = None
    hostname: str = ""
    tty: bool = False


@dataclass
class RunConfig:
    """The merged result: what the container really runs with."""

    argv: list[str]
    env: dict[str, str]
    workdir: str
    user: str
    stop_signal: int
    exposed_ports: list[str]
    volumes: list[str]
    labels: dict[str, str]
    group_add: list[str] = field(default_factory=list)  # --group-add: names (the image's) or numbers


def _env_dict(entries: list[str] | None) -> dict[str, str]:
    result = {}
    for item in entries or []:
        key, _, value = item.partition("=")
        result[key] = value
    return result


# exercise 07.7: Merge the docker run options over the image's config
# hint: entrypoint: the option's, else the image's; cmd: the option's, else the image's only when no
#   --entrypoint was given; [''] means none; env: PATH and HOSTNAME (TERM=xterm with a tty), the image's
#   unless the user set them, then the user's; workdir, user, stop signal (parse_signal, SIGTERM), sorted
#   ExposedPorts and Volumes, Labels: the option's, else the image's.
# --8<-- [start:merge]
def merge(image: dict[str, Any], options: RunOptions) -> RunConfig:
    """Docker's merge of ``docker run`` options over an image config (``{"config": {...}, ...}``)."""
    config = image.get("config") or {}
    entrypoint = list(config.get("Entrypoint") or []) if options.entrypoint is None else options.entrypoint
    if options.cmd:
        cmd = list(options.cmd)
    elif options.entrypoint is None:
        cmd = list(config.get("Cmd") or [])  # the image's Cmd only goes with the image's Entrypoint
    else:
        cmd = []
    if entrypoint == [""]:
        entrypoint = []
    # The daemon's defaults first, then the user's variables, then the image's that are left.
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": options.hostname}
    if options.tty:
        env["TERM"] = "xterm"
    image_env = _env_dict(config.get("Env"))
    env.update({k: v for k, v in image_env.items() if k not in options.env})
    env.update(options.env)
    return RunConfig(
        argv=entrypoint + cmd,
        env=env,
        workdir=options.workdir or config.get("WorkingDir") or "/",
        user=options.user if options.user is not None else config.get("User") or "",
        stop_signal=parse_signal(options.stop_signal or config.get("StopSignal") or "SIGTERM"),
        exposed_ports=sorted(config.get("ExposedPorts") or {}),
        volumes=sorted(config.get("Volumes") or {}),
        labels=dict(config.get("Labels") or {}),
    )
# --8<-- [end:merge]


# --8<-- [start:merge_api_config]
def merge_api_config(image_config: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The same rules on the Engine API's ``Config``: the request's ``config``, the image's for the rest.

    As dockerd's ``merge``: an ``Entrypoint`` of its own drops the image's ``Cmd``; ``Env`` is
    merged by key (the request's win); ``Labels`` and ``ExposedPorts`` are the union of both;
    ``WorkingDir``, ``User`` and ``StopSignal`` are the image's unless the request sets them.
    """
    cfg = dict(config)
    if not cfg.get("Entrypoint"):
        if not cfg.get("Cmd"):
            cfg["Cmd"] = image_config.get("Cmd")
        if cfg.get("Entrypoint") is None:
            cfg["Entrypoint"] = image_config.get("Entrypoint")
    env = {item.partition("=")[0]: item for item in image_config.get("Env") or []}
    env.update({item.partition("=")[0]: item for item in cfg.get("Env") or []})
    cfg["Env"] = list(env.values())
    for key in ("WorkingDir", "User", "StopSignal"):
        cfg[key] = cfg.get(key) or image_config.get(key) or ""
    cfg["Labels"] = {**(image_config.get("Labels") or {}), **(cfg.get("Labels") or {})}
    ports = {**(image_config.get("ExposedPorts") or {}), **(cfg.get("ExposedPorts") or {})}
    cfg["ExposedPorts"] = ports or None  # omitted from docker inspect when there are none
    return cfg
# --8<-- [end:merge_api_config]


def parse_signal(name: str | int) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15`` -> 15; an unknown one is a one-line error."""
    text = str(name).strip().upper()
    if text.isdigit():
        return int(text)
    try:
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise EngineError(f"invalid signal: {name}") from None


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


# exercise 07.8: Look USER[:GROUP] up in the image's passwd and group files
# hint: the name (default '0') in ETC/passwd (_entries); a number matches a uid, or stands alone (gid 0,
#   home '/'); an unknown name: EngineError; an explicit group (name or number) gives no supplementary
#   groups; otherwise those of ETC/group listing the login, without the primary gid, sorted.
# --8<-- [start:resolve_user]
def resolve_user(user: str, etc: str = "/etc") -> tuple[int, int, list[int], str]:
    """``USER[:GROUP]`` (names or numbers) -> ``(uid, gid, supplementary gids, home)``.

    As runc does: names are looked up in ``etc/passwd`` and ``etc/group``; a number needs no entry
    (then gid 0 and home ``/``); the supplementary groups are those listing the user, unless a
    group was given explicitly.
    """
    name, _, group = (user or "0").partition(":")
    passwd = [e for e in _entries(f"{etc}/passwd") if len(e) >= 7]
    found = next((e for e in passwd if e[0] == name), None)
    if found is None and name.isdigit():
        found = next((e for e in passwd if e[2] == name), None) or [name, "", name, "0", "", "/", ""]
    if found is None:
        raise EngineError(f"unable to find user {name}: no matching entries in passwd file")
    uid, gid, home, login = int(found[2]), int(found[3]), found[5] or "/", found[0]
    groups = [e for e in _entries(f"{etc}/group") if len(e) >= 4]
    if group:
        entry = next((e for e in groups if e[0] == group), None)
        if entry is None and not group.isdigit():
            raise EngineError(f"unable to find group {group}: no matching entries in group file")
        return uid, int(entry[2]) if entry else int(group), [], home
    extra = [int(e[2]) for e in groups if login in e[3].split(",") and e[2].isdigit()]
    return uid, gid, sorted(set(extra) - {gid}), home
# --8<-- [end:resolve_user]


def resolve_groups(groups: list[str], etc: str = "/etc") -> list[int]:
    """``--group-add`` values -> gids: a number as it is, a name looked up in the image's group file.

    Example: ``resolve_groups(["wheel", "1234"])`` -> ``[10, 1234]`` in busybox's image.
    """
    entries = {e[0]: e[2] for e in _entries(f"{etc}/group") if len(e) >= 3 and e[2].isdigit()}
    found = []
    for group in groups:
        if group.isdigit():
            found.append(int(group))
        elif group in entries:
            found.append(int(entries[group]))
        else:
            raise EngineError(f"Unable to find group {group}: no matching entries in group file")
    return found


# exercise 07.9: Become the image's user inside the container
# hint: return a function that resolves run.user, creates run.workdir (0o755, chowned to uid:gid) if
#   missing, sets HOME if unset, then (only if a user is set) setgroups, setresgid, setresuid: in that order.
# --8<-- [start:user_switcher]
def user_switcher(run: RunConfig) -> Callable[[], None]:
    """A ``before_exec`` hook: create the working directory, then become the configured user.

    It runs inside the container after ``pivot_root``: ``/etc/passwd`` is the image's. Groups
    first, user last: once we are not root we may no longer change groups.
    """

    def switch() -> None:
        uid, gid, extra, home = resolve_user(run.user)
        if not os.path.isdir(run.workdir):
            os.makedirs(run.workdir, 0o755)
            os.chown(run.workdir, uid, gid)
        run.env.setdefault("HOME", home)
        if run.group_add:
            extra = sorted({*extra, *resolve_groups(run.group_add)})
        if run.user or run.group_add:
            os.setgroups(extra)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)

    return switch
# --8<-- [end:user_switcher]
