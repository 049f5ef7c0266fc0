"""The ``minidocker`` command: a Docker-style client of the daemon, plus a few host tools.

``minidocker run``, ``ps``, ``images`` ... talk to ``minidockerd`` over its socket (chapter 07); the
daemon address comes from ``-H``/``--host``, else ``$MINIDOCKER_HOST``, else the default socket, so
one client can drive several daemons. ``doctor`` and ``rootfs`` work without a daemon.

Start-up time matters for a command typed a hundred times a day: this module imports nothing
heavy, and each command imports only its own module (never aiohttp, pyroute2 or the daemon).
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: minidocker [-H HOST] [--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY] COMMAND

containers:
  run, create, start, stop, kill, restart, rm, ps, logs, exec, inspect, wait, stats, commit, diff, port
images:
  pull, push, images, rmi, tag, save, load, login, logout, build, history, builder prune
other:
  volume create|ls|inspect|rm, version, info, system prune
  daemon start|stop|status   start (as root) or stop a minidockerd in the background
  registry serve|gc|htpasswd a registry server (chapter 10)
  exercises ...              exercises generated from the code, and their grading
  doctor                     check what this host supports, and how to fix what is missing
  rootfs                     build (once) and print the busybox root filesystem
"""

CONTAINER_COMMANDS = {"run", "create", "start", "stop", "kill", "restart", "rm", "ps", "logs", "exec",
                      "inspect", "wait", "stats", "commit", "diff", "port", "container"}
IMAGE_COMMANDS = {"pull", "push", "images", "rmi", "tag", "save", "load", "login", "logout",
                  "volume", "version", "info", "system", "image"}


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


def make_client(options: dict) -> object:
    """A :class:`minidocker.client.Client` for the daemon the options (or environment) name."""
    import os

    from minidocker.client import Client

    tls = None
    if options.get("tls") or options.get("ca") or os.environ.get("MINIDOCKER_TLS_VERIFY"):
        certs = os.environ.get("MINIDOCKER_CERT_PATH", os.path.expanduser("~/.minidocker"))
        tls = {"ca": options.get("ca") or f"{certs}/ca.pem",
               "cert": options.get("cert") or f"{certs}/cert.pem",
               "key": options.get("key") or f"{certs}/key.pem"}
    return Client(options.get("host"), tls)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand, importing only that subcommand's module."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options, argv = _global_options(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from minidocker import doctor

        return doctor.main(rest)
    if command == "rootfs":
        from minidocker import rootfs

        return rootfs.main(rest)
    if command == "daemon":
        from minidocker import cli_daemon

        return cli_daemon.main(rest, options)
    if command == "registry":  # chapter 10: a registry server of our own
        from minidocker import registry_server

        return registry_server.main(rest, prog="minidocker registry")
    if command == "exercises":  # for teachers: exercises generated from the code
        from minidocker import exercises

        return exercises.main(rest)
    if command in ("build", "history", "builder"):  # chapter 09: building images
        from minidocker import cli_build

        return cli_build.main(command, rest, make_client(options))
    if command in CONTAINER_COMMANDS or command in IMAGE_COMMANDS:
        from minidocker.client import APIError, DaemonUnreachable

        if command == "container" and rest:  # `docker container ls` style
            command, rest = {"ls": "ps", "list": "ps"}.get(rest[0], rest[0]), rest[1:]
        if command == "image" and rest:
            command, rest = {"ls": "images", "list": "images", "rm": "rmi"}.get(rest[0], rest[0]), rest[1:]
        if command in CONTAINER_COMMANDS:
            from minidocker import cli_containers as module
        else:
            from minidocker import cli_images as module  # type: ignore[no-redef]
        try:
            return module.COMMANDS[command](make_client(options), rest)
        except DaemonUnreachable as e:
            print(f"minidocker: {e}", file=sys.stderr)
            return 125 if command in ("run", "create") else 1
        except APIError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            return 125 if command in ("run", "create") else 1
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
    print(f"minidocker: unknown command {command!r} (see 'minidocker --help')", file=sys.stderr)
    return 125
