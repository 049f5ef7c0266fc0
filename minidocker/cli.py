"""The ``minidocker`` command.

Chapter 07 turns this into a Docker-style client of the daemon; until then it offers the
host-level tools: ``minidocker doctor`` and ``minidocker rootfs``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: minidocker COMMAND

commands:
  doctor    check what this host supports, and how to fix what is missing
  rootfs    build (once) and print the busybox root filesystem
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand, importing only that subcommand's module."""
    argv = sys.argv[1:] if argv is None else argv
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
    print(f"minidocker: unknown command {command!r} (see 'minidocker --help')", file=sys.stderr)
    return 125
