"""The ``minidocker`` command's client: Docker-style commands sent to the daemon over its socket.

``minidocker run``, ``ps``, ``images`` ... talk to ``minidockerd`` over its socket (chapter 11); the
daemon address comes from ``-H``/``--host``, else ``$MINIDOCKER_HOST``, else the default socket, so
one client can drive several daemons.

The client is a client of the API and nothing else, as docker's CLI: it imports only ``core``. The
commands that need more (``build``, whose context is chapter 08's tar; ``doctor``, ``rootfs``,
``registry``, ``exercises``, which work on this host without a daemon) are plugged in by whoever
assembles the command, :mod:`minidocker.__main__`: :func:`main` takes them as ``tools`` (run without
a daemon) and ``commands`` (run with a client, errors reported like the client's own).

Start-up time matters for a command typed a hundred times a day: this module imports nothing
heavy, and each command imports only its own module (never aiohttp, pyroute2 or the daemon).

Example::

    main(["-H", "unix:///run/minidocker.sock", "ps"])          # the client's own command
    main(["doctor"], tools={"doctor": doctor.main})             # a plugged-in host tool
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    from collections.abc import Callable

    from minidocker.client.client import Client

    Tool = Callable[[list[str]], int]  # a command without a daemon: its arguments -> exit status
    Command = Callable[[Client, list[str]], int]  # a command against the daemon

__all__ = ["main", "make_client"]

USAGE = """usage: minidocker [-H HOST] [--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY] COMMAND

containers:
  run, create, start, stop, kill, restart, rm, ps, logs, exec, inspect, wait, stats, commit, diff, port,
  pause, unpause, rename, top, cp, update, attach, export
images:
  pull, push, images, rmi, tag, save, load, import, login, logout, build, history, builder prune
groups (alone, each lists its commands; `minidocker container ls` is `minidocker ps`):
  container, image, volume, network, system, builder
other:
  version, info, events, system prune, system df
  network ls|inspect|create|rm|prune|connect|disconnect
  daemon start|stop|status   start (as root) or stop a minidockerd in the background
  registry serve|gc|htpasswd a registry server (chapter 09)
  exercises ...              exercises generated from the code, and their grading
  doctor                     check what this host supports, and how to fix what is missing
  rootfs                     build (once) and print the busybox root filesystem
"""

CONTAINER_COMMANDS = {"run", "create", "start", "stop", "kill", "restart", "rm", "ps", "logs", "exec",
                      "inspect", "wait", "stats", "commit", "diff", "port", "container", "events", "pause",
                      "unpause", "rename", "top", "cp", "update", "attach", "export"}
IMAGE_COMMANDS = {"pull", "push", "images", "rmi", "tag", "save", "load", "login", "logout", "import",
                  "volume", "version", "info", "system", "image", "container-prune", "image-prune"}

# Docker's management commands: GROUP -> (what it is, {SUBCOMMAND: (the command it runs, what it does)}).
# For container and image, ``minidocker container ls ARGS`` runs ``minidocker ps ARGS``; the other
# groups' modules read the subcommand themselves (None). Aliases as docker's: ls = list, rm = remove.
GROUPS: dict[str, tuple[str, dict[str, tuple[str | None, str]]]] = {
    "container": ("Manage containers", {
        "attach": ("attach", "Attach local standard input, output, and error streams to a running container"),
        "commit": ("commit", "Create a new image from a container's changes"),
        "cp": ("cp", "Copy files/folders between a container and the local filesystem"),
        "create": ("create", "Create a new container"),
        "diff": ("diff", "Inspect changes to files or directories on a container's filesystem"),
        "exec": ("exec", "Execute a command in a running container"),
        "export": ("export", "Export a container's filesystem as a tar archive"),
        "inspect": ("inspect", "Display detailed information on one or more containers"),
        "kill": ("kill", "Kill one or more running containers"),
        "logs": ("logs", "Fetch the logs of a container"),
        "ls": ("ps", "List containers"),
        "pause": ("pause", "Pause all processes within one or more containers"),
        "port": ("port", "List port mappings or a specific mapping for the container"),
        "rename": ("rename", "Rename a container"),
        "restart": ("restart", "Restart one or more containers"),
        "rm": ("rm", "Remove one or more containers"),
        "prune": ("container-prune", "Remove all stopped containers"),
        "run": ("run", "Create and run a new container from an image"),
        "start": ("start", "Start one or more stopped containers"),
        "stats": ("stats", "Display a live stream of container(s) resource usage statistics"),
        "stop": ("stop", "Stop one or more running containers"),
        "top": ("top", "Display the running processes of a container"),
        "unpause": ("unpause", "Unpause all processes within one or more containers"),
        "update": ("update", "Update configuration of one or more containers"),
        "wait": ("wait", "Block until one or more containers stop, then print their exit codes")}),
    "image": ("Manage images", {
        "build": ("build", "Build an image from a Dockerfile"),
        "history": ("history", "Show the history of an image"),
        "import": ("import", "Import the contents from a tarball to create a filesystem image"),
        "inspect": ("inspect", "Display detailed information on one or more images"),
        "load": ("load", "Load an image from a tar archive or STDIN"),
        "ls": ("images", "List images"),
        "pull": ("pull", "Download an image from a registry"),
        "prune": ("image-prune", "Remove unused images"),
        "push": ("push", "Upload an image to a registry"),
        "rm": ("rmi", "Remove one or more images"),
        "save": ("save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
        "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")}),
    "volume": ("Manage volumes", {
        "create": (None, "Create a volume"), "inspect": (None, "Display detailed information on one or "
                                                                "more volumes"),
        "ls": (None, "List volumes"), "prune": (None, "Remove unused local volumes"),
        "rm": (None, "Remove one or more volumes")}),
    "network": ("Manage networks", {
        "connect": (None, "Connect a container to a network"),
        "create": (None, "Create a network"),
        "disconnect": (None, "Disconnect a container from a network"),
        "inspect": (None, "Display detailed information on one or more networks"),
        "ls": (None, "List networks"), "prune": (None, "Remove all unused networks"),
        "rm": (None, "Remove one or more networks")}),
    "system": ("Manage minidocker", {"df": (None, "Show docker disk usage"),
                                     "info": (None, "Display system-wide information"),
                                     "prune": (None, "Remove unused data")}),
    "builder": ("Manage builds", {"prune": (None, "Remove build cache")}),
    "daemon": ("Manage the minidockerd daemon", {
        "start": (None, "Start a minidockerd in the background (as root)"),
        "status": (None, "Tell whether a minidockerd answers"),
        "stop": (None, "Stop the minidockerd of this run directory (containers keep running)")}),
}
ALIASES = {"container": {"list": "ls", "ps": "ls", "remove": "rm"},
           "image": {"list": "ls", "images": "ls", "remove": "rm", "rmi": "rm"},
           "volume": {"list": "ls", "remove": "rm"}, "network": {"list": "ls", "remove": "rm"}}


def _global_options(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """``-H HOST``, ``--host=HOST`` and Docker's TLS flags, before the command."""
    found: dict[str, str | bool] = {}
    with_value = {"-H": "host", "--host": "host", "--tlscacert": "ca", "--tlscert": "cert", "--tlskey": "key"}
    while argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        option, _, value = argv.pop(0).partition("=")
        if option in with_value:
            if not value:
                if not argv:
                    raise SystemExit(f"minidocker: {option} needs a value")
                value = argv.pop(0)
            found[with_value[option]] = value
        elif option in ("--tls", "--tlsverify"):
            found["tls"] = True
        else:
            raise SystemExit(f"minidocker: unknown option {option!r} (see 'minidocker --help')")
    return found, argv


def _subcommands(group: str) -> dict[str, tuple[str | None, str]]:
    """The group's subcommands this client has (a container or image command must exist here)."""
    known = CONTAINER_COMMANDS | IMAGE_COMMANDS | {"build", "history"}
    return {name: entry for name, entry in GROUPS[group][1].items() if entry[0] is None or entry[0] in known}


def group_help(group: str) -> str:
    """What ``docker container`` prints: the group's usage and its commands."""
    commands = _subcommands(group)
    width = max(len(name) for name in commands) + 2
    lines = [f"  {name.ljust(width)}{about}" for name, (_, about) in sorted(commands.items())]
    return (f"Usage:  minidocker {group} COMMAND\n\n{GROUPS[group][0]}\n\nCommands:\n" + "\n".join(lines)
            + f"\n\nRun 'minidocker {group} COMMAND --help' for more information on a command.\n")


def resolve_group(group: str, rest: list[str]) -> tuple[str, list[str]] | int:
    """``minidocker GROUP SUB ARGS`` -> the command to run and its arguments, or an exit status.

    As docker: the group alone prints its help on stderr (exit 0), ``--help`` on stdout (exit 0),
    an unknown subcommand says so (exit 1).
    """
    if not rest or rest[0] in ("-h", "--help"):
        print(group_help(group), end="", file=sys.stderr if not rest else sys.stdout)
        return 0
    commands = _subcommands(group)
    sub = ALIASES.get(group, {}).get(rest[0], rest[0])
    if sub not in commands:
        print(f"minidocker: unknown command: minidocker {group} {rest[0]}\n\nUsage:  minidocker {group} "
              f"COMMAND\n\nRun 'minidocker {group} --help' for more information", file=sys.stderr)
        return 1
    target = commands[sub][0]
    if target is None:  # the group's module reads the subcommand
        return group, [sub, *rest[1:]]
    if target == "inspect":  # `container inspect` looks for containers only, `image inspect` for images
        return target, ["--type", group, *rest[1:]]
    return target, rest[1:]


def make_client(options: dict) -> object:
    """A :class:`minidocker.client.client.Client` for the daemon the options (or environment) name."""
    import os

    from minidocker.client.client import Client

    tls = None
    if options.get("tls") or options.get("ca") or os.environ.get("MINIDOCKER_TLS_VERIFY"):
        certs = os.environ.get("MINIDOCKER_CERT_PATH", os.path.expanduser("~/.minidocker"))
        tls = {"ca": options.get("ca") or f"{certs}/ca.pem",
               "cert": options.get("cert") or f"{certs}/cert.pem",
               "key": options.get("key") or f"{certs}/key.pem"}
    return Client(options.get("host"), tls)


def _engine_error() -> type[Exception]:
    """core's EngineError, imported once a command has failed: ``ps`` need not import ``signal`` for it.

    (An ``except`` clause's tuple is evaluated only when an exception is being matched.)
    """
    from minidocker.core.process import EngineError

    return EngineError


# --8<-- [start:main]
# --8<-- [start:main_part1]
def _command(command: str) -> Command | None:
    """The client's own command ``command``, its module imported now (and only it), or None."""
    if command == "daemon":
        from minidocker.client import daemon as cli_daemon

        return lambda client, rest: cli_daemon.main(rest, client)
    if command in CONTAINER_COMMANDS:
        from minidocker.client import containers as module
    elif command == "network":
        from minidocker.client import networks as module  # type: ignore[no-redef]
    elif command in IMAGE_COMMANDS:
        from minidocker.client import images as module  # type: ignore[no-redef]
    else:
        return None
    return module.COMMANDS[command]
# --8<-- [end:main_part1]


# --8<-- [start:main_part2]
def main(argv: list[str] | None = None, tools: dict[str, Tool] | None = None,
         commands: dict[str, Command] | None = None) -> int:
# --8<-- [end:main_part2]
    """Dispatch to a subcommand, importing only that subcommand's module.

    ``tools`` and ``commands`` are the commands plugged in by the assembler (:mod:`minidocker.__main__`):
    a tool runs without a daemon, a command gets a client and has its errors reported as ours.
    """
    # --8<-- [start:main_part3]
    argv = list(sys.argv[1:] if argv is None else argv)
    options, argv = _global_options(argv)
    # --8<-- [end:main_part3]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command in GROUPS:
        resolved = resolve_group(command, rest)
        if isinstance(resolved, int):
            return resolved
        command, rest = resolved
    # --8<-- [start:main_part4]
    if tools and command in tools:
        return tools[command](rest)
    run = (commands or {}).get(command) or _command(command)
    if run is None:
        print(f"minidocker: unknown command {command!r} (see 'minidocker --help')", file=sys.stderr)
        return 125
    from minidocker.client.client import APIError, DaemonUnreachable

    try:
        return run(make_client(options), rest)
    except (DaemonUnreachable, _engine_error()) as e:  # also a bad -H, a credential helper missing: one line
        print(f"minidocker: {e}", file=sys.stderr)
        return 125 if command in ("run", "create") else 1
    except APIError as e:
        print(f"Error response from daemon: {e}", file=sys.stderr)
        return 125 if command in ("run", "create") else 1
    # --8<-- [end:main_part4]
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
# --8<-- [end:main]
