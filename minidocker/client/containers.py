"""Chapter 11: the other container commands of the ``minidocker`` client: ps, logs, stop, rm, inspect ...

Each is one or two API calls and a printout in the shape ``docker`` prints. Commands that take
several containers act on each, print each name done, and report each failure (exit status 1).

Example::

    $ minidocker ps -a
    CONTAINER ID   IMAGE     COMMAND       CREATED          STATUS                      PORTS     NAMES
    4bf2315b4ab9   busybox   "sleep 100"   4 seconds ago    Up 4 seconds                          web
"""

from __future__ import annotations

import sys

from minidocker.client.client import APIError, Client
from minidocker.core.console import ago, flags, parser, render_template, table

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: collections.abc imports collections
    from collections.abc import Callable

__all__ = ["COMMANDS"]

# Imported where used: json (ps -f, events, inspect, stats) and client.run (run, create, start, exec,
# attach, _each) bring argparse, re, enum, signal and threading, which `ps` does not need.
PS_FLAGS = {"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "--no-trunc": "no_trunc"}


def _each(refs: list[str], action: Callable[[str], object]) -> int:
    from minidocker.client import run

    return run._each(refs, action)


class _Commands(dict):
    """This module's commands; a name it lacks is chapter 11's ``run`` module's (run, create, start ...).

    ``client.run`` is imported only when one of its commands runs: ``ps`` never imports it.
    """

    def __missing__(self, name: str) -> Callable[[Client, list[str]], int]:
        from minidocker.client import run

        return run.COMMANDS[name]


def stop(client: Client, argv: list[str], path: str = "stop") -> int:
    p = parser(path, "[-t SECONDS] [-s SIGNAL] CONTAINER...")
    p.add_argument("-t", "--time", "--timeout", type=int)
    p.add_argument("-s", "--signal")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    query = {"t": opts.time, "signal": opts.signal}
    return _each(opts.containers,
                 lambda ref: client.request("POST", f"/containers/{ref}/{path}", query).read())


def kill(client: Client, argv: list[str]) -> int:
    p = parser("kill", "[-s SIGNAL] CONTAINER...")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    return _each(opts.containers, lambda ref: client.request(
        "POST", f"/containers/{ref}/kill", {"signal": opts.signal}).read())


def pause(client: Client, argv: list[str], action: str = "pause") -> int:
    p = parser(action, "CONTAINER...")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    return _each(opts.containers, lambda ref: client.request("POST", f"/containers/{ref}/{action}").read())


def rename(client: Client, argv: list[str]) -> int:
    p = parser("rename", "CONTAINER NEW_NAME")
    p.add_argument("container")
    p.add_argument("name")
    opts = p.parse_args(argv)
    client.request("POST", f"/containers/{opts.container}/rename", {"name": opts.name}).read()
    return 0


def top(client: Client, argv: list[str]) -> int:
    p = parser("top", "CONTAINER [ps OPTIONS]")
    p.add_argument("container")
    p.add_argument("ps_args", nargs="*")
    opts = p.parse_args(argv)
    query = {"ps_args": " ".join(opts.ps_args)} if opts.ps_args else None
    answer = client.json("GET", f"/containers/{opts.container}/top", query)
    print(table([answer["Titles"], *[[str(v) for v in row] for row in answer["Processes"]]]))
    return 0


def update(client: Client, argv: list[str]) -> int:
    """``update``: limits and restart policy of containers, changed while they run."""
    from minidocker.core.units import parse_size

    p = parser("update", "[--memory M] [--memory-swap M] [--cpus N] [--cpu-shares N] [--pids-limit N] "
                         "[--cpuset-cpus CPUS] [--restart POLICY] CONTAINER...")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--cpus", type=float)
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("--restart")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    body: dict = {}
    try:
        if opts.memory:
            body["Memory"] = parse_size(opts.memory)
        if opts.memory_swap:
            body["MemorySwap"] = -1 if opts.memory_swap == "-1" else parse_size(opts.memory_swap)
    except ValueError as e:
        p.error(str(e))
    if opts.cpus is not None:
        body["NanoCpus"] = round(opts.cpus * 1e9)
    for key, value in (("CpuShares", opts.cpu_shares), ("PidsLimit", opts.pids_limit),
                       ("CpusetCpus", opts.cpuset_cpus)):
        if value is not None:
            body[key] = value
    if opts.restart:
        name, _, count = opts.restart.partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count) if count.isdigit() else 0}
    if not body:
        p.error("you must provide one or more flags when using this command")
    return _each(opts.containers, lambda ref: client.request("POST", f"/containers/{ref}/update",
                                                             body=body).read())


def cp(client: Client, argv: list[str]) -> int:
    from minidocker.client import copy

    return copy.cp(client, argv)


def rm(client: Client, argv: list[str]) -> int:
    p = parser("rm", "[-f] [-v] [-l] CONTAINER...")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("-l", "--link", action="store_true", help="remove the link of that name (/me/alias)")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    return _each(opts.containers, lambda ref: client.request(
        "DELETE", f"/containers/{ref}", {"force": opts.force, "v": opts.volumes, "link": opts.link}).read())


def ps(client: Client, argv: list[str]) -> int:
    opts = flags(argv, PS_FLAGS)  # ps, ps -a, ps -aq: no argparse
    if opts is None:
        p = parser("ps", "[-a] [-q] [--no-trunc] [-f FILTER] [--format TEMPLATE]")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-f", "--filter", action="append", default=[])
        p.add_argument("--format")
        opts = p.parse_args(argv)
    filters: dict[str, list[str]] = {}
    for item in getattr(opts, "filter", []):
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    if filters:
        import json
    found = client.json("GET", "/containers/json", {"all": opts.all, "filters": json.dumps(filters)
                                                     if filters else None})
    if opts.quiet:
        print("\n".join(c["Id"] if opts.no_trunc else c["Id"][:12] for c in found) if found else "", end="\n"
              if found else "")
        return 0
    if getattr(opts, "format", None):  # {{.Names}}, {{.Label "k"}}, {{json .}}, table ... (client/formats.py)
        from minidocker.client import formats

        rows = [formats.ps_row(c, opts.no_trunc) for c in found]
        text = formats.render(opts.format, rows, formats.PS_HEADERS)
        if text or opts.format.startswith("table"):
            print(text)
        return 0
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in found:
        command = c["Command"] if opts.no_trunc or len(c["Command"]) <= 20 else c["Command"][:19] + "…"
        ports = ", ".join(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
                          if p.get("PublicPort") else f"{p['PrivatePort']}/{p['Type']}" for p in c["Ports"])
        rows.append([c["Id"] if opts.no_trunc else c["Id"][:12], c["Image"], f'"{command}"',
                     ago(c["Created"]),
                     c["Status"], ports, ",".join(n.lstrip("/") for n in c["Names"])])
    print(table(rows))
    return 0


# --8<-- [start:events]
def events(client: Client, argv: list[str]) -> int:
    """``minidocker events``: the daemon's events as they happen (``--since``/``--until`` replay)."""
    from minidocker.client import formats

    p = parser("events", "[--since TIME] [--until TIME] [-f FILTER] [--format TEMPLATE]")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    opts = p.parse_args(argv)
    import json

    filters: dict[str, list[str]] = {}
    for item in opts.filter:
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    response = client.request("GET", "/events", {"since": opts.since, "until": opts.until,
                                                 "filters": json.dumps(filters) if filters else None})
    for line in response:
        if not line.strip():
            continue
        event = json.loads(line)
        text = formats.render_one(opts.format, event) if opts.format else formats.event_line(event)
        print(text, flush=True)
    return 0
# --8<-- [end:events]


def logs(client: Client, argv: list[str]) -> int:
    p = parser("logs", "[-f] [-t] [-n N] CONTAINER")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("container")
    opts = p.parse_args(argv)
    info = client.json("GET", f"/containers/{opts.container}/json")
    response = client.request("GET", f"/containers/{info['Id']}/logs", {
        "stdout": True, "stderr": True, "follow": opts.follow, "timestamps": opts.timestamps,
        "tail": opts.tail})
    from minidocker.core.streams import STDERR, Demux

    demux = Demux()
    while chunk := response.read1(65536):
        if info["Config"]["Tty"]:
            sys.stdout.buffer.write(chunk)
        else:
            for stream, payload in demux.feed(chunk):
                (sys.stderr if stream == STDERR else sys.stdout).buffer.write(payload)
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def inspect(client: Client, argv: list[str]) -> int:
    p = parser("inspect", "[-f TEMPLATE] NAME...")
    p.add_argument("-f", "--format")
    p.add_argument("--type", choices=["container", "image", "volume"])
    p.add_argument("names", nargs="+")
    opts = p.parse_args(argv)
    found, status = [], 0
    for name in opts.names:
        paths = {"container": f"/containers/{name}/json", "image": f"/images/{name}/json",
                 "volume": f"/volumes/{name}"}
        for kind in [opts.type] if opts.type else ["container", "image", "volume"]:
            try:
                found.append(client.json("GET", paths[kind]))
                break
            except APIError as e:
                if e.status != 404:
                    raise
        else:
            print(f"Error: No such object: {name}", file=sys.stderr)
            status = 1
    if opts.format:
        for item in found:
            print(render_template(opts.format, item))
    else:
        import json

        print(json.dumps(found, indent=4))
    return status




def wait(client: Client, argv: list[str]) -> int:
    p = parser("wait", "CONTAINER...")
    p.add_argument("containers", nargs="+")
    status = 0
    for ref in p.parse_args(argv).containers:
        try:
            print(client.json("POST", f"/containers/{ref}/wait")["StatusCode"])
        except APIError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    return status


def commit(client: Client, argv: list[str]) -> int:
    p = parser("commit", "CONTAINER [REPOSITORY[:TAG]]")
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    opts = p.parse_args(argv)
    ref = opts.reference or ""
    repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    print(client.json("POST", "/commit", {"container": opts.container, "repo": repo or None,
                                          "tag": tag or None}, {})["Id"])
    return 0


def diff(client: Client, argv: list[str]) -> int:
    p = parser("diff", "CONTAINER")
    p.add_argument("container")
    for change in client.json("GET", f"/containers/{p.parse_args(argv).container}/changes") or []:
        print(f"{'CAD'[change['Kind']]} {change['Path']}")
    return 0


def port(client: Client, argv: list[str]) -> int:
    """``port CONTAINER [PORT[/PROTO]]``: where the container's ports are published (``-p``, ``-P``)."""
    p = parser("port", "CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    opts = p.parse_args(argv)
    ports = client.json("GET", f"/containers/{opts.container}/json")["NetworkSettings"].get("Ports") or {}
    wanted = opts.port if not opts.port or "/" in opts.port else f"{opts.port}/tcp"
    found = [(key, b) for key, bindings in ports.items() if key == wanted or not wanted
             for b in bindings or []]
    if wanted and not found:
        print(f"Error: No public port '{wanted}' published for {opts.container}", file=sys.stderr)
        return 1
    for key, b in found:
        print(f"{b['HostIp']}:{b['HostPort']}" if wanted else f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0


def stats(client: Client, argv: list[str]) -> int:
    p = parser("stats", "--no-stream [CONTAINER...]")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("containers", nargs="*")
    opts = p.parse_args(argv)
    from minidocker.core.jsonscan import loads
    from minidocker.core.units import human_size

    refs = opts.containers or [c["Id"] for c in client.json("GET", "/containers/json")]
    rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]]
    for ref in refs:
        s = loads(client.request("GET", f"/containers/{ref}/stats", {"stream": False}).read())
        cpu, pre = s["cpu_stats"], s["precpu_stats"]
        system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        percent = (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]) / system * \
            cpu["online_cpus"] * 100 if system > 0 else 0.0
        memory = s["memory_stats"]
        rows.append([s["id"][:12], s["name"].lstrip("/"), f"{percent:.2f}%",
                     f"{human_size(memory['usage'])} / {human_size(memory['limit'])}",
                     f"{100 * memory['usage'] / memory['limit'] if memory['limit'] else 0:.2f}%",
                     str(s["pids_stats"]["current"])])
    print(table(rows))
    return 0


def export(client: Client, argv: list[str]) -> int:
    """``export [-o FILE] CONTAINER``: the container's filesystem as a tar, to FILE or a redirected stdout."""
    p = parser("export", "[-o FILE] CONTAINER")
    p.add_argument("-o", "--output")
    p.add_argument("container")
    opts = p.parse_args(argv)
    if not opts.output and sys.stdout.isatty():
        raise SystemExit("minidocker: cowardly refusing to save to a terminal. Use the -o flag or redirect")
    response = client.request("GET", f"/containers/{opts.container}/export")
    out = open(opts.output, "wb") if opts.output else sys.stdout.buffer  # noqa: SIM115
    with out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    return 0


COMMANDS: dict[str, Callable[[Client, list[str]], int]] = _Commands({
    "stop": stop, "rm": rm, "ps": ps, "logs": logs, "inspect": inspect, "wait": wait,
    "kill": kill, "restart": lambda client, argv: stop(client, argv, "restart"), "commit": commit,
    "diff": diff, "stats": stats, "port": port, "events": events, "pause": pause,
    "unpause": lambda client, argv: pause(client, argv, "unpause"), "rename": rename, "top": top, "cp": cp,
    "update": update, "export": export,
})
