"""The ``minidocker`` command (and ``python -m minidocker``): the client, with the host tools plugged in.

Why assemble here rather than in the client? The client (chapter 11) is a client of the API, like
docker's CLI, and imports only ``core``. But the command also carries tools that work on this
host, without a daemon: ``doctor`` and ``rootfs``, the registry server of chapter 09, the teachers'
``exercises``; and ``build``, ``history`` and ``builder``, whose client side is chapter 08's
(it packs the context, minus ``.dockerignore``, and prints the build's stream); and ``compose``,
chapter 13's other client of the API; and ``desktop``, chapter 15's dashboard in a browser. This module is
the one place that names them all, each imported only when its command runs, so ``minidocker
ps`` imports none of them. It never imports the daemon: ``minidocker daemon start`` starts it as
a program.

Example::

    $ minidocker doctor            # a tool: runs here
    $ minidocker build -t app .    # chapter 08's command, with the client the options name
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    from collections.abc import Callable

    from minidocker.client.client import Client

__all__ = ["COMMANDS", "TOOLS", "main"]


def _doctor(argv: list[str]) -> int:
    from minidocker import doctor

    return doctor.main(argv)


def _rootfs(argv: list[str]) -> int:
    from minidocker import rootfs

    return rootfs.main(argv)


def _registry(argv: list[str]) -> int:  # chapter 09: a registry server of our own
    from minidocker.registry import server

    return server.main(argv, prog="minidocker registry")


def _exercises(argv: list[str]) -> int:  # for teachers: exercises generated from the code
    from minidocker import exercises

    return exercises.main(argv)


def _build_command(name: str) -> Callable[[Client, list[str]], int]:
    """Chapter 08's ``name`` command (build, history, builder), imported when it runs."""

    def run(client: Client, argv: list[str]) -> int:
        from minidocker.build import cli

        return cli.COMMANDS[name](client, argv)

    return run


def _compose(client: Client, argv: list[str]) -> int:  # chapter 13: another client of the API
    from minidocker.compose import cli

    return cli.main(client, argv)


def _desktop(client: Client, argv: list[str]) -> int:  # chapter 15: the dashboard, a client in the browser
    from minidocker.desktop import cli

    return cli.main(client, argv)


def _trust(argv: list[str]) -> int:  # chapter 16: keys and signatures, in the registry
    from minidocker.trust import cli

    return cli.main(argv)


def _pull(client: Client, argv: list[str]) -> int:  # the client's pull, or chapter 16's with a policy
    from minidocker.trust import cli

    return cli.pull_command(client, argv)


TOOLS = {"doctor": _doctor, "rootfs": _rootfs, "registry": _registry, "exercises": _exercises,
         "trust": _trust}
COMMANDS = {**{name: _build_command(name) for name in ("build", "history", "builder")},
            "compose": _compose, "desktop": _desktop, "pull": _pull}


def main(argv: list[str] | None = None) -> int:
    """Run the ``minidocker`` command line ``argv`` (default: ``sys.argv[1:]``); return its exit status."""
    from minidocker.client import cli

    return cli.main(argv, tools=TOOLS, commands=COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
