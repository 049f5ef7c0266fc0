"""Chapter 08: ``minidocker build``, ``history`` and ``builder prune``: the build's client side.

The client packs the context directory into a tar (minus ``.dockerignore``), sends it as the body
of ``POST /build`` with the options in the query string, and prints the stream of events that
comes back as it comes: ``Step 1/4 : ...`` lines, the commands' output, ``Successfully tagged``.
A failed ``RUN`` ends the stream with an error line that carries the command's exit code, which
becomes the client's own, as with ``docker build``.

The commands take the client as an argument and never import it: the ``minidocker`` command
(:mod:`minidocker.__main__`) plugs :data:`COMMANDS` into the client, which reports a daemon's errors
as for its own commands. The options and the printing also serve ``python -m minidocker.build``
(:func:`minidocker.build.builder.main`), which builds in this process instead (no daemon): the
engine as of this chapter, like every other chapter's module.

Example::

    $ minidocker build -t hello:v1 .
    Step 1/2 : FROM busybox
     ---> 3f57d9401f8d
    Step 2/2 : RUN echo hello > /greeting
     ---> Running in 9a1b2c3d4e5f
    Removing intermediate container 9a1b2c3d4e5f
     ---> 4c1b2a9e0f37
    Successfully built 4c1b2a9e0f37
    Successfully tagged hello:v1
"""

from __future__ import annotations

import os
import sys

from minidocker.core.console import ago, confirm, parser, table
from minidocker.core.jsonscan import dumps, loads
from minidocker.core.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: typing, argparse, json and tempfile cost a build 12 ms
    import argparse
    from typing import IO, Any, BinaryIO

__all__ = ["COMMANDS", "build_options", "cmd_build", "cmd_builder", "cmd_history", "dockerfile_option",
           "history_rows", "pairs", "render"]


def build_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``docker build``'s options that minidocker honours."""
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag of the image (repeatable)")
    p.add_argument("-f", "--file", default=None, help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time ARG")
    p.add_argument("--target", default=None, help="build up to this stage (FROM ... AS TARGET)")
    p.add_argument("--no-cache", action="store_true", help="run every step, ignoring the build cache")
    p.add_argument("--pull", action="store_true", help="always pull the FROM images")
    p.add_argument("--network", default="default", help="network of the RUN steps: default, none, host")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="a label on the image")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("path", metavar="PATH", help="the build context: a directory")
    return p


def pairs(items: list[str], what: str) -> dict[str, str]:
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise SystemExit(f"minidocker build: invalid {what} {item!r}: use KEY=VALUE")
        if sep:
            found[key] = value
        elif key in os.environ:  # --build-arg HTTP_PROXY: the client's own value, as Docker does
            found[key] = os.environ[key]
    return found


def dockerfile_option(opts: argparse.Namespace) -> tuple[str, dict[str, bytes]]:
    """The Dockerfile's name in the context tar, and its bytes when it lives outside the context."""
    if opts.file is None:
        return "Dockerfile", {}
    path = os.path.abspath(opts.file if os.path.isabs(opts.file) or os.path.exists(opts.file)
                           else os.path.join(opts.path, opts.file))
    root = os.path.abspath(opts.path)
    if path.startswith(root + os.sep):
        return os.path.relpath(path, root), {}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SystemExit(f"minidocker build: cannot read the Dockerfile {opts.file}: {e.strerror}") from None
    name = f".dockerfile.{os.urandom(10).hex()}"
    return name, {name: data}


# --8<-- [start:render]
def render(event: dict[str, Any], out: IO[str], quiet: bool = False) -> None:
    """Print one event of a build stream as ``docker build`` does (the error line is the caller's)."""
    if quiet:
        return
    if "stream" in event:
        out.write(event["stream"])
    elif "status" in event and event["status"] not in ("Downloading", "Extracting", "Waiting"):
        out.write(f"{event['id']}: {event['status']}\n" if event.get("id") else f"{event['status']}\n")
    out.flush()
# --8<-- [end:render]


def _scratch() -> BinaryIO:
    """An anonymous file for the packed context (``O_TMPFILE`` in ``$TMPDIR``), gone when closed.

    What ``tempfile.TemporaryFile`` does on Linux, without importing ``tempfile`` (and ``random``,
    ``shutil``): about 6 ms of every build. Elsewhere, or where ``O_TMPFILE`` fails, ``tempfile``.
    """
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):
        import tempfile

        return tempfile.TemporaryFile()
    return open(fd, "w+b")  # closed by the caller's with


# --8<-- [start:cmd_build]
def cmd_build(client: Any, argv: list[str]) -> int:
    """``minidocker build``: send the context to ``POST /build``, print the stream, exit like docker."""
    from minidocker.build import context as buildcontext

    opts = build_options(parser("build", "[OPTIONS] PATH")).parse_args(argv)
    name, extra = dockerfile_option(opts)
    query = {"t": opts.tag, "dockerfile": name,
             "buildargs": dumps(pairs(opts.build_arg, "--build-arg")),
             "labels": dumps(pairs(opts.label, "--label")), "target": opts.target, "rm": True,
             "nocache": opts.no_cache, "pull": opts.pull, "networkmode": opts.network, "q": opts.quiet}
    with _scratch() as body:
        try:
            buildcontext.pack(opts.path, body, dockerfile=name, extra=extra)
        except buildcontext.ContextError as e:
            print(f"minidocker: {e}", file=sys.stderr)
            return 1
        body.seek(0)
        response = client.request("POST", "/build", query, body=body,
                                  headers={"Content-Type": "application/x-tar"})
        image_id = ""
        for line in response:
            if not line.strip():
                continue
            event = loads(line)
            if "error" in event:
                print(event["error"], file=sys.stderr)
                return int((event.get("errorDetail") or {}).get("code") or 1)
            image_id = (event.get("aux") or {}).get("ID", image_id)
            render(event, sys.stdout, opts.quiet)
    if opts.quiet:
        print(image_id)
    return 0
# --8<-- [end:cmd_build]


def history_rows(entries: list[dict[str, Any]], no_trunc: bool = False,
                 human: bool = True) -> list[list[str]]:
    """``docker history``'s table: IMAGE, CREATED, CREATED BY, SIZE, COMMENT."""
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for e in entries:
        image = e["Id"] if no_trunc or e["Id"] == "<missing>" else e["Id"].removeprefix("sha256:")[:12]
        created_by = e["CreatedBy"].replace("\t", " ").replace("\n", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append([image, ago(e["Created"]) if human else str(e["Created"]), created_by,
                     human_size(e["Size"]) if human else str(e["Size"]), e.get("Comment") or ""])
    return rows


def cmd_history(client: Any, argv: list[str]) -> int:
    """``minidocker history IMAGE``: each layer, newest first, with the instruction that made it."""
    p = parser("history", "[OPTIONS] IMAGE")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-H", "--human", default="true")
    p.add_argument("image")
    opts = p.parse_args(argv)
    entries = client.json("GET", f"/images/{opts.image}/history")
    if opts.quiet:
        print("\n".join(e["Id"] if opts.no_trunc else e["Id"].removeprefix("sha256:")[:12] for e in entries))
    else:
        print(table(history_rows(entries, opts.no_trunc, opts.human.lower() != "false")))
    return 0


def cmd_builder(client: Any, argv: list[str]) -> int:
    """``minidocker builder prune [-f]``: drop the daemon's build cache."""
    p = parser("builder", "prune [-f]")
    p.add_argument("action", choices=["prune"])
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    if not p.parse_args(argv).force and not confirm("WARNING! This will remove all dangling build cache."):
        return 0
    answer = client.json("POST", "/build/prune")
    print("Deleted build cache objects:\n" + "".join(f"{k}\n" for k in answer.get("CachesDeleted") or []))
    print(f"Total reclaimed space: {human_size(answer.get('SpaceReclaimed') or 0, 4)}")
    return 0


COMMANDS = {"build": cmd_build, "history": cmd_history, "builder": cmd_builder}
