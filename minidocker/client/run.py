"""Chapter 11: ``minidocker run``, ``create``, ``start`` and ``exec``: the commands that attach to a process.

Each command is a few API calls in the order the real ``docker`` CLI makes them. ``run`` is the
interesting one: create (pull and retry on 404), attach *before* start so no output is lost, ask
for the exit with ``/wait`` (whose answer comes when the container stops), start, pump the
streams, and exit with the container's status, or 125/126/127 when it could not start.

Example::

    $ minidocker run --rm busybox sh -c 'echo hi; exit 3'; echo $?
    hi
    3
"""

from __future__ import annotations

import os
import sys

from minidocker.client.client import APIError, Client
from minidocker.core.console import parser
from minidocker.core.jsonscan import loads

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: importing typing costs every command 2-3 ms
    from collections.abc import Callable
    from typing import Any

# `run --rm IMAGE CMD` imports none of argparse, json, re, signal, threading, socket: each imports
# enum (4-5 ms), and together they were half of what the client took. The options are read from
# one table (RUN_OPTIONS) by `quick_options`; argparse, built from the same table, reads anything
# else (--help, a mistake, an unusual spelling), with its usage and its errors.

__all__ = ["COMMANDS", "create_body", "run", "split_run_args"]

_WITH_VALUE = {"-e", "--env", "-w", "--workdir", "--entrypoint", "-u", "--user", "-h", "--hostname",
               "-p", "--publish", "--network", "--net", "-v", "--volume", "-m", "--memory", "--cpus",
               "--pids-limit", "--stop-timeout", "--stop-signal", "--name", "-l", "--label", "--cap-add",
               "--cap-drop", "--security-opt", "--ulimit", "--expose", "--userns", "--ip", "--ip6",
               "--network-alias", "--net-alias", "--mac-address", "--restart", "--health-cmd",
               "--health-interval", "--health-timeout", "--health-retries", "--health-start-period",
               "--runtime", "--detach-keys", "--add-host", "--dns", "--dns-search", "--dns-option",
               "--group-add", "--device", "--log-opt", "--log-driver", "--cidfile", "--platform", "--pull",
               "--link"}


def split_run_args(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """``[OPTIONS] IMAGE [COMMAND...]``: options, image, command (options after IMAGE are the command's)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] == "--":
            i += 1
            break
        i += 2 if argv[i] in _WITH_VALUE else 1
    if i >= len(argv):
        raise SystemExit("minidocker: an image is required: minidocker run [OPTIONS] IMAGE [COMMAND...]")
    return argv[:i], argv[i], argv[i + 1:]


def _restart(text: str) -> dict:
    """``--restart on-failure:3`` -> ``{"Name": "on-failure", "MaximumRetryCount": 3}`` (docker's body)."""
    name, _, count = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped") or (
            count and (name != "on-failure" or not count.isdigit())):
        raise ValueError(f"invalid restart policy {text!r}: no, always, on-failure[:N] or unless-stopped")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}


def _duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, as ``--health-interval`` takes it."""
    import re

    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if text == "0":
        return 0
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: e.g. 30s, 1m30s, 500ms")
    return int(sum(float(n) * _GO_UNITS[u] for n, u in parts))


def _size(text: str) -> int:
    """``--memory 64m`` in bytes; a bad size is a usage error in Docker's words (``invalid size: '12x'``)."""
    from minidocker.core.units import parse_size  # it imports re: only for -m

    return parse_size(text)


def _pull(text: str) -> str:
    """``--pull`` is one of missing, always or never (argparse's ``choices``, in its words)."""
    if text not in ("always", "missing", "never"):
        raise ValueError(f"invalid choice: {text!r} (choose from 'always', 'missing', 'never')")
    return text


# Each option of run and create: its spellings, kind (flag: on/off; one: a value; many: repeatable),
# default, type (a function that raises ValueError on a bad value) and help.
RUN_OPTIONS: tuple[tuple[tuple[str, ...], str, Any, Any, str], ...] = (
    (("-d", "--detach"), "flag", False, None, ""),
    (("-i", "--interactive"), "flag", False, None, ""),
    (("-t", "--tty"), "flag", False, None, ""),
    (("--detach-keys",), "one", "", None,
     "the keys that leave the container running (default: ctrl-p,ctrl-q)"),
    (("--rm",), "flag", False, None, ""),
    (("--init",), "flag", False, None, ""),
    (("--runtime",), "one", "", None, "the runtime to run it on (default: the daemon's)"),
    (("--name",), "one", "", None, ""),
    (("-e", "--env"), "many", None, None, ""),
    (("-l", "--label"), "many", None, None, ""),
    (("-w", "--workdir"), "one", "", None, ""),
    (("--entrypoint",), "one", None, None, ""),
    (("-u", "--user"), "one", "", None, ""),
    (("-h", "--hostname"), "one", "", None, ""),
    (("-p", "--publish"), "many", None, None, ""),
    (("-P", "--publish-all"), "flag", False, None, ""),
    (("--expose",), "many", None, None, ""),
    (("--userns",), "one", "", None, "host: no user namespace, if the daemon has --userns-remap"),
    (("--network", "--net"), "many", None, None, ""),
    (("--ip",), "one", "", None, ""),
    (("--ip6",), "one", "", None, ""),
    (("--network-alias", "--net-alias"), "many", None, None, ""),
    (("--mac-address",), "one", "", None, ""),
    (("-v", "--volume"), "many", None, None, ""),
    (("--link",), "many", None, None, "NAME[:ALIAS]: a legacy link (default bridge)"),
    (("-m", "--memory"), "one", 0, _size, ""),
    (("--cpus",), "one", 0, float, ""),
    (("--pids-limit",), "one", 0, int, ""),
    (("--stop-timeout",), "one", None, int, ""),
    (("--stop-signal",), "one", "", None, ""),
    (("--privileged",), "flag", False, None, ""),
    (("--read-only",), "flag", False, None, ""),
    *(((option,), "many", None, None, "") for option in ("--cap-add", "--cap-drop", "--security-opt",
                                                          "--ulimit")),
    (("--restart",), "one", None, _restart, ""),
    (("--health-cmd",), "one", "", None, ""),
    *(((option,), "one", 0, _duration, "") for option in ("--health-interval", "--health-timeout",
                                                             "--health-start-period")),
    (("--health-retries",), "one", 0, int, ""),
    (("--no-healthcheck",), "flag", False, None, ""),
    *(((option,), "many", None, None, "") for option in ("--add-host", "--dns", "--dns-search",
                                                          "--dns-option", "--group-add", "--device",
                                                          "--log-opt")),
    (("--log-driver",), "one", "", None, ""),
    (("--cidfile",), "one", "", None, "write the container's id to this file (it must not exist)"),
    (("--platform",), "one", "", None, "the platform of the image (OS/ARCH)"),
    (("--pull",), "one", "missing", _pull, "missing (default), always or never"),
)


def _dest(spellings: tuple[str, ...]) -> str:
    """The attribute an option sets, as argparse names it: ``--network-alias`` -> ``network_alias``."""
    return next(s for s in spellings if s.startswith("--")).lstrip("-").replace("-", "_")


def _run_parser(command: str) -> Any:
    """argparse's parser of :data:`RUN_OPTIONS`: for ``--help``, errors and what ``quick_options`` leaves."""
    import argparse

    def checked(convert: Any) -> Any:
        def check(text: str) -> Any:  # our converters' messages, as argparse shows a type's own error
            try:
                return convert(text)
            except ValueError as e:
                if convert in (int, float):
                    raise
                raise argparse.ArgumentTypeError(str(e)) from None
        check.__name__ = convert.__name__
        return check

    p = parser(command, "[OPTIONS] IMAGE [COMMAND] [ARG...]")
    for spellings, kind, default, convert, text in RUN_OPTIONS:
        extra: dict = {"help": text} if text else {}
        if kind == "flag":
            p.add_argument(*spellings, action="store_true", **extra)
        elif kind == "many":
            p.add_argument(*spellings, action="append", default=[], **extra)
        else:
            typed = {"type": checked(convert)} if convert else {}
            p.add_argument(*spellings, default=default, **typed, **extra)
    return p


class Options:
    """Options parsed by :func:`quick_options`: the attributes argparse's ``Namespace`` would have."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


_SPELLINGS = {s: option for option in RUN_OPTIONS for s in option[0]}


def quick_options(argv: list[str]) -> Options | None:
    """``run``'s options without argparse, as argparse reads them; None for anything it leaves to argparse.

    It reads the common spellings: ``--name web``, ``--name=web``, ``-e K=V``, ``-it``. Anything else
    (``--help``, an abbreviation, ``-eK=V``, a value that starts with ``-``, a bad value) returns
    None: the caller's argparse parser (:func:`_run_parser`) reads it then, with its errors.

    Example::

        >>> opts = quick_options(["--rm", "-e", "A=1", "--network=none"])
        >>> opts.rm, opts.env, opts.network, opts.detach
        (True, ['A=1'], ['none'], False)
    """
    values: dict[str, Any] = {_dest(o[0]): [] if o[1] == "many" else o[2] for o in RUN_OPTIONS}
    i = 0
    while i < len(argv):
        word, i = argv[i], i + 1
        name, given, value = word.partition("=") if word.startswith("--") else (word, "", "")
        option = _SPELLINGS.get(name)
        if option is None:
            letters = [_SPELLINGS.get(f"-{c}") for c in word[1:]] if not word.startswith("--") else [None]
            if len(word) < 3 or any(o is None or o[1] != "flag" for o in letters):
                return None
            values.update((_dest(o[0]), True) for o in letters if o is not None)
            continue
        spellings, kind, _, convert, _ = option
        if kind == "flag":
            if given:
                return None
            values[_dest(spellings)] = True
            continue
        if not given:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value, i = argv[i], i + 1
        if convert:
            try:
                value = convert(value)
            except ValueError:
                return None
        if kind == "many":
            values[_dest(spellings)].append(value)
        else:
            values[_dest(spellings)] = value
    return Options(**values)


def _healthcheck(opts: Any) -> dict | None:
    """``Config.Healthcheck`` from the --health-* options (None: the image's, if any, as it is)."""
    if opts.no_healthcheck:
        if opts.health_cmd or opts.health_interval or opts.health_timeout or opts.health_start_period \
                or opts.health_retries:
            raise SystemExit("docker: --no-healthcheck conflicts with --health-* options.")
        return {"Test": ["NONE"]}
    check: dict = {"Test": ["CMD-SHELL", opts.health_cmd]} if opts.health_cmd else {}
    for key, value in (("Interval", opts.health_interval), ("Timeout", opts.health_timeout),
                       ("StartPeriod", opts.health_start_period), ("Retries", opts.health_retries)):
        if value:
            check[key] = value
    if opts.health_retries < 0:
        raise SystemExit("docker: --health-retries cannot be negative.")
    return check or None


def _ports(specs: list[str]) -> tuple[dict, dict]:
    """``-p [IP:]HOST:CONTAINER[/PROTO]`` -> ExposedPorts, PortBindings."""
    exposed, bindings = {}, {}
    for spec in specs:
        parts = spec.split(":")
        container, _, proto = parts[-1].partition("/")
        key = f"{container}/{proto or 'tcp'}"
        host_ip, host_port = (parts[0], parts[1]) if len(parts) == 3 else (
            "", parts[0] if len(parts) == 2 else "")
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return exposed, bindings


def _ulimit(text: str) -> dict:
    """``nofile=1024:2048`` -> Docker's ``{"Name", "Soft", "Hard"}``."""
    name, _, limits = text.partition("=")
    soft, _, hard = limits.partition(":")
    return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}


def _security_opt(item: str) -> str:
    """``seccomp=PROFILE.json`` -> ``seccomp=<its content>``, as the docker CLI sends it: the daemon
    reads no file of ours (it may not even run on this machine), and refuses a path."""
    key, sep, value = item.partition("=") if "=" in item else item.partition(":")
    if key != "seccomp" or not sep or value in ("unconfined", "builtin") or value.lstrip().startswith("{"):
        return item
    import json

    try:
        with open(value, "rb") as f:
            profile = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"minidocker: opening seccomp profile ({value}) failed: {e}") from None
    return "seccomp=" + json.dumps(profile, separators=(",", ":"))


_BUILTIN_MODES = ("default", "bridge", "host", "none")
# ``--network name=NET,alias=A,ip=IP,...`` (docker's advanced syntax): option -> EndpointSettings field
_NETWORK_KEYS = {"alias": "Aliases", "ip": "IPv4Address", "ip6": "IPv6Address", "mac-address": "MacAddress",
                 "driver-opt": "DriverOpts", "gw-priority": "GwPriority"}


def _network_option(value: str) -> tuple[str, dict]:
    """One ``--network`` value: a name (``backend``), or docker's ``name=backend,alias=db,ip=...``."""
    if "=" not in value:
        return value, {}
    name, endpoint = "", {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if not sep or (key != "name" and key not in _NETWORK_KEYS):
            raise SystemExit(f"minidocker: invalid field '{key}' in --network {value!r}: use name=NET "
                             "[,alias=A][,ip=IP][,ip6=IP][,mac-address=MAC][,driver-opt=K=V]")
        if key == "name":
            name = val
        elif key == "alias":
            endpoint.setdefault("Aliases", []).append(val)
        elif key in ("ip", "ip6"):
            endpoint.setdefault("IPAMConfig", {})[_NETWORK_KEYS[key]] = val
        elif key == "driver-opt":
            k, _, v = val.partition("=")
            endpoint.setdefault("DriverOpts", {})[k] = v
        elif key == "gw-priority":
            endpoint["GwPriority"] = int(val)
        else:
            endpoint[_NETWORK_KEYS[key]] = val
    if not name:
        raise SystemExit(f"minidocker: --network {value!r} names no network: use name=NET,...")
    return name, endpoint


# --8<-- [start:networks]
def networks(opts: Any) -> tuple[str, list[tuple[str, dict]]]:
    """``--network`` (repeatable), ``--ip``, ``--network-alias``, ``--mac-address`` -> NetworkMode and
    each network's EndpointSettings, in the order given.

    As the docker CLI: the first network is the container's NetworkMode and takes ``--ip``, ``--ip6``,
    ``--network-alias`` and ``--mac-address``; several networks must all be user-defined (a container
    on ``host``, ``none`` or another's namespace has no interface of its own to add).
    """
    named = [_network_option(v) for v in opts.network] or [("default", {})]
    if len(named) > 1 and any(n in _BUILTIN_MODES or n.startswith("container:") for n, _ in named):
        raise SystemExit("minidocker: conflicting options: cannot attach both user-defined and "
                         "non-user-defined network-modes")
    first, endpoint = named[0]
    for given, key, field in ((opts.network_alias, "Aliases", "--network-alias"),
                              (opts.mac_address, "MacAddress", "--mac-address")):
        if given and key in endpoint:
            raise SystemExit(f"minidocker: conflicting options: cannot specify both {field} and "
                             f"per-network {key.lower()}")
        if given:
            endpoint[key] = list(given) if key == "Aliases" else given
    for given, key in ((opts.ip, "IPv4Address"), (opts.ip6, "IPv6Address")):
        if given:
            endpoint.setdefault("IPAMConfig", {})[key] = given
    if first.startswith("container:") and endpoint:
        raise SystemExit("minidocker: conflicting options: --ip, --network-alias and --mac-address cannot "
                         "be used with --network container:NAME (it shares that container's network)")
    if first == "default" and not endpoint:
        return first, []
    return first, [(name, ep) for name, ep in named if not name.startswith("container:")]
# --8<-- [end:networks]


def create_body(opts: Any, image: str, command: list[str]) -> dict:
    """The ``POST /containers/create`` body for ``run``/``create`` options, as the docker CLI sends it."""
    env = [e if "=" in e else f"{e}={os.environ[e]}" for e in opts.env if "=" in e or e in os.environ]
    exposed, bindings = _ports(opts.publish)
    exposed.update({p if "/" in p else f"{p}/tcp": {} for p in opts.expose})
    body: dict = {
        "Hostname": opts.hostname, "User": opts.user, "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach, "AttachStderr": not opts.detach, "Tty": opts.tty,
        "OpenStdin": opts.interactive, "StdinOnce": opts.interactive and not opts.detach, "Env": env,
        "Cmd": command or None, "Image": image, "WorkingDir": opts.workdir,
        "Labels": dict(item.partition("=")[::2] for item in opts.label), "ExposedPorts": exposed,
        "HostConfig": {"Binds": opts.volume, "AutoRemove": opts.rm, "Init": opts.init or None,
                       "Links": opts.link or None,
                       "NetworkMode": "default", "PortBindings": bindings,
                       "PublishAllPorts": opts.publish_all, "UsernsMode": opts.userns,
                       "Memory": opts.memory,
                       "NanoCpus": int(opts.cpus * 1e9), "PidsLimit": opts.pids_limit or None,
                       "Privileged": opts.privileged, "ReadonlyRootfs": opts.read_only,
                       "CapAdd": opts.cap_add, "CapDrop": opts.cap_drop,
                       "SecurityOpt": [_security_opt(o) for o in opts.security_opt],
                       "Ulimits": [_ulimit(u) for u in opts.ulimit]}}
    if opts.runtime:
        body["HostConfig"]["Runtime"] = opts.runtime
    host = body["HostConfig"]
    for key, values in (("ExtraHosts", opts.add_host), ("Dns", opts.dns), ("DnsSearch", opts.dns_search),
                        ("DnsOptions", opts.dns_option), ("GroupAdd", opts.group_add)):
        if values:
            host[key] = list(values)
    if opts.device:  # as the docker CLI: the daemon decides (this one refuses devices)
        host["Devices"] = [_device(d) for d in opts.device]
    if opts.log_driver or opts.log_opt:
        host["LogConfig"] = {"Type": opts.log_driver,
                             "Config": dict(o.partition("=")[::2] for o in opts.log_opt)}
    mode, endpoints = networks(opts)
    body["HostConfig"]["NetworkMode"] = mode
    if endpoints:  # the first network; the others are connected after create (see _create)
        body["NetworkingConfig"] = {"EndpointsConfig": dict(endpoints[:1])}
    if opts.entrypoint is not None:
        body["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    if opts.stop_timeout is not None:
        body["StopTimeout"] = opts.stop_timeout
    if opts.stop_signal:
        body["StopSignal"] = opts.stop_signal
    if opts.restart:
        body["HostConfig"]["RestartPolicy"] = opts.restart
    check = _healthcheck(opts)
    if check:
        body["Healthcheck"] = check
    if opts.tty:
        from minidocker.client.terminal import terminal_size

        body["HostConfig"]["ConsoleSize"] = list(terminal_size())
    return body


def _device(text: str) -> dict:
    """``--device /dev/x[:/dev/y[:rwm]]`` as Docker's ``DeviceMapping``."""
    host, _, rest = text.partition(":")
    inside, _, perms = rest.partition(":")
    return {"PathOnHost": host, "PathInContainer": inside or host, "CgroupPermissions": perms or "rwm"}


def _create(client: Client, argv: list[str], command_name: str) -> tuple[str, Any]:
    options, image, command = split_run_args(argv)
    opts = quick_options(options) or _run_parser(command_name).parse_args(options)
    body = create_body(opts, image, command)
    _, endpoints = networks(opts)
    if opts.cidfile and os.path.exists(opts.cidfile):  # the docker CLI's words, before anything is made
        raise SystemExit(f"minidocker: container ID file found, make sure the other container isn't "
                         f"running or delete {opts.cidfile}")
    query = {"name": opts.name or None, "platform": opts.platform or None}
    if opts.pull == "always":
        from minidocker.client.images import pull_image

        pull_image(client, image, sys.stderr)
    try:
        created = client.json("POST", "/containers/create", query, body)
    except APIError as e:
        if e.status != 404 or "No such image" not in str(e) or opts.pull == "never":
            raise
        shown = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"
        print(f"Unable to find image '{shown}' locally", file=sys.stderr)
        from minidocker.client.images import pull_image

        pull_image(client, image, sys.stderr)
        created = client.json("POST", "/containers/create", query, body)
    if opts.cidfile:
        with open(opts.cidfile, "x") as f:
            f.write(created["Id"])
    for warning in created.get("Warnings") or []:  # what the daemon ignored, as the docker CLI shows it
        print(f"WARNING: {warning}", file=sys.stderr)
    for name, endpoint in endpoints[1:]:  # the other networks, before it starts (docker's CLI before 1.44)
        client.request("POST", f"/networks/{name}/connect", None,
                       {"Container": created["Id"], "EndpointConfig": endpoint}).read()
    return created["Id"], opts


def create(client: Client, argv: list[str]) -> int:
    cid, _ = _create(client, argv, "create")
    print(cid)
    return 0


def _start_error_code(message: str) -> int:
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    return 126 if "permission denied" in message else 125


# --8<-- [start:run]
def run(client: Client, argv: list[str]) -> int:
    """``run``: create, attach, wait, start, stream; exit with the container's status."""
    cid, opts = _create(client, argv, "run")
    if opts.detach:
        client.request("POST", f"/containers/{cid}/start").read()
        print(cid)
        return 0
    sock = client.hijack(f"/containers/{cid}/attach", {"stream": True, "stdout": True, "stderr": True,
                                                        "stdin": opts.interactive,
                                                        "detachKeys": opts.detach_keys or None})
    # the answer's headers arrive at once, its body at the exit: asked before the start, read after
    waiting = client.request("POST", f"/containers/{cid}/wait",
                             {"condition": "removed" if opts.rm else "next-exit"})
    try:
        client.request("POST", f"/containers/{cid}/start").read()
    except APIError as e:
        sock.close()
        waiting.close()
        print(f"minidocker: Error response from daemon: {e}", file=sys.stderr)
        return _start_error_code(str(e))
    if _stream(client, sock, f"/containers/{cid}", opts.tty, opts.interactive, cid, opts.detach_keys):
        waiting.close()
        return 0  # detached, as docker run -it: the container runs on
    return int(loads(waiting.read()).get("StatusCode", 125))
# --8<-- [end:run]


def _stream(client: Client, sock: Any, resize_path: str, tty: bool, interactive: bool,
            cid: str | None = None, detach_keys: str = "") -> bool:
    """Pump an attached stream; with a terminal, raw mode and resizes; otherwise forward Ctrl-C.

    True if the user typed the detach keys (a terminal's only, as the docker CLI: piped input is data).
    """
    from minidocker.client import terminal

    def resize(*_: object) -> None:
        rows, columns = terminal.terminal_size()
        try:
            client.request("POST", f"{resize_path}/resize", {"h": rows, "w": columns}).read()
        except (APIError, OSError):
            pass

    def forward(signum: int, _frame: object) -> None:
        try:
            client.request("POST", f"/containers/{cid}/kill", {"signal": signum}).read()
        except (APIError, OSError):
            pass

    import _signal  # the C module: signal's enums cost 2 ms

    stdin_fd = 0 if interactive else None
    detached = False
    if tty:
        from minidocker.core import detachkeys

        try:
            escape = detachkeys.EscapeWatcher(detachkeys.parse(detach_keys or detachkeys.DEFAULT))
        except ValueError as e:
            raise SystemExit(f"minidocker: invalid detach keys ({detach_keys}): {e}") from None
        resize()
        _signal.signal(_signal.SIGWINCH, resize)
        with terminal.raw_terminal(0) if interactive else _nothing():
            detached = terminal.pump(sock, True, stdin_fd, escape if interactive else None)
    else:
        if cid:
            for sig in (_signal.SIGINT, _signal.SIGTERM):
                _signal.signal(sig, forward)
        terminal.pump(sock, False, stdin_fd)
    sock.close()
    return detached


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def start(client: Client, argv: list[str]) -> int:
    p = parser("start", "[-a] [-i] CONTAINER...")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("containers", nargs="+")
    opts = p.parse_args(argv)
    if opts.attach:
        ref = opts.containers[0]
        info = client.json("GET", f"/containers/{ref}/json")
        tty = info["Config"]["Tty"]
        sock = client.hijack(f"/containers/{ref}/attach", {"stream": True, "stdout": True, "stderr": True,
                                                            "stdin": opts.interactive})
        client.request("POST", f"/containers/{ref}/start").read()
        _stream(client, sock, f"/containers/{ref}", tty, opts.interactive, info["Id"])
        return int(client.json("POST", f"/containers/{ref}/wait")["StatusCode"])
    return _each(opts.containers, lambda ref: client.request("POST", f"/containers/{ref}/start").read())


def _each(refs: list[str], action: Callable[[str], Any]) -> int:
    """Docker's multi-container commands: print each name done, report each failure, exit 1 if any."""
    status = 0
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except APIError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            status = 1
    return status


def exec_(client: Client, argv: list[str]) -> int:
    p = parser("exec", "[-i] [-t] [-d] [-e K=V] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--detach-keys", default="")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    options, container, command = split_run_args(argv)
    opts = p.parse_args(options)
    if not command:
        raise SystemExit("minidocker exec: a command is required: minidocker exec CONTAINER COMMAND [ARG...]")
    body: dict = {"AttachStdin": opts.interactive, "AttachStdout": not opts.detach, "AttachStderr":
                  not opts.detach, "Tty": opts.tty, "Cmd": command, "Env": opts.env,
                  "WorkingDir": opts.workdir,
                  "User": opts.user, "DetachKeys": opts.detach_keys}
    if opts.tty:
        from minidocker.client.terminal import terminal_size

        body["ConsoleSize"] = list(terminal_size())
    exec_id = client.json("POST", f"/containers/{container}/exec", None, body)["Id"]
    if opts.detach:
        client.request("POST", f"/exec/{exec_id}/start", None, {"Detach": True}).read()
        return 0
    sock = client.hijack(f"/exec/{exec_id}/start", None, {"Detach": False, "Tty": opts.tty,
                                                           "ConsoleSize": body.get("ConsoleSize")})
    if _stream(client, sock, f"/exec/{exec_id}", opts.tty, opts.interactive, None, opts.detach_keys):
        print("read escape sequence", file=sys.stderr)  # the docker CLI's words, and its status
        return 1
    code = client.json("GET", f"/exec/{exec_id}/json")["ExitCode"]
    return 126 if code is None else int(code)


# --8<-- [start:attach]
def attach(client: Client, argv: list[str]) -> int:
    """``attach [--detach-keys K] [--no-stdin] [--sig-proxy=false] CONTAINER``: join a running container's
    streams; the detach keys leave it running ("read escape sequence", status 1, as the docker CLI)."""
    p = parser("attach", "[--detach-keys KEYS] [--no-stdin] [--sig-proxy=false] CONTAINER")
    p.add_argument("--detach-keys", default="")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--sig-proxy", type=lambda v: v.lower() in ("1", "true"), default=True, nargs="?",
                   const=True, help="forward signals to the container (not with a terminal)")
    p.add_argument("container")
    opts = p.parse_args(argv)
    info = client.json("GET", f"/containers/{opts.container}/json")
    if not info["State"]["Running"]:
        raise SystemExit("minidocker: You cannot attach to a stopped container, start it first")
    if info["State"]["Paused"]:
        raise SystemExit("minidocker: You cannot attach to a paused container, unpause it first")
    tty, interactive = info["Config"]["Tty"], info["Config"]["OpenStdin"] and not opts.no_stdin
    sock = client.hijack(f"/containers/{info['Id']}/attach", {
        "stream": True, "stdout": True, "stderr": True, "stdin": interactive,
        "detachKeys": opts.detach_keys or None})
    if _stream(client, sock, f"/containers/{info['Id']}", tty, interactive,
               info["Id"] if opts.sig_proxy else None, opts.detach_keys):
        print("read escape sequence", file=sys.stderr)
        return 1
    return int(client.json("POST", f"/containers/{info['Id']}/wait")["StatusCode"])
# --8<-- [end:attach]


COMMANDS: dict[str, Callable[[Client, list[str]], int]] = {
    "run": run, "create": create, "start": start, "exec": exec_, "attach": attach,
}
