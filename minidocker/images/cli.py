"""Chapter 07: images by name: ``pull``, ``push``, ``images``, ``rmi``, ``tag``, ``save``, ``load``, ``run``.

Until now a container ran on a directory we built ourselves. Docker users type a *name*
(``busybox``, ``127.0.0.1:5000/team/app:v1``) and the engine finds the image in its store, or pulls
it from a registry first. This module is that front door, and ``run`` is the whole engine so far
(every earlier stage's options) on an image: its layers become the container's overlay filesystem
(chapter 04) and its config the command, environment, working directory and user.

Run it (as root)::

    python -m minidocker.images pull 127.0.0.1:5000/library/busybox
    python -m minidocker.images images
    python -m minidocker.images run [OPTIONS] IMAGE [CMD...]
    python -m minidocker.images login|logout|push|rmi|tag|inspect|save|load|prune|seed ...

Exit status: that of the command for ``run`` (125 engine error, 126, 127 as before); 0 or 125 for
the others, like the docker CLI (which exits 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from minidocker.core import stage as _stage
from minidocker.core.process import EngineError
from minidocker.images import checks, reference
from minidocker.images.store import Image, ImageStore

__all__ = ["inspect_image", "main", "summary"]

USAGE = """usage: python -m minidocker.images COMMAND [ARGS...]

commands:
  pull [--platform OS/ARCH] [-q] NAME    fetch an image from its registry (mirrors first for docker.io)
  push NAME                              send an image to its registry
  images [-q] [--digests]                list the images in the store
  inspect NAME...                        show images as JSON (docker image inspect)
  tag SOURCE TARGET                      give an image another name
  rmi [-f] NAME...                       remove images (their layers too when unused)
  prune                                  remove untagged images and unused layers and blobs
  save -o FILE NAME...                   write images to an OCI image-layout tarball
  load -i FILE                           read images from an OCI layout or 'docker save' tarball
  login [-u USER] [-p PASS|--password-stdin] [REGISTRY]   store credentials for a registry
  logout [REGISTRY]                      forget them
  run [OPTIONS] IMAGE [CMD...]           run a container on an image (see 'run --help')
  seed REGISTRY [NAME]                   push chapter 00's busybox there (as library/busybox:latest)
  registry start|stop [--port N]         a local registry on 127.0.0.1 (chapter 09's server)
"""


def _created(config: dict[str, Any]) -> int:
    """The config's ``created`` time as a unix timestamp (0 when absent or unreadable)."""
    text = str(config.get("created") or "")
    if not text:
        return 0
    import datetime

    whole = text.split(".")[0].rstrip("Z") + "+00:00" if "." in text or text.endswith("Z") else text
    try:
        return int(datetime.datetime.fromisoformat(whole).timestamp())
    except ValueError:
        return 0


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1e9):09d}Z"


# --8<-- [start:inspect_image]
def inspect_image(image: Image, store: ImageStore | None = None) -> dict[str, Any]:
    """The image as ``docker image inspect`` shows it (and ``GET /images/NAME/json`` returns it)."""
    config = image.config
    result = {
        "Id": image.id,
        "RepoTags": [reference.parse(t).familiar for t in image.repo_tags],
        "RepoDigests": [reference.parse(d).familiar for d in image.repo_digests],
        "Parent": "", "Comment": config.get("comment", ""), "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""), "Author": config.get("author", ""),
        "Config": config.get("config") or {}, "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""), "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": _rfc3339(image.tagged_at)},
    }
    if config.get("variant"):
        result["Variant"] = config["variant"]
    if store is not None:
        dirs = [str(store.layers.path(d)) for d in reversed(image.diff_ids) if store.layers.has(d)]
        result["GraphDriver"] = {"Name": "overlay2", "Data": {"LowerDir": ":".join(dirs)}}
    return result
# --8<-- [end:inspect_image]


def summary(image: Image) -> dict[str, Any]:
    """One entry of ``GET /images/json``."""
    return {"Id": image.id, "ParentId": "",
            "RepoTags": [reference.parse(t).familiar for t in image.repo_tags],
            "RepoDigests": [reference.parse(d).familiar for d in image.repo_digests],
            "Created": _created(image.config), "Size": image.size, "SharedSize": -1,
            "Labels": (image.config.get("config") or {}).get("Labels") or {}, "Containers": -1}


def _ago(seconds: float) -> str:
    """``docker images``' CREATED column: "3 days ago"."""
    delta = max(0, time.time() - seconds)
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if delta >= 2 * size:
            return f"{int(delta // size)} {unit}s ago"
        if delta >= size:
            return f"About {'an' if unit == 'hour' else 'a'} {unit} ago"
    return "Less than a second ago" if delta < 1 else f"{int(delta)} seconds ago"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _images(args: argparse.Namespace, store: ImageStore) -> None:
    from minidocker.core.units import human_size

    images = store.list()
    if args.quiet:
        print("\n".join(dict.fromkeys(i.short_id for i in images)))
        return
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    rows = [header]
    for image in images:
        names = [reference.parse(t) for t in image.repo_tags] or [None]
        for ref in names:
            digest = next((d.rpartition("@")[2] for d in image.repo_digests
                           if ref and reference.parse(d).name == ref.name), "<none>")
            rows.append([ref.familiar_name if ref else "<none>", ref.tag if ref else "<none>",
                         *([digest] if args.digests else []), image.short_id,
                         _ago(_created(image.config)), human_size(image.size)])
    _table(rows)


def _login(args: argparse.Namespace) -> None:
    from minidocker.core import dockerconfig as _dockerconfig
    from minidocker.images import distribution as registry

    server = args.server or "docker.io"
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = args.password or getpass.getpass("Password: ")
    if not username or not password:
        raise EngineError("login needs a username and a password")
    registry.connect(server, (username, password)).check_login()
    _dockerconfig.store_credentials(server, username, password)  # in its credential helper, if any
    if not _dockerconfig.helper_for(server):
        print(f"WARNING! Your password will be stored unencrypted in {_dockerconfig.config_path()}.",
              file=sys.stderr)
    print("Login Succeeded")


def _registry(action: str, port: int) -> None:
    """Start or stop a local registry that outlives this command (for the chapters' "check your work").

    It is the registry server chapter 09 builds, run as a program (``python -m
    minidocker.registry.server serve``), not imported: any registry would do, Debian's too.
    """
    from minidocker.core.paths import cache_dir, run_dir
    from minidocker.testing.localregistry import answers, serve_detached, stop_pid

    pid_file = run_dir() / f"registry-{port}.pid"
    if action == "stop":
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        stopped = pid.isdigit() and stop_pid(int(pid))
        pid_file.unlink(missing_ok=True)
        print(f"stopped the registry on 127.0.0.1:{port}" if stopped else f"no registry of ours on {port}")
        return
    url = f"http://127.0.0.1:{port}"
    if answers(url):  # e.g. the one './setup.sh demo' leaves running on 5000: use it
        print(f"a registry already answers on 127.0.0.1:{port}: using it", file=sys.stderr)
        print(url)
        return
    pid, url = serve_detached(cache_dir() / f"registry-{port}", port, run_dir() / f"registry-{port}.log")
    pid_file.write_text(f"{pid}\n")
    print(url)


def _commands() -> argparse.ArgumentParser:
    parser = _stage._Parser(prog="python -m minidocker.images", usage=USAGE, add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_stage._Parser)
    p = sub.add_parser("pull")
    p.add_argument("--platform"), p.add_argument("-q", "--quiet", action="store_true"), p.add_argument("name")
    for option in checks.options():  # options later chapters add (images/checks.py)
        p.add_argument(option.flag, metavar=option.metavar, help=option.help)
    sub.add_parser("push").add_argument("name")
    p = sub.add_parser("images")
    p.add_argument("-q", "--quiet", action="store_true"), p.add_argument("--digests", action="store_true")
    sub.add_parser("inspect").add_argument("names", nargs="+")
    p = sub.add_parser("tag")
    p.add_argument("source"), p.add_argument("target")
    p = sub.add_parser("rmi")
    p.add_argument("-f", "--force", action="store_true"), p.add_argument("names", nargs="+")
    sub.add_parser("prune").add_argument("-f", "--force", action="store_true")
    p = sub.add_parser("save")
    p.add_argument("-o", "--output", required=True), p.add_argument("names", nargs="+")
    sub.add_parser("load").add_argument("-i", "--input", required=True)
    p = sub.add_parser("login")
    p.add_argument("-u", "--username"), p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true"), p.add_argument("server", nargs="?")
    sub.add_parser("logout").add_argument("server", nargs="?")
    p = sub.add_parser("registry")
    p.add_argument("action", choices=("start", "stop")), p.add_argument("--port", type=int, default=5000)
    p = sub.add_parser("seed")
    p.add_argument("registry"), p.add_argument("name", nargs="?", default="library/busybox:latest")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    store = ImageStore()
    command = args.command
    if command == "pull":
        from minidocker.images import pull
        from minidocker.images.progress import TerminalProgress

        asked = [o.make(v) for o in checks.options()
                 if (v := getattr(args, o.flag.lstrip("-").replace("-", "_"), None)) is not None]
        pull.pull(args.name, store=store, platform=args.platform,
                  progress=None if args.quiet else TerminalProgress(sys.stdout), checks=asked)
        print(reference.parse(args.name))  # the full name, as docker pull ends
    elif command == "push":
        from minidocker.images import push
        from minidocker.images.progress import TerminalProgress

        push.push(args.name, store=store, progress=TerminalProgress(sys.stdout))
    elif command == "images":
        _images(args, store)
    elif command == "inspect":
        print(json.dumps([inspect_image(store.get(n), store) for n in args.names], indent=4))
    elif command == "tag":
        store.tag(args.source, args.target)
    elif command in ("rmi", "prune"):
        events = [e for n in args.names for e in store.remove(n, force=args.force)] if command == "rmi" \
            else store.prune()
        for event in events:
            for key, value in event.items():
                print(f"{key}: {value}")
    elif command in ("save", "load"):
        from minidocker.images import archive as ocilayout

        if command == "save":
            ocilayout.save(args.names, args.output, store=store)
        else:
            for line in ocilayout.load(args.input, store=store):
                print(line)
    elif command == "login":
        _login(args)
    elif command == "logout":
        from minidocker.core import dockerconfig as _dockerconfig

        server = args.server or "docker.io"
        try:
            erased = _dockerconfig.erase_credentials(server)
        except EngineError as e:  # the file's entry is gone; its credential helper could not erase
            print(f"WARNING: could not erase credentials: {server}: {e}", file=sys.stderr)
            erased = True
        print(f"Removing login credentials for {server}" if erased else f"Not logged in to {server}")
    elif command == "registry":
        _registry(args.action, args.port)
    elif command == "seed":
        from minidocker.images import push

        print(push.seed_busybox(args.registry, args.name))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.images COMMAND [ARGS...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv[0] == "run":
        from minidocker.images import run as imagerun

        return imagerun.main(argv[1:])
    if argv[:2] == ["image", "inspect"]:
        argv = argv[1:]
    return _stage.guarded(lambda: _dispatch(_commands().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
