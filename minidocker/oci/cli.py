"""Chapter 14: ``minidocker-runtime``: runc's command line, so that containerd and dockerd can drive us.

The global options come first (``--root``, ``--log``, ``--log-format``, ``--debug``,
``--systemd-cgroup``), then a command and its own options, then the container id: exactly how
containerd's shim calls runc::

    minidocker-runtime --root /run/containerd/runc/default --log log.json --log-format json \\
        create --bundle /run/containerd/.../ID --pid-file init.pid --console-socket /tmp/pty.sock ID

An error is one line on stderr (and one JSON line ``{"level": "error", "msg", "time"}`` in
``--log`` with ``--log-format json``, where the shim looks for it) and exit status 1, as runc.
Warnings (a config field we do not honour) go to the log, or to stderr without one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from minidocker.core import jsonscan
from minidocker.core.atomic import rfc3339
from minidocker.core.process import EngineError
from minidocker.core.stage import exit_now
from minidocker.oci import lifecycle
from minidocker.oci.state import DEFAULT_ROOT, ContainerDir

__all__ = ["Log", "command", "main", "parse_signal"]

VERSION = "minidocker-runtime version 0.14.0\ncommit: minidocker\nspec: 1.0.2-dev"


class Log:
    """``--log FILE`` in ``--log-format text|json`` (runc's JSON lines), or stderr."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug = path, fmt, debug

    def write(self, level: str, msg: str) -> None:
        if self.path is None:
            if level != "debug" or self.debug:
                print(f"{'minidocker-runtime: ' if level == 'error' else level + ': '}{msg}", file=sys.stderr)
            return
        if level == "debug" and not self.debug:
            return
        line = (jsonscan.dumps({"level": level, "msg": msg, "time": rfc3339()}) if self.fmt == "json"
                else f'time="{rfc3339()}" level={level} msg="{msg}"')
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def warn(self, msg: str) -> None:
        self.write("warning", msg)


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL`` or ``9`` -> 9 (runc's rules); anything else is an error."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise EngineError(f"unknown signal {text[:20]!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minidocker-runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=DEFAULT_ROOT, help="where container state is kept")
    parser.add_argument("--log", help="log file (default: stderr)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--systemd-cgroup", action="store_true", help="refused: cgroupfs only")
    parser.add_argument("--rootless", default="false", help="refused unless false")
    parser.add_argument("-v", "--version", action="store_true")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, with_id: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        if with_id:
            sub.add_argument("id", metavar="CONTAINER_ID")
        return sub

    for name in ("create", "run"):
        sub = command(name, "create a container" if name == "create" else "create and start a container")
        sub.add_argument("-b", "--bundle", default=".")
        sub.add_argument("--pid-file")
        sub.add_argument("--console-socket")
        sub.add_argument("--no-pivot", action="store_true")
        sub.add_argument("--no-new-keyring", action="store_true")
        sub.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            sub.add_argument("-d", "--detach", action="store_true")
    command("start", "start a created container")
    sub = command("state", "print a container's state as JSON")
    sub = command("kill", "send a signal to the container's init")
    sub.add_argument("signal", nargs="?", default="SIGTERM")
    sub.add_argument("-a", "--all", action="store_true")
    sub = command("delete", "delete a container")
    sub.add_argument("-f", "--force", action="store_true")
    sub = command("exec", "run one more process in a container")
    sub.add_argument("-p", "--process")
    sub.add_argument("-d", "--detach", action="store_true")
    sub.add_argument("--pid-file")
    sub.add_argument("--console-socket")
    sub.add_argument("-t", "--tty", action="store_true")
    sub.add_argument("--cwd")
    sub.add_argument("-e", "--env", action="append", default=[])
    sub.add_argument("-u", "--user")
    sub.add_argument("--cap", action="append", default=[])
    sub.add_argument("--no-new-privs", action="store_true")
    sub.add_argument("--preserve-fds", type=int, default=0)
    sub.add_argument("exec_args", nargs=argparse.REMAINDER, metavar="COMMAND")
    sub = command("ps", "the container's processes (host pids)")
    sub.add_argument("-f", "--format", choices=["table", "json"], default="table")
    sub = command("list", "list containers", with_id=False)
    sub.add_argument("-q", "--quiet", action="store_true")
    sub.add_argument("-f", "--format", choices=["table", "json"], default="table")
    command("pause", "freeze every process of a container")
    command("resume", "thaw a paused container")
    sub = command("update", "change a running container's limits")
    sub.add_argument("-r", "--resources", help="LinuxResources JSON file, - for stdin")
    sub.add_argument("-m", "--memory", type=int)
    sub.add_argument("--pids-limit", type=int)
    sub.add_argument("--cpu-quota", type=int)
    sub.add_argument("--cpu-period", type=int)
    sub.add_argument("--cpu-share", type=int)
    sub.add_argument("--cpuset-cpus")
    sub = command("events", "a container's resource usage as JSON")
    sub.add_argument("--stats", action="store_true", help="one stats object, then exit")
    sub.add_argument("--interval", type=float, default=5.0)
    command("features", "what this runtime supports, as JSON", with_id=False)
    sub = command("spec", "write runc's default config.json", with_id=False)
    sub.add_argument("-b", "--bundle", default=".")
    sub.add_argument("--rootless", dest="spec_rootless", action="store_true")
    command("version", "print the version", with_id=False)
    return parser


def command() -> None:
    """The ``minidocker-runtime`` program: :func:`main`, then an exit without the interpreter's teardown.

    Why: each container costs three runtime commands (create, start, delete); tearing down the
    modules and collecting garbage at each exit took 7 ms of each, for no one (output is flushed
    first, and an ``atexit`` handler or a profiler still gets the normal exit: ``core/stage.exit_now``).
    """
    exit_now(main())


def main(argv: Sequence[str] | None = None) -> int:
    """``minidocker-runtime [GLOBAL OPTIONS] COMMAND [OPTIONS] ID``: exit 0, or 1 with one line."""
    args = _parser().parse_args(argv)
    log = Log(args.log, args.log_format, args.debug)
    try:
        return _dispatch(args, log)
    except EngineError as e:
        log.write("error", str(e))
        if args.log is not None:
            print(f"minidocker-runtime: {e}", file=sys.stderr)
        return 1 if args.command not in ("run", "exec") or e.exit_code == 125 else e.exit_code
    except OSError as e:
        log.write("error", f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        if args.log is not None:
            print(f"minidocker-runtime: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, log: Log) -> int:
    if args.version or args.command == "version":
        print(VERSION)
        return 0
    if args.systemd_cgroup:
        raise EngineError("--systemd-cgroup is not supported: this runtime drives cgroupfs only")
    if args.rootless not in ("false", "auto"):
        raise EngineError("rootless containers are not supported by this runtime")
    if args.command is None:
        raise EngineError("no command given: see 'minidocker-runtime --help'")
    root = Path(args.root)
    handler = COMMANDS[args.command]
    return handler(args, root, log) or 0


def _box(args: argparse.Namespace, root: Path) -> ContainerDir:
    return ContainerDir(root, args.id)


def _create(args: argparse.Namespace, root: Path, log: Log) -> int:
    _ignored(args, log)
    lifecycle.create(_box(args, root), Path(args.bundle), pid_file=args.pid_file,
                     console_socket=args.console_socket, warn=log.warn, preserve_fds=args.preserve_fds)
    return 0


def _ignored(args: argparse.Namespace, log: Log) -> None:
    """runc's options that change nothing here, said in the log."""
    if args.no_pivot:
        log.warn("--no-pivot is ignored: the container always gets pivot_root (chapter 02)")
    if args.no_new_keyring:
        log.warn("--no-new-keyring is ignored: the container shares the session keyring it is given")


def _run(args: argparse.Namespace, root: Path, log: Log) -> int:
    _ignored(args, log)
    return lifecycle.run(_box(args, root), Path(args.bundle), detach=args.detach, pid_file=args.pid_file,
                         console_socket=args.console_socket, warn=log.warn, preserve_fds=args.preserve_fds)


def _state(args: argparse.Namespace, root: Path, log: Log) -> int:
    box = _box(args, root)
    import json  # for its indent: the JSON of create, start and delete goes through core/jsonscan

    print(json.dumps(_public_state(box, box.load()), indent=2))
    return 0


def _public_state(box: ContainerDir, state: dict) -> dict:
    """runc's ``state`` output: the spec's state plus rootfs, created and owner."""
    status = box.status(state)
    return {"ociVersion": "1.0.2-dev", "id": box.id, "pid": 0 if status == "stopped" else state["pid"],
            "status": status, "bundle": state["bundle"], "rootfs": state["rootfs"],
            "created": state["created"], "owner": state.get("owner", ""),
            **({"annotations": state["annotations"]} if state.get("annotations") else {})}


def _simple(name: str) -> object:
    def handler(args: argparse.Namespace, root: Path, log: Log) -> int:
        box = _box(args, root)
        if name == "start":
            lifecycle.start(box, warn=log.warn)
        elif name == "kill":
            lifecycle.kill(box, parse_signal(args.signal), args.all)
        elif name == "delete":
            lifecycle.delete(box, args.force, warn=log.warn)
        elif name in ("pause", "resume"):
            state = box.load()
            status = box.status(state)
            if status not in (("running",) if name == "pause" else ("paused",)):
                raise EngineError(f"container not {'running' if name == 'pause' else 'paused'}: {status}")
            cgroup = lifecycle.cgroup_of(state)
            if cgroup is None:
                raise EngineError("container not running")
            lifecycle.freeze(cgroup, name == "pause")
            box.save({**state, "paused": name == "pause"})
        return 0
    return handler


def _exec(args: argparse.Namespace, root: Path, log: Log) -> int:
    from minidocker.oci import execs  # chapter 10's nsenter: only for exec

    box = _box(args, root)
    if args.process:
        process = _read_json(args.process)
    else:
        if not args.exec_args:
            raise EngineError("exec: give a command, or --process FILE")
        state = box.load()
        base = dict(state["config"].get("process") or {})
        env = list(base.get("env") or []) + list(args.env)
        process = {**base, "args": args.exec_args, "env": env, "terminal": args.tty,
                   "cwd": args.cwd or base.get("cwd") or "/"}
        if args.user:
            uid, _, gid = args.user.partition(":")
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        if args.no_new_privs:
            process["noNewPrivileges"] = True
        if args.cap:
            caps = process.get("capabilities") or {}
            process["capabilities"] = {k: sorted(set(caps.get(k) or []) | set(args.cap))
                                       for k in ("bounding", "effective", "permitted")}
    if args.tty:
        process["terminal"] = True
    return execs.exec_process(box, process, detach=args.detach, pid_file=args.pid_file,
                              console_socket=args.console_socket, preserve_fds=args.preserve_fds)


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(lifecycle.MAX_CONFIG + 1)
        value = jsonscan.loads(data)
    except OSError as e:
        raise EngineError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise EngineError(f"{path}: not valid JSON: {e}") from None
    if len(data) > lifecycle.MAX_CONFIG or not isinstance(value, dict):
        raise EngineError(f"{path}: not a JSON object of at most {lifecycle.MAX_CONFIG >> 20} MiB")
    return value


def _ps(args: argparse.Namespace, root: Path, log: Log) -> int:
    box = _box(args, root)
    cgroup = lifecycle.cgroup_of(box.load())
    pids = sorted(cgroup.pids()) if cgroup else []
    if args.format == "json":
        print(jsonscan.dumps(pids))
        return 0
    print("PID   CMD")
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        print(f"{pid:<5} {cmd.strip()}")
    return 0


def _list(args: argparse.Namespace, root: Path, log: Log) -> int:
    rows = []
    for box in ContainerDir.all(root):
        try:
            rows.append(_public_state(box, box.load()))
        except EngineError:
            continue
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(jsonscan.dumps(rows or None))
    else:
        from minidocker.core.console import table

        print(table([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                     *[[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"] or "root"]
                       for r in rows]]))
    return 0


def _update(args: argparse.Namespace, root: Path, log: Log) -> int:
    box = _box(args, root)
    state = box.load()
    if box.status(state) == "stopped":
        raise EngineError("container not running")
    resources: dict = {}
    if args.resources:
        resources = jsonscan.loads(sys.stdin.read()) if args.resources == "-" else _read_json(args.resources)
    memory, cpu, pids = (dict(resources.get(k) or {}) for k in ("memory", "cpu", "pids"))
    for target, key, value in ((memory, "limit", args.memory), (pids, "limit", args.pids_limit),
                               (cpu, "quota", args.cpu_quota), (cpu, "period", args.cpu_period),
                               (cpu, "shares", args.cpu_share), (cpu, "cpus", args.cpuset_cpus)):
        if value is not None:
            target[key] = value
    from minidocker.oci import specconv  # here and in create only: the other commands start quicker

    lifecycle.update(state, specconv.limits_from({"memory": memory, "cpu": cpu, "pids": pids}))
    return 0


# --8<-- [start:events]
def stats_event(container_id: str, stats: object) -> dict:
    """Chapter 03's :class:`Stats` in the shape of runc's ``events --stats``."""
    s = stats
    return {"type": "stats", "id": container_id, "data": {
        "cpu": {"usage": {"total": s.cpu_ns, "percpu": [], "kernel": 0, "user": 0},
                "throttling": {"periods": s.periods, "throttledPeriods": s.throttled_periods,
                               "throttledTime": s.throttled_ns}},
        "memory": {"usage": {"usage": s.memory, "max": s.memory_peak or 0, "limit": s.memory_limit or 0,
                             "failcnt": 0}, "swap": {}, "kernel": {}, "kernelTCP": {}, "raw": {}},
        "pids": {"current": s.pids, "limit": s.pids_limit or 0},
        "blkio": {}, "hugetlb": {}}}
# --8<-- [end:events]


def _events(args: argparse.Namespace, root: Path, log: Log) -> int:
    box = _box(args, root)
    while True:
        state = box.load()
        cgroup = lifecycle.cgroup_of(state)
        if cgroup is None or box.status(state) == "stopped":
            raise EngineError("container not running")
        print(jsonscan.dumps(stats_event(box.id, cgroup.stats())), flush=True)
        if args.stats:
            return 0
        time.sleep(max(args.interval, 0.1))


def _features(args: argparse.Namespace, root: Path, log: Log) -> int:
    import json

    from minidocker.oci import defaults

    print(json.dumps(defaults.features(), indent=4))
    return 0


def _spec(args: argparse.Namespace, root: Path, log: Log) -> int:
    import json

    from minidocker.oci import defaults

    if args.spec_rootless:
        raise EngineError("spec --rootless: rootless containers are not supported by this runtime")
    path = Path(args.bundle) / "config.json"
    if path.exists():
        raise EngineError("File config.json exists. Remove it first.")
    path.write_text(json.dumps(defaults.default_spec(), indent="\t") + "\n")
    return 0


COMMANDS = {"create": _create, "run": _run, "start": _simple("start"), "state": _state,
            "kill": _simple("kill"),
            "delete": _simple("delete"), "exec": _exec, "ps": _ps, "list": _list, "pause": _simple("pause"),
            "resume": _simple("resume"), "update": _update, "events": _events, "features": _features,
            "spec": _spec}
