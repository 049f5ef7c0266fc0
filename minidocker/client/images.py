"""Chapter 11: the image, volume and system commands of the ``minidocker`` client.

``pull`` shows the daemon's progress stream (one JSON object a line) as ``docker pull`` does when
its output is not a terminal: one line per layer event, then the digest and the status.

Example::

    $ minidocker images
    REPOSITORY   TAG       IMAGE ID       CREATED         SIZE
    busybox      latest    a6551a2e0037   2 minutes ago   2.14MB
"""

from __future__ import annotations

import sys

from minidocker.client.client import APIError, Client
from minidocker.core.console import ago, confirm, flags, parser, render_template, table
from minidocker.core.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    from collections.abc import Callable
    from typing import IO, Any

__all__ = ["COMMANDS", "pull_image"]

# json is imported where it is used (volume inspect, system prune): with argparse it brings re and enum,
# which `images` does not need, as `ps` does not (client/containers.py).
IMAGES_FLAGS = {"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "--no-trunc": "no_trunc",
                "--digests": "digests"}


def _split_ref(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return name, tag


# --8<-- [start:pull_image]
def pull_image(client: Client, ref: str, out: IO[str]) -> None:
    """``POST /images/create?fromImage=...``: print the progress stream's events as they come."""
    name, tag = _split_ref(ref)
    for event in client.stream_json("POST", "/images/create", {"fromImage": name, "tag": tag},
                                    headers=_auth_headers(name)):
        if event.get("status") in ("Downloading", "Extracting", "Waiting"):
            continue  # progress bars need a terminal; the milestones are enough here
        prefix = f"{event['id']}: " if event.get("id") else ""
        print(f"{prefix}{event.get('status', '')}", file=out, flush=True)
# --8<-- [end:pull_image]


def _auth_headers(name: str) -> dict[str, str]:
    """``X-Registry-Auth``: what ``login`` stored (in ``$MINIDOCKER_CONFIG``) for the image's registry.

    The daemon uses these credentials rather than its own: the user logged in here, on the client.
    """
    from minidocker.core import dockerconfig as _dockerconfig
    from minidocker.core.errors import Failed

    try:
        header = _dockerconfig.registry_auth_header(_dockerconfig.registry_of(name))
    except ValueError as e:  # a broken config file: go on without credentials, as docker does
        print(f"WARNING: {e}", file=sys.stderr)
        return {}
    except Failed as e:  # a credential helper that is missing or fails: docker stops there too
        raise Failed(f"error getting credentials: {e}") from None
    return {"X-Registry-Auth": header} if header else {}


def pull(client: Client, argv: list[str]) -> int:
    p = parser("pull", "IMAGE[:TAG]")
    p.add_argument("image")
    opts = p.parse_args(argv)
    pull_image(client, opts.image, sys.stdout)
    return 0


def push(client: Client, argv: list[str]) -> int:
    p = parser("push", "IMAGE[:TAG]")
    p.add_argument("image")
    name, tag = _split_ref(p.parse_args(argv).image)
    for event in client.stream_json("POST", f"/images/{name}/push", {"tag": tag},
                                    headers=_auth_headers(name)):
        prefix = f"{event['id']}: " if event.get("id") else ""
        if event.get("status") not in ("Pushing",):
            print(f"{prefix}{event.get('status', '')}", flush=True)
    return 0


def images(client: Client, argv: list[str]) -> int:
    """``images [-a] [-q] [--no-trunc] [--digests] [-f FILTER] [--format TEMPLATE] [REPOSITORY[:TAG]]``."""
    opts = flags(argv, IMAGES_FLAGS, {"--format": "format"})  # images -a, -q, --format T: no argparse
    if opts is None:
        p = parser("images", "[-a] [-q] [--no-trunc] [--digests] [-f FILTER] [--format TEMPLATE] "
                             "[REPOSITORY[:TAG]]")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("--digests", action="store_true", help="show each repository's digest")
        p.add_argument("-f", "--filter", action="append", default=[],
                       help="dangling=true, label=K[=V], reference=GLOB, before=IMAGE, since=IMAGE")
        p.add_argument("--format")
        p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]", help="only the images it names")
        opts = p.parse_args(argv)
    filters: dict[str, list[str]] = {}
    for item in getattr(opts, "filter", []):
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    if getattr(opts, "reference", None):  # images busybox: a reference filter, as docker sends it
        filters.setdefault("reference", []).append(opts.reference)
    if filters:
        from minidocker.core.jsonscan import dumps
    found = sorted(client.json("GET", "/images/json", {"all": opts.all, "filters": dumps(filters)
                                                       if filters else None}), key=lambda i: -i["Created"])
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for image in found:
        short = image["Id"] if opts.no_trunc else image["Id"].removeprefix("sha256:")[:12]
        digests = {}  # repository -> its digest (docker's DIGEST column: <none> for a tag never pulled)
        for ref in image.get("RepoDigests") or []:
            repo, _, digest = ref.partition("@")
            digests.setdefault(repo, digest)
        for ref in image["RepoTags"] or ["<none>:<none>"]:
            repo, _, tag = ref.rpartition(":")
            digest = [digests.get(repo, "<none>")] if opts.digests else []
            rows.append([repo, tag, *digest, short, ago(image["Created"]), human_size(image["Size"])])
    if opts.digests:
        rows[0][2:2] = ["DIGEST"]
    if opts.quiet:
        print("\n".join(dict.fromkeys(r[-3] for r in rows[1:])))
    elif getattr(opts, "format", None):
        for row in rows[1:]:
            print(render_template(opts.format, {"Repository": row[0], "Tag": row[1], "ID": row[-3],
                                                "CreatedSince": row[-2], "Size": row[-1],
                                                **({"Digest": row[2]} if opts.digests else {})}))
    else:
        print(table(rows))
    return 0


def rmi(client: Client, argv: list[str]) -> int:
    p = parser("rmi", "[-f] IMAGE...")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    opts = p.parse_args(argv)
    status = 0
    for ref in opts.images:
        try:
            for event in client.json("DELETE", f"/images/{ref}", {"force": opts.force}):
                for key, value in event.items():
                    print(f"{key}: {value}")
        except APIError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    return status


def tag(client: Client, argv: list[str]) -> int:
    p = parser("tag", "SOURCE TARGET")
    p.add_argument("source")
    p.add_argument("target")
    opts = p.parse_args(argv)
    repo, tag_ = _split_ref(opts.target)
    client.request("POST", f"/images/{opts.source}/tag", {"repo": repo, "tag": tag_}).read()
    return 0


def save(client: Client, argv: list[str]) -> int:
    p = parser("save", "-o FILE IMAGE...")
    p.add_argument("-o", "--output")
    p.add_argument("images", nargs="+")
    opts = p.parse_args(argv)
    response = client.request("GET", "/images/get", {"names": opts.images})
    out = open(opts.output, "wb") if opts.output else sys.stdout.buffer  # noqa: SIM115
    with out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    return 0


def load(client: Client, argv: list[str]) -> int:
    p = parser("load", "-i FILE")
    p.add_argument("-i", "--input")
    opts = p.parse_args(argv)
    source = open(opts.input, "rb") if opts.input else sys.stdin.buffer  # noqa: SIM115
    with source:
        for event in client.stream_json("POST", "/images/load", {"quiet": True}, source.read()):
            print(event.get("stream", event.get("status", "")).rstrip())
    return 0


# --8<-- [start:import]
def import_(client: Client, argv: list[str]) -> int:
    """``import [-c CHANGE]... [-m MESSAGE] FILE|URL|- [REPO[:TAG]]``: a root filesystem tarball as an image.

    The file is streamed as the request's body (``fromSrc=-``); a URL is fetched by the daemon.
    """
    p = parser("import", "[-c CHANGE]... [-m MESSAGE] FILE|URL|- [REPOSITORY[:TAG]]")
    p.add_argument("-c", "--change", action="append", default=[], help="a Dockerfile line: CMD, ENV, ...")
    p.add_argument("-m", "--message", default="")
    p.add_argument("source")
    p.add_argument("reference", nargs="?")
    opts = p.parse_args(argv)
    query = {"fromSrc": "-", "repo": opts.reference, "message": opts.message or None,
             "changes": opts.change}
    if opts.source.startswith(("http://", "https://")):
        query["fromSrc"], body = opts.source, None
    elif opts.source == "-":
        body = sys.stdin.buffer
    else:
        try:
            body = open(opts.source, "rb")  # noqa: SIM115 (closed below)
        except OSError as e:
            raise SystemExit(f"minidocker: open {opts.source}: {e.strerror.lower()}") from None
    try:
        for event in client.stream_json("POST", "/images/create", query, body):
            if "error" in event:
                raise APIError(500, event["error"])
            print(event.get("status", ""))
    finally:
        if body is not None and body is not sys.stdin.buffer:
            body.close()
    return 0
# --8<-- [end:import]


def volume(client: Client, argv: list[str]) -> int:
    p = parser("volume", "create|ls|inspect|rm [NAME...]")
    p.add_argument("action", choices=["create", "ls", "list", "inspect", "rm", "remove", "prune"])
    p.add_argument("names", nargs="*")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    opts = p.parse_args(argv)
    if opts.action == "create":
        name = opts.names[0] if opts.names else None
        print(client.json("POST", "/volumes/create", None, {"Name": name})["Name"])
    elif opts.action in ("ls", "list"):
        found = client.json("GET", "/volumes")["Volumes"]
        if opts.quiet:
            print("\n".join(v["Name"] for v in found))
        else:
            print(table([["DRIVER", "VOLUME NAME"], *([v["Driver"], v["Name"]] for v in found)]))
    elif opts.action == "inspect":
        import json

        print(json.dumps([client.json("GET", f"/volumes/{n}") for n in opts.names], indent=4))
    elif opts.action == "prune":
        if not opts.force and not confirm("WARNING! This will remove all local volumes not used by at "
                                          "least one container."):
            return 0
        answer = client.json("POST", "/volumes/prune")
        if answer.get("VolumesDeleted"):
            print("Deleted Volumes:\n" + "\n".join(answer["VolumesDeleted"]) + "\n")
        print(f"Total reclaimed space: {human_size(answer.get('SpaceReclaimed') or 0, 4)}")
    else:
        for name in opts.names:
            client.request("DELETE", f"/volumes/{name}", {"force": opts.force}).read()
            print(name)
    return 0


def version(client: Client, argv: list[str]) -> int:
    from minidocker import __version__
    from minidocker.core.api import API_VERSION

    info = client.json("GET", "/version")
    spoken = getattr(client, "version", API_VERSION)  # negotiated down for an older daemon, as docker's
    downgraded = f" (downgraded from {API_VERSION})" if spoken != API_VERSION else ""
    print(f"Client:\n Version:           {__version__}\n API version:       {spoken}{downgraded}\n")
    server = (info.get("Platform") or {}).get("Name") or "Docker Engine"
    print(f"Server: {server}\n Engine:\n  Version:          {info['Version']}\n"
          f"  API version:      {info['ApiVersion']} (minimum version {info['MinAPIVersion']})\n"
          f"  OS/Arch:          {info['Os']}/{info['Arch']}\n  Kernel:           {info['KernelVersion']}")
    return 0


def info(client: Client, argv: list[str]) -> int:
    i = client.json("GET", "/info")
    print(f"Server:\n Containers: {i['Containers']}\n  Running: {i['ContainersRunning']}\n"
          f"  Stopped: {i['ContainersStopped']}\n Images: {i['Images']}\n"
          f" Server Version: {i['ServerVersion']}\n"
          f" Storage Driver: {i['Driver']}\n Logging Driver: {i['LoggingDriver']}\n"
          f" Cgroup Driver: {i['CgroupDriver']}\n Cgroup Version: {i['CgroupVersion']}\n"
          f" Kernel Version: {i['KernelVersion']}\n Operating System: {i['OperatingSystem']}\n"
          f" CPUs: {i['NCPU']}\n Total Memory: {human_size(i['MemTotal'])}\n Name: {i['Name']}\n"
          f" Docker Root Dir: {i['DockerRootDir']}")
    return 0


def system(client: Client, argv: list[str]) -> int:
    p = parser("system", "prune [-f] [-a] [--volumes] | df | info")
    p.add_argument("action", choices=["prune", "info", "df"])
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--volumes", action="store_true")
    opts = p.parse_args(argv)
    if opts.action == "info":
        return info(client, [])
    if opts.action == "df":
        return disk_usage(client)
    removes = ["all stopped containers", "all networks not used by at least one container",
               *(["all volumes not used by at least one container"] if opts.volumes else []),
               "all images without at least one container associated to them" if opts.all
               else "all dangling images", "all build cache"]
    warning = "WARNING! This will remove:\n" + "".join(f"  - {r}\n" for r in removes)
    if not opts.force and not confirm(warning):
        return 0  # as docker: no answer (or not "y") removes nothing, and is no error
    reclaimed = 0

    def prune(path: str, key: str, title: str, show: Callable[[Any], str] = str) -> None:
        nonlocal reclaimed
        answer = client.json("POST", path)
        reclaimed += answer.get("SpaceReclaimed") or 0
        if answer.get(key):
            print(f"{title}:\n" + "\n".join(show(item) for item in answer[key]) + "\n")

    prune("/containers/prune", "ContainersDeleted", "Deleted Containers")
    prune("/networks/prune", "NetworksDeleted", "Deleted Networks")
    if opts.volumes:
        prune("/volumes/prune", "VolumesDeleted", "Deleted Volumes")
    from urllib.parse import quote

    from minidocker.core.jsonscan import dumps

    filters = quote(dumps({"dangling": ["false" if opts.all else "true"]}))
    prune(f"/images/prune?filters={filters}", "ImagesDeleted", "Deleted Images",
          lambda event: "\n".join(f"{k.lower()}: {v}" for k, v in event.items()))
    prune("/build/prune", "CachesDeleted", "Deleted build cache objects")
    print(f"Total reclaimed space: {human_size(reclaimed, 4)}")
    return 0


# --8<-- [start:disk_usage]
def disk_usage(client: Client) -> int:
    """``system df``: docker's table of images, containers, volumes and build cache, from ``GET /system/df``.

    Reclaimable is what a prune could free: images no container uses, stopped containers' layers,
    volumes no container mounts, build cache not in use; with its share of the total, as docker shows it.
    """
    df = client.json("GET", "/system/df")

    def size(n: int) -> str:
        return human_size(n, 4)  # go-units' HumanSize, as docker's df prints it

    def share(part: int, total: int) -> str:
        return f"{size(part)} ({part * 100 // total}%)" if total > 0 else size(part)

    images = df.get("Images") or []
    used = sum(i["Size"] - i["SharedSize"] for i in images if i.get("Containers", 0) > 0  # unknown: skipped
               and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    total = df.get("LayersSize") or 0
    containers = df.get("Containers") or []
    sizes = [max(c.get("SizeRw") or 0, 0) for c in containers]
    stopped = sum(s for c, s in zip(containers, sizes, strict=True)
                  if c.get("State") not in ("running", "paused"))
    volumes = df.get("Volumes") or []
    usage = [(v.get("UsageData") or {}) for v in volumes]
    volume_size = sum(max(u.get("Size", 0), 0) for u in usage)
    unused = sum(max(u.get("Size", 0), 0) for u in usage if u.get("RefCount", 0) == 0)
    cache = [b for b in df.get("BuildCache") or [] if not b.get("Shared")]
    rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            ["Images", str(len(images)), str(sum(1 for i in images if i.get("Containers", 0) > 0)),
             size(total), share(max(total - used, 0), total)],
            ["Containers", str(len(containers)),
             str(sum(1 for c in containers if c.get("State") in ("running", "paused"))),
             size(sum(sizes)), share(stopped, sum(sizes))],
            ["Local Volumes", str(len(volumes)), str(sum(1 for u in usage if u.get("RefCount", 0) > 0)),
             size(volume_size), share(unused, volume_size)],
            ["Build Cache", str(len(df.get("BuildCache") or [])),
             str(sum(1 for b in df.get("BuildCache") or [] if b.get("InUse"))),
             size(sum(b.get("Size", 0) for b in cache)),
             size(sum(b.get("Size", 0) for b in cache if not b.get("InUse")))]]
    widths = [max(10, max(len(r[n]) for r in rows) + 3) for n in range(5)]  # docker's tabwriter: min 10
    print("\n".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows))
    return 0
# --8<-- [end:disk_usage]


def container_prune(client: Client, argv: list[str]) -> int:
    """``minidocker container prune [-f]``: remove every stopped container, after Docker's question."""
    p = parser("container prune", "[-f]")
    p.add_argument("-f", "--force", action="store_true")
    if not p.parse_args(argv).force and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    answer = client.json("POST", "/containers/prune")
    if answer.get("ContainersDeleted"):
        print("Deleted Containers:\n" + "\n".join(answer["ContainersDeleted"]) + "\n")
    print(f"Total reclaimed space: {human_size(answer.get('SpaceReclaimed') or 0, 4)}")
    return 0


def image_prune(client: Client, argv: list[str]) -> int:
    """``minidocker image prune [-a] [-f]``: remove dangling (``-a``: unused) images, after the question."""
    p = parser("image prune", "[-a] [-f]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    opts = p.parse_args(argv)
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not confirm(warning):
        return 0
    from urllib.parse import quote

    from minidocker.core.jsonscan import dumps

    filters = quote(dumps({"dangling": ["false" if opts.all else "true"]}))
    answer = client.json("POST", f"/images/prune?filters={filters}")
    if answer.get("ImagesDeleted"):
        print("Deleted Images:\n" + "\n".join(f"{k.lower()}: {v}" for event in answer["ImagesDeleted"]
                                               for k, v in event.items()) + "\n")
    print(f"Total reclaimed space: {human_size(answer.get('SpaceReclaimed') or 0, 4)}")
    return 0


def login(client: Client, argv: list[str]) -> int:
    """Check the credentials through the daemon, then keep them in the client's config file."""
    p = parser("login", "[-u USER] [-p PASSWORD | --password-stdin] [SERVER]")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("server", nargs="?", default="docker.io")
    opts = p.parse_args(argv)
    username = opts.username or input("Username: ")
    if opts.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = opts.password or getpass.getpass("Password: ")
    answer = client.json("POST", "/auth", None, {"username": username, "password": password,
                                                 "serveraddress": opts.server})
    from minidocker.core import dockerconfig as _dockerconfig
    from minidocker.core.process import EngineError

    try:
        _dockerconfig.store_credentials(opts.server, username, password)
    except (EngineError, ValueError) as e:  # a helper that failed or is missing, a broken config file
        print(f"Error saving credentials: {e}", file=sys.stderr)
        return 1
    if not _dockerconfig.helper_for(opts.server):
        print(f"WARNING! Your password will be stored unencrypted in {_dockerconfig.config_path()}.\n"
              "Configure a credential helper to remove this warning (\"credsStore\": \"minidocker\").",
              file=sys.stderr)
    print(answer["Status"])
    return 0


def logout(client: Client, argv: list[str]) -> int:
    """Forget the credentials of a registry, in its credential helper and in the config file."""
    p = parser("logout", "[SERVER]")
    p.add_argument("server", nargs="?", default="docker.io")
    server = p.parse_args(argv).server
    from minidocker.core import dockerconfig as _dockerconfig
    from minidocker.core.process import EngineError

    try:
        erased = _dockerconfig.erase_credentials(server)
    except (EngineError, ValueError) as e:  # the file's entry is gone; the helper could not erase
        print(f"WARNING: could not erase credentials: {server}: {e}", file=sys.stderr)
        erased = True
    print(f"Removing login credentials for {server}" if erased else f"Not logged in to {server}")
    return 0


COMMANDS: dict[str, Callable[[Client, list[str]], int]] = {
    "pull": pull, "push": push, "images": images, "rmi": rmi, "tag": tag, "save": save,
    "load": load, "volume": volume, "version": version, "info": info, "system": system, "login": login,
    "logout": logout, "container-prune": container_prune, "image-prune": image_prune, "import": import_,
}
