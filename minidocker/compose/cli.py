"""Chapter 13: ``minidocker compose``: Compose's commands, over the client of chapter 11.

Global options first (``-f FILE`` repeatable, ``-p NAME``, ``--project-directory``, ``--env-file``,
``--profile``), then a command: ``up``, ``down``, ``ps``, ``logs``, ``exec``, ``run``, ``build``,
``pull``, ``push``, ``config``, ``start``, ``stop``, ``restart``, ``kill``, ``rm``, ``top``, ``events``.

Example::

    $ minidocker compose up -d
    $ minidocker compose ps
    $ minidocker compose logs web
    $ minidocker compose down -v
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading

from minidocker.client.client import APIError, Client
from minidocker.compose import apply
from minidocker.compose.loader import ComposeError, load
from minidocker.compose.model import NUMBER, SERVICE, Project

__all__ = ["main"]

COLOURS = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"]  # Compose's rainbow, in its order


def _global(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="minidocker compose", add_help=True)
    p.add_argument("-f", "--file", action="append", default=[], help="a Compose file (repeatable)")
    p.add_argument("-p", "--project-name", default=None)
    p.add_argument("--project-directory", default=None)
    p.add_argument("--env-file", default=None)
    p.add_argument("--profile", action="append", default=None)
    p.add_argument("command", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    opts = p.parse_args(argv)
    return opts, opts.args


def _project(opts: argparse.Namespace, named: list[str] | None = None) -> Project:
    document, facts = load(opts.file, opts.project_directory, env_file=opts.env_file, profiles=opts.profile)
    return Project.from_document(document, facts, opts.project_name, named)


def _sub(name: str, usage: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"minidocker compose {name}", usage=f"%(prog)s {usage}")


def _services_of(project: Project, names: list[str]) -> list[str]:
    for n in names:
        if n not in project.services:
            raise ComposeError(f"no such service: {n}")
    return names or list(project.services)


def _name(c: dict) -> str:
    return c["Names"][0].lstrip("/")


def cmd_up(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("up", "[-d] [--build] [--force-recreate] [--no-deps] [SERVICE...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--build", action="store_true")
    p.add_argument("--force-recreate", action="store_true")
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts, sub.services)
    apply.up(client, project, services=sub.services, build_first=sub.build,
             force_recreate=sub.force_recreate, no_deps=sub.no_deps)
    if sub.detach:
        return 0
    try:
        return logs(client, project, sub.services, follow=True)
    except KeyboardInterrupt:
        for c in apply.containers(client, project.name):
            client.request("POST", f"/containers/{c['Id']}/stop").read()
        return 130


def cmd_down(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("down", "[-v] [-t SECONDS] [--rmi local|all]")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("-t", "--timeout", type=int, default=None,
                   help="seconds to wait for a stop before SIGKILL (default: each service's "
                        "stop_grace_period, else 10)")
    p.add_argument("--rmi", choices=("local", "all"), default=None)
    p.add_argument("--remove-orphans", action="store_true")
    sub = p.parse_args(argv)
    apply.down(client, _project(opts), volumes=sub.volumes, rmi=sub.rmi, timeout=sub.timeout)
    return 0


def cmd_ps(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("ps", "[-a] [-q] [--services] [SERVICE...]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--services", action="store_true")
    p.add_argument("--format", default=None)
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts)
    found = [c for c in apply.containers(client, project.name, stopped=sub.all)
             if not sub.services or c["Labels"].get(SERVICE) in sub.services]
    if sub.quiet:
        for c in found:
            print(c["Id"])
        return 0
    if sub.services:
        for name in dict.fromkeys(c["Labels"].get(SERVICE) for c in found):
            print(name)
        return 0
    rows = [{"Name": _name(c), "Image": c.get("Image", ""), "Command": json.dumps(c.get("Command", "")),
             "Service": c["Labels"].get(SERVICE, ""), "State": c.get("State", ""),
             "Status": c.get("Status", ""),
             "Ports": ", ".join(_port(p) for p in c.get("Ports") or [])} for c in found]
    if sub.format == "json":
        print(json.dumps(rows))
        return 0
    header = ["NAME", "IMAGE", "COMMAND", "SERVICE", "STATUS", "PORTS"]
    table = [header] + [[r["Name"], r["Image"], r["Command"], r["Service"], r["Status"], r["Ports"]]
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def _port(p: dict) -> str:
    if p.get("PublicPort"):
        return f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p['PrivatePort']}/{p.get('Type', 'tcp')}"
    return f"{p['PrivatePort']}/{p.get('Type', 'tcp')}"


# --8<-- [start:logs]
# --8<-- [start:logs_part1]
def logs(client: Client, project: Project, services: list[str], follow: bool = False,
         tail: str = "all", colour: bool | None = None, timestamps: bool = False) -> int:
    # --8<-- [end:logs_part1]
    """Every container's log, merged line by line as it comes, each prefixed ``service-N  | `` in the
    service's colour (when the output is a terminal), as Compose prints them."""
    # --8<-- [start:logs_part2]
    from minidocker.core.streams import Demux

    found = [c for c in apply.containers(client, project.name)
             if not services or c["Labels"].get(SERVICE) in services]
    # --8<-- [end:logs_part2]
    if colour is None:
        colour = sys.stdout.isatty()
    # --8<-- [start:logs_part3]
    prefixes = [f"{c['Labels'].get(SERVICE, '')}-{c['Labels'].get(NUMBER, '1')}" for c in found]
    width = max((len(p) for p in prefixes), default=0)
    order = list(dict.fromkeys(c["Labels"].get(SERVICE, "") for c in found))
    lock = threading.Lock()

    def pump(c: dict, prefix: str) -> None:
        head = prefix.ljust(width) + "  | "
        if colour:
            head = f"\x1b[{COLOURS[order.index(c['Labels'].get(SERVICE, '')) % len(COLOURS)]}m{head}\x1b[0m"
        response = client.request("GET", f"/containers/{c['Id']}/logs", {
            "stdout": True, "stderr": True, "follow": follow, "tail": tail, "timestamps": timestamps})
        demux, tty, pending = Demux(), False, b""
        with contextlib.suppress(APIError):
            tty = client.json("GET", f"/containers/{c['Id']}/json")["Config"].get("Tty", False)
        while chunk := response.read1(65536):
            payload = chunk if tty else b"".join(data for _, data in demux.feed(chunk))
            pending += payload
            *lines, pending = pending.split(b"\n")
            with lock:
                for line in lines:
                    sys.stdout.write(head + line.decode(errors="replace") + "\n")
                sys.stdout.flush()
        # --8<-- [end:logs_part3]
        if pending:
            with lock:
                sys.stdout.write(head + pending.decode(errors="replace") + "\n")
                sys.stdout.flush()

    # --8<-- [start:logs_part4]
    threads = [threading.Thread(target=pump, args=(c, p), daemon=True) for c, p in zip(found, prefixes,
                                                                                          strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return 0
# --8<-- [end:logs_part4]
# --8<-- [end:logs]


def cmd_logs(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("logs", "[-f] [-t] [--tail N] [--no-color] [SERVICE...]")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts)
    _services_of(project, sub.services)
    return logs(client, project, sub.services, sub.follow, sub.tail, False if sub.no_color else None,
                sub.timestamps)


def _container(client: Client, project: Project, service: str, index: int = 1) -> dict:
    if service not in project.services:
        raise ComposeError(f"no such service: {service}")
    for c in apply.containers(client, project.name, service):
        if int(c["Labels"].get(NUMBER, 0) or 0) == index:
            return c
    raise ComposeError(f"service {service!r} is not running container #{index}")


def cmd_exec(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    from minidocker.client import run as client_run

    p = _sub("exec", "[-d] [-T] [-e K=V] [-u USER] [-w DIR] [--index N] SERVICE COMMAND [ARG...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-T", "--no-TTY", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("--index", type=int, default=1)
    p.add_argument("service")
    p.add_argument("command", nargs=argparse.REMAINDER)
    sub = p.parse_args(argv)
    project = _project(opts)
    c = _container(client, project, sub.service, sub.index)
    flags = ["-d"] if sub.detach else []
    if not sub.no_TTY and sys.stdin.isatty() and sys.stdout.isatty():
        flags += ["-i", "-t"]
    for e in sub.env:
        flags += ["-e", e]
    flags += ["-u", sub.user] if sub.user else []
    flags += ["-w", sub.workdir] if sub.workdir else []
    return client_run.exec_(client, [*flags, c["Id"], *sub.command])


def cmd_run(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    from minidocker.core.streams import STDERR, Demux

    p = _sub("run", "[--rm] [-d] [-e K=V] [--no-deps] SERVICE [COMMAND...]")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("--name", default=None)
    p.add_argument("service")
    p.add_argument("command", nargs=argparse.REMAINDER)
    sub = p.parse_args(argv)
    project = _project(opts, [sub.service])
    if sub.service not in project.services:
        raise ComposeError(f"no such service: {sub.service}")
    service = project.services[sub.service]
    deps = [d for d in service.depends_on if d in project.services]
    if deps and not sub.no_deps:
        apply.up(client, project, services=deps)
    run = apply.Run(client, project)
    run.ensure_image(service)
    run.networks()
    run.volumes()
    body = project.create_body(service, 1, oneoff=True, command=sub.command or None)
    body["Env"] += sub.env
    body["HostConfig"]["PortBindings"] = {}  # as Compose: run publishes no ports unless told to
    name = sub.name or f"{project.name}-{service.name}-run-{os.urandom(6).hex()}"
    cid = client.json("POST", "/containers/create", {"name": name}, body)["Id"]
    try:
        client.request("POST", f"/containers/{cid}/start").read()
        if sub.detach:
            print(name)
            return 0
        response = client.request("GET", f"/containers/{cid}/logs",
                                  {"stdout": True, "stderr": True, "follow": True})
        demux = Demux()
        while chunk := response.read1(65536):
            for stream, payload in demux.feed(chunk):
                (sys.stderr if stream == STDERR else sys.stdout).buffer.write(payload)
            sys.stdout.flush()
        return int(client.json("POST", f"/containers/{cid}/wait")["StatusCode"])
    finally:
        if sub.rm and not sub.detach:
            client.request("DELETE", f"/containers/{cid}", {"force": True}).read()


def cmd_build(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("build", "[--no-cache] [SERVICE...]")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts, sub.services)
    for name in _services_of(project, sub.services):
        if project.services[name].config.get("build"):
            apply.build(client, project, project.services[name], no_cache=sub.no_cache)
    return 0


def cmd_pull(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("pull", "[SERVICE...]")
    p.add_argument("--ignore-buildable", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts, sub.services)
    for name in _services_of(project, sub.services):
        s = project.services[name]
        if s.config.get("image") and not (sub.ignore_buildable and s.config.get("build")):
            print(f" {name} Pulling", file=sys.stderr, flush=True)
            try:
                apply.pull(client, s.config["image"])
            except APIError as e:
                raise ComposeError(f"services.{name}.image: {s.config['image']}: {e}") from None
            print(f" {name} Pulled", file=sys.stderr, flush=True)
    return 0


def cmd_push(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("push", "[SERVICE...]")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts, sub.services)
    for name in _services_of(project, sub.services):
        ref = project.services[name].config.get("image")
        if not ref:
            continue
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        print(f" {name} Pushing", file=sys.stderr, flush=True)
        for _ in client.stream_json("POST", f"/images/{repo}/push", {"tag": tag},
                                    headers={"X-Registry-Auth": "e30="}):
            pass
        print(f" {name} Pushed", file=sys.stderr, flush=True)
    return 0


def cmd_config(client: Client | None, opts: argparse.Namespace, argv: list[str]) -> int:
    import yaml

    p = _sub("config", "[--services] [--volumes] [--hash SERVICE] [--format yaml|json] [-q]")
    p.add_argument("--services", action="store_true")
    p.add_argument("--volumes", action="store_true")
    p.add_argument("--hash", default=None)
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.add_argument("-q", "--quiet", action="store_true")
    sub = p.parse_args(argv)
    project = _project(opts)
    if sub.quiet:
        return 0
    if sub.services:
        print("\n".join(project.services))
        return 0
    if sub.volumes:
        print("\n".join(project.volumes))
        return 0
    if sub.hash:
        names = list(project.services) if sub.hash == "*" else sub.hash.split(",")
        for n in _services_of(project, names):
            print(f"{n} {project.services[n].hash}")
        return 0
    resolved = {"name": project.name,
                "services": {n: s.config for n, s in project.services.items()},
                **({"networks": project.networks} if project.networks else {}),
                **({"volumes": project.volumes} if project.volumes else {})}
    if sub.format == "json":
        print(json.dumps(resolved, indent=2))
    else:
        print(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=False), end="")
    return 0


def _each(action: str, query: dict | None = None, usage: str = "[SERVICE...]"):
    def command(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
        p = _sub(action, usage)
        if action in ("stop", "restart"):
            p.add_argument("-t", "--timeout", type=int, default=None)
        if action == "kill":
            p.add_argument("-s", "--signal", default="SIGKILL")
        p.add_argument("services", nargs="*")
        sub = p.parse_args(argv)
        project = _project(opts)
        _services_of(project, sub.services)
        wanted = [c for c in apply.containers(client, project.name)
                  if not sub.services or c["Labels"].get(SERVICE) in sub.services]
        if action == "start":  # in dependency order
            rank = list(project.services)
            wanted.sort(key=lambda c: rank.index(c["Labels"][SERVICE]) if c["Labels"][SERVICE] in rank else 0)
        else:
            wanted.reverse()
        q = dict(query or {})
        if getattr(sub, "timeout", None) is not None:
            q["t"] = sub.timeout
        if action == "kill":
            q["signal"] = sub.signal
            wanted = [c for c in wanted if c["State"] == "running"]
        for c in wanted:
            verb = action.capitalize()
            print(f" Container {_name(c)}  {verb}ing", file=sys.stderr, flush=True)
            client.request("POST", f"/containers/{c['Id']}/{action}", q).read()
        return 0

    return command


def cmd_rm(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("rm", "[-f] [-s] [-v] [SERVICE...]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-s", "--stop", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts)
    _services_of(project, sub.services)
    for c in apply.containers(client, project.name):
        if sub.services and c["Labels"].get(SERVICE) not in sub.services:
            continue
        if c["State"] == "running":
            if not sub.stop:
                continue
            client.request("POST", f"/containers/{c['Id']}/stop").read()
        client.request("DELETE", f"/containers/{c['Id']}", {"v": sub.volumes}).read()
        print(f" Container {_name(c)}  Removed", file=sys.stderr, flush=True)
    return 0


def cmd_top(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("top", "[SERVICE...]")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts)
    for c in apply.containers(client, project.name, stopped=False):
        if sub.services and c["Labels"].get(SERVICE) not in sub.services:
            continue
        top = client.json("GET", f"/containers/{c['Id']}/top")
        print(_name(c))
        rows = [top["Titles"], *top["Processes"]]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(top["Titles"]))]
        for r in rows:
            print("   ".join(str(v).ljust(widths[i]) for i, v in enumerate(r)).rstrip())
        print()
    return 0


def cmd_events(client: Client, opts: argparse.Namespace, argv: list[str]) -> int:
    p = _sub("events", "[--json] [SERVICE...]")
    p.add_argument("--json", action="store_true")
    p.add_argument("services", nargs="*")
    sub = p.parse_args(argv)
    project = _project(opts)
    filters = {"label": [f"com.docker.compose.project={project.name}"], "type": ["container"]}
    response = client.request("GET", "/events", {"filters": json.dumps(filters)})
    for line in response:
        if not line.strip():
            continue
        event = json.loads(line)
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        service = attributes.get(SERVICE, "")
        if sub.services and service not in sub.services:
            continue
        if sub.json:
            print(json.dumps({"time": event.get("time"), "type": event.get("Type"), "action": event.get(
                "Action"), "id": (event.get("Actor") or {}).get("ID"), "service": service,
                "attributes": attributes}), flush=True)
        else:
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
            print(f"{event.get('time')} {event.get('Type')} {event.get('Action')} "
                  f"{(event.get('Actor') or {}).get('ID', '')} ({pairs})", flush=True)
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "ps": cmd_ps, "logs": cmd_logs, "exec": cmd_exec, "run": cmd_run,
            "build": cmd_build, "pull": cmd_pull, "push": cmd_push, "config": cmd_config,
            "start": _each("start"), "stop": _each("stop"), "restart": _each("restart"),
            "kill": _each("kill"),
            "rm": cmd_rm, "top": cmd_top, "events": cmd_events}


def main(client: Client, argv: list[str]) -> int:
    """``minidocker compose [OPTIONS] COMMAND [ARGS]``: the exit status. A bad file or project is one
    line on stderr and status 1, as Compose; the daemon's errors are reported by the caller."""
    opts, rest = _global(argv)
    if opts.command not in COMMANDS:
        print(f"minidocker compose: unknown command {opts.command!r}: use one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 1
    try:
        return COMMANDS[opts.command](client, opts, rest)
    except ComposeError as e:
        print(e, file=sys.stderr)
        return 1
