"""Chapter 14: one translation point: an OCI bundle's ``config.json`` -> our :class:`ContainerSpec` and hooks.

runc keeps every decision about what a field of the runtime spec means in one package,
``libcontainer/specconv``; so do we. :func:`convert` reads the config once and returns a
:class:`Converted`: the container spec chapter 02's engine runs, with the hooks of chapters 03
(cgroup), 06 (capabilities, seccomp, masked paths, rlimits) and of this chapter (the OCI mounts,
the user, the sysctls) already attached, plus what the runtime itself needs (cgroup limits and
where the cgroup goes, namespaces to join by path, the OCI hooks). Nothing else reads config.json.

A field we do not honour is never dropped silently: it is named in :data:`NOT_HONOURED` and
:func:`convert` returns a warning for it, which the runtime writes to its log.

Example::

    >>> config = json.loads(Path("bundle/config.json").read_text())
    >>> converted = convert(config, Path("bundle"), "web")
    >>> converted.spec.argv, converted.limits.memory, converted.warnings
    (['sh'], 67108864, [])
"""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

from minidocker.cgroups.resources import Limits
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.core.record import Record
from minidocker.core.spec import ORDER_FINAL, ORDER_RESTRICT, ORDER_SWITCH_USER, ContainerSpec, IdMap
from minidocker.security import capabilities, seccomp
from minidocker.security import stage as security

__all__ = ["NAMESPACE_KINDS", "NOT_HONOURED", "Converted", "convert", "hardening_of", "limits_from",
           "process_capabilities", "process_hooks"]

# OCI namespace type -> chapter 02's name for it.
NAMESPACE_KINDS = {"pid": "pid", "network": "net", "mount": "mount", "ipc": "ipc", "uts": "uts",
                   "user": "user", "cgroup": "cgroup"}
# Namespaces a process can enter by path before it forks the container (setns(2) of the engine).
JOINABLE = {"pid", "net", "ipc", "uts", "cgroup"}

# --8<-- [start:not_honoured]
# Fields of the runtime spec this runtime does not honour: each one present is warned about.
NOT_HONOURED = (
    "process.apparmorProfile", "process.selinuxLabel", "process.ioPriority", "process.scheduler",
    "process.execCPUAffinity", "linux.resources.memory.reservation", "linux.resources.memory.kernel",
    "linux.resources.memory.kernelTCP", "linux.resources.memory.swappiness",
    "linux.resources.memory.disableOOMKiller", "linux.resources.memory.useHierarchy",
    "linux.resources.memory.checkBeforeUpdate", "linux.resources.cpu.mems", "linux.resources.cpu.idle",
    "linux.resources.cpu.burst", "linux.resources.cpu.realtimeRuntime", "linux.resources.cpu.realtimePeriod",
    "linux.resources.blockIO", "linux.resources.hugepageLimits",
    "linux.resources.network", "linux.resources.rdma", "linux.resources.unified",
    "linux.intelRdt", "linux.personality", "linux.mountLabel", "linux.seccomp.listenerPath",
    "linux.timeOffsets", "linux.memoryPolicy", "solaris", "windows", "vm", "zos",
)
# --8<-- [end:not_honoured]

# Mounts chapter 02's engine makes itself (mount_dev, mount_proc, mount_sys; chapter 03's cgroupfs).
ENGINE_MOUNTS = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
                 "/dev/mqueue": "mqueue", "/sys": "sysfs", "/sys/fs/cgroup": "cgroup"}

MOUNT_FLAGS = {  # option -> (flags it sets, flags it clears)
    "ro": (_syscalls.MS_RDONLY, 0), "rw": (0, _syscalls.MS_RDONLY),
    "nosuid": (_syscalls.MS_NOSUID, 0), "suid": (0, _syscalls.MS_NOSUID),
    "nodev": (_syscalls.MS_NODEV, 0), "dev": (0, _syscalls.MS_NODEV),
    "noexec": (_syscalls.MS_NOEXEC, 0), "exec": (0, _syscalls.MS_NOEXEC),
    "sync": (16, 0), "async": (0, 16), "mand": (64, 0), "nomand": (0, 64),
    "dirsync": (128, 0), "noatime": (1024, 0), "atime": (0, 1024), "nodiratime": (2048, 0),
    "diratime": (0, 2048), "relatime": (1 << 21, 0), "norelatime": (0, 1 << 21),
    "strictatime": (_syscalls.MS_STRICTATIME, 0), "nostrictatime": (0, _syscalls.MS_STRICTATIME),
    "bind": (_syscalls.MS_BIND, 0), "rbind": (_syscalls.MS_BIND | _syscalls.MS_REC, 0),
    "defaults": (0, 0),
}
MS_SHARED, MS_UNBINDABLE = 1 << 20, 1 << 17
PROPAGATION = {"private": _syscalls.MS_PRIVATE, "shared": MS_SHARED, "slave": _syscalls.MS_SLAVE,
               "unbindable": MS_UNBINDABLE}
PROPAGATION.update({f"r{name}": flag | _syscalls.MS_REC for name, flag in list(PROPAGATION.items())})

# The sysctls a container may set (they belong to its namespaces), as runc checks them.
NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.hostname",
                      "kernel.domainname")
NAMESPACED_PREFIXES = ("fs.mqueue.", "net.")

# What runc always lets a container use, whatever the config's device list says.
ALWAYS_ALLOWED = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                  "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


class Converted(Record):
    """What one config.json means: the spec the engine runs, and what the runtime does around it."""

    _fields = ("spec", "limits", "cgroup_parent", "cgroup_name", "device_rules", "join", "hooks", "terminal",
               "console_size", "oom_score_adj", "warnings")
    __slots__ = _fields

    def __init__(self, spec: ContainerSpec, limits: Limits, cgroup_parent: str | None, cgroup_name: str,
                 device_rules: tuple[str, ...] | None, join: dict[str, str] | None = None,
                 hooks: dict[str, list[dict]] | None = None, terminal: bool = False,
                 console_size: tuple[int, int] | None = None, oom_score_adj: int | None = None,
                 warnings: list[str] | None = None) -> None:
        self.spec, self.limits = spec, limits
        self.cgroup_parent = cgroup_parent  # None: the project's default parent
        self.cgroup_name = cgroup_name
        self.device_rules = device_rules  # the devices cgroup's allow-list; None: every device
        self.join = {} if join is None else join  # chapter 02's namespace name -> path to join
        self.hooks = {} if hooks is None else hooks  # OCI hook name -> hooks
        self.terminal = terminal
        self.console_size = console_size  # (rows, columns)
        self.oom_score_adj = oom_score_adj
        self.warnings = [] if warnings is None else warnings


def _get(config: dict, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _given(value: object) -> bool:
    """Whether a field says something: not absent, empty, or false (dockerd writes ``false`` for "unset")."""
    return value is not None and value is not False and value not in ("", [], {})


# --8<-- [start:convert]
def convert(config: dict, bundle: Path, container_id: str) -> Converted:
    """Translate ``config`` (the bundle's config.json, parsed) into a spec for chapter 02's engine.

    Checks everything first (a bad field is an :class:`EngineError` before anything exists),
    then attaches each part's hooks in the order runc's init applies them.
    """
    version = str(config.get("ociVersion") or "")
    if version.split(".")[0] != "1":
        raise EngineError(f"unsupported ociVersion {version[:40]!r}: this runtime implements 1.x")
    process = config.get("process") or {}
    if not process.get("args"):
        raise EngineError("config.json: process.args must name the program to run")
    linux = config.get("linux") or {}
    rootfs = _root(config, bundle)
    spec = ContainerSpec(rootfs=str(rootfs), argv=[str(a) for a in process["args"]],
                         env=_env(process.get("env") or []), cwd=process.get("cwd") or "/",
                         hostname=config.get("hostname") or "", id=container_id, namespaces=set())
    converted = Converted(spec=spec, limits=limits_from(linux.get("resources") or {}),
                          cgroup_parent=None, cgroup_name=container_id, device_rules=None,
                          hooks={k: list(v) for k, v in (config.get("hooks") or {}).items()},
                          terminal=bool(process.get("terminal")),
                          oom_score_adj=process.get("oomScoreAdj"))
    if process.get("consoleSize"):
        size = process["consoleSize"]
        converted.console_size = (size.get("height", 0), size.get("width", 0))
    converted.warnings = [f"{name} is not honoured by this runtime: ignored" for name in NOT_HONOURED
                          if _given(_get(config, name))]
    _namespaces(linux, converted)
    _cgroup(linux, converted)
    _attach(config, bundle, converted)
    return converted
# --8<-- [end:convert]


# --8<-- [start:attach]
def _attach(config: dict, bundle: Path, converted: Converted) -> None:
    """The hooks that make the container what config.json says, at the points chapter 02 offers."""
    spec, process, linux = converted.spec, config.get("process") or {}, config.get("linux") or {}
    mounts = _mounts(config)
    spec.add_hook("before_pivot", lambda root: mount_all(root, mounts, bundle))
    spec.add_hook("before_pivot", lambda root: make_devices(root, linux.get("devices") or []))
    sysctls = _sysctls({**(linux.get("sysctl") or {}),  # domainname: a sysctl of the UTS namespace
                        **({"kernel.domainname": config["domainname"]} if config.get("domainname") else {})})
    spec.add_hook("before_pivot", lambda root: write_sysctls(root, sysctls))
    hardening = hardening_of(config, process, linux)
    sets = process_capabilities(process)
    spec.add_hook("before_pivot", lambda root: security.protect_filesystem(hardening, root))
    spec.add_hook("before_exec", lambda: propagate_root(linux.get("rootfsPropagation")))
    spec.add_hook("before_pivot", lambda _root: _syscalls.prctl(_syscalls.PR_SET_KEEPCAPS, 1))
    for point, hook, order in process_hooks(process, hardening, sets):
        spec.add_hook(point, hook, order=order)
# --8<-- [end:attach]


def _mounts(config: dict) -> list[dict]:
    """config.json's mounts but those the engine makes itself; an id-mapped one is refused."""
    mounts = [m for m in config.get("mounts") or [] if not _engine_made(m)]
    for m in mounts:
        if m.get("uidMappings") or m.get("gidMappings"):
            raise EngineError(f"mount on {str(m.get('destination'))[:80]}: id-mapped mounts (uidMappings, "
                              "gidMappings) are not supported by this runtime")
    return mounts


def _root(config: dict, bundle: Path) -> Path:
    root = (config.get("root") or {}).get("path")
    if not root:
        raise EngineError("config.json: root.path is missing")
    path = Path(root) if os.path.isabs(root) else bundle / root
    if not path.is_dir():
        raise EngineError(f"rootfs ({path}) does not exist")
    return path.resolve()


def _env(items: list) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not key or not sep:
            raise EngineError(f"config.json: process.env entry {str(item)[:60]!r} is not KEY=VALUE")
        env[key] = value
    return env


# --8<-- [start:namespaces]
def _namespaces(linux: dict, converted: Converted) -> None:
    """linux.namespaces: a new one for each type without a path; join those with a path."""
    spec = converted.spec
    for entry in linux.get("namespaces") or []:
        kind = NAMESPACE_KINDS.get(entry.get("type", ""))
        if kind is None:
            raise EngineError(f"namespace type {entry.get('type')!r} is not supported")
        if not entry.get("path"):
            spec.namespaces.add(kind)
        elif kind in JOINABLE:
            if not os.path.exists(entry["path"]):
                raise EngineError(f"namespace {entry['type']} path {entry['path']!r} does not exist")
            converted.join[kind] = entry["path"]
        else:
            raise EngineError(f"joining a {entry['type']} namespace by path is not supported here")
    spec.namespaces.discard("user")
    uids, gids = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    wants_user = any(e.get("type") == "user" for e in linux.get("namespaces") or [])
    if wants_user:
        if len(uids) != 1 or uids != gids:
            raise EngineError("a user namespace needs exactly one uid mapping and the same gid mapping here")
        m = uids[0]
        spec.id_map = IdMap(m["containerID"], m["hostID"], m["size"])
    elif uids or gids:
        raise EngineError("uidMappings/gidMappings given without a user namespace")
# --8<-- [end:namespaces]


def _cgroup(linux: dict, converted: Converted) -> None:
    """cgroupsPath as runc reads it on cgroupfs: ``/parent/.../name``; a relative one too."""
    path = str(linux.get("cgroupsPath") or "")
    if ":" in path:
        raise EngineError(f"cgroupsPath {path[:80]!r} is a systemd slice (slice:prefix:name): this runtime "
                          "drives cgroupfs only (run without --systemd-cgroup, with a /parent/name path)")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise EngineError(f"cgroupsPath {path[:80]!r} may not hold '.' or '..'")
    if parts:
        converted.cgroup_parent, converted.cgroup_name = "/".join(parts[:-1]) or None, parts[-1]
    devices = (linux.get("resources") or {}).get("devices")
    converted.device_rules = device_rules(devices or [], linux.get("devices") or [])


# --8<-- [start:device_rules]
def device_rules(rules: list[dict], nodes: list[dict]) -> tuple[str, ...] | None:
    """linux.resources.devices (an ordered allow/deny list) -> our allow-list, or None for "all".

    runc starts from "deny everything"; an ``allow`` of everything (no type, or ``a``) as the last
    word means no restriction. The devices runc always allows, and the config's own device nodes,
    are added, as runc does.
    """
    allowed: list[str] = []
    for rule in rules:
        kind = rule.get("type") or "a"
        major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
        minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
        access = rule.get("access") or "rwm"
        if kind == "a":
            allowed = ["all"] if rule.get("allow") else []
            continue
        text = f"{kind} {major}:{minor} {access}"
        if rule.get("allow"):
            allowed.append(text)
        elif text in allowed:
            allowed.remove(text)
    if "all" in allowed:
        return None
    own = [f"{n.get('type', 'c')} {n.get('major', 0)}:{n.get('minor', 0)} rwm" for n in nodes
           if n.get("type", "c") in ("c", "b")]
    return tuple(dict.fromkeys([*ALWAYS_ALLOWED, *own, *allowed]))
# --8<-- [end:device_rules]


# --8<-- [start:limits_from]
def limits_from(resources: dict) -> Limits:
    """linux.resources (memory, cpu, pids) -> chapter 03's :class:`Limits`.

    A CFS quota over a period is a number of CPUs (``quota / period``), which chapter 03 writes
    back with its own period; runc's ``memory.swap`` is memory + swap, as Docker's ``--memory-swap``.
    """
    memory, cpu, pids = (resources.get(k) or {} for k in ("memory", "cpu", "pids"))
    quota, period = cpu.get("quota"), cpu.get("period") or 100000
    limit = memory.get("limit")
    return Limits(memory=limit if limit and limit > 0 else None,
                  memory_swap=memory.get("swap") if memory.get("swap") not in (None, 0) else None,
                  cpus=quota / period if quota and quota > 0 else None,
                  cpu_shares=cpu.get("shares") or None,
                  pids=pids.get("limit") if pids.get("limit") and pids["limit"] > 0 else None,
                  cpuset_cpus=cpu.get("cpus") or None)
# --8<-- [end:limits_from]


def _engine_made(mount: dict) -> bool:
    destination = os.path.normpath(mount.get("destination") or "")
    return ENGINE_MOUNTS.get(destination) == mount.get("type") and mount.get("type") != "bind"


def _sysctls(values: dict) -> dict[str, str]:
    for key in values:
        if key not in NAMESPACED_SYSCTLS and not key.startswith(NAMESPACED_PREFIXES):
            raise EngineError(f"sysctl {key!r} is not in a namespace of the container: not allowed")
        if "/" in key or ".." in key:
            raise EngineError(f"sysctl {key!r} is not a sysctl name")
    return {k: str(v) for k, v in values.items()}


def write_sysctls(root: str, values: dict[str, str]) -> None:
    """In the container, before pivot_root: write each sysctl under its own /proc/sys."""
    for key, value in values.items():
        with open(os.path.join(root, "proc/sys", key.replace(".", "/")), "w") as f:
            f.write(value)


def hardening_of(config: dict, process: dict, linux: dict) -> security.Hardening:
    """Chapter 06's plan, from the OCI fields instead of Docker's options."""
    profile = linux.get("seccomp")
    program, flags = None, 0
    if profile:
        program = seccomp.compile_profile(profile, ())
        flags = seccomp.profile_flags(profile)
    limits = {}
    for rlimit in process.get("rlimits") or []:
        name = str(rlimit.get("type", "")).lower().removeprefix("rlimit_")
        if not hasattr(resource, f"RLIMIT_{name.upper()}"):
            raise EngineError(f"rlimit {rlimit.get('type')!r} is not known")
        limits[name] = (int(rlimit.get("soft", 0)), int(rlimit.get("hard", 0)))
    sets = process_capabilities(process)
    return security.Hardening(
        capabilities=sets.bounding, seccomp=program, seccomp_flags=flags,
        no_new_privileges=bool(process.get("noNewPrivileges")),
        masked_paths=tuple(linux.get("maskedPaths") or ()),
        readonly_paths=tuple(linux.get("readonlyPaths") or ()),
        read_only_root=bool((config.get("root") or {}).get("readonly")), rlimits=limits, privileged=False)


def process_capabilities(process: dict) -> capabilities.CapabilitySets:
    """process.capabilities (``CAP_`` names) -> chapter 06's five sets; none given: none at all."""
    caps = process.get("capabilities") or {}

    def names(kind: str) -> frozenset[str]:
        return frozenset(capabilities.normalize(c) for c in caps.get(kind) or [])

    permitted, inheritable = names("permitted"), names("inheritable")
    # The kernel raises an ambient capability only if it is permitted and inheritable too: runc
    # warns and goes on without the others, and so do we (runc's default spec lists ambient only).
    return capabilities.CapabilitySets(bounding=names("bounding"), permitted=permitted,
                                       effective=names("effective"), inheritable=inheritable,
                                       ambient=names("ambient") & permitted & inheritable)


# --8<-- [start:process_hooks]
def process_hooks(process: dict, hardening: security.Hardening, sets: capabilities.CapabilitySets
                  ) -> list[tuple[str, object, int]]:
    """The ``before_exec`` hooks that make a process what process.* says, in runc's order.

    Chapter 06 restricts (rlimits, no_new_privs, seccomp without it, the bounding set); then the
    user switch; then the exact five capability sets of the config, and seccomp with no_new_privs
    last. Used for the container's process and for each ``exec``'d one.
    """
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    umask = user.get("umask")

    def switch_user() -> None:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if umask is not None:
            os.umask(int(umask))

    def finish() -> None:
        capabilities.apply(sets)
        _syscalls.prctl(_syscalls.PR_SET_KEEPCAPS, 0)
        if hardening.seccomp and hardening.no_new_privileges:
            seccomp.install(hardening.seccomp, hardening.seccomp_flags)

    return [("before_exec", lambda: security.restrict_process(hardening), ORDER_RESTRICT),
            ("before_exec", switch_user, ORDER_SWITCH_USER),
            ("before_exec", finish, ORDER_FINAL)]
# --8<-- [end:process_hooks]


def _target(root: str, destination: str, is_file: bool) -> str:
    """The mount point ``destination`` under ``root``, made if missing, resolved inside ``root``."""
    from minidocker.core.rootpath import fd_path, mkdirs_in_root, open_in_root

    if is_file:
        parent = mkdirs_in_root(root, os.path.dirname(destination) or "/")
        os.close(parent)
        try:
            fd = open_in_root(root, destination, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            os.close(open_in_root(root, destination, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            fd = open_in_root(root, destination, os.O_PATH | os.O_CLOEXEC)
    else:
        fd = mkdirs_in_root(root, destination)
    return fd_path(fd)  # the descriptor stays open until exec: O_CLOEXEC


# --8<-- [start:mount_all]
def mount_all(root: str, mounts: list[dict], bundle: Path) -> None:
    """In the container, before pivot_root: each of config.json's mounts, in order, under ``root``.

    Options split three ways, as runc's ``parseMountOptions``: mount(2) flags (ro, nosuid, ...),
    propagation flags (rprivate, rshared, ...: a second mount(2) call) and the rest, the
    filesystem's own data (``mode=755``). A bind mount's flags need a remount to take effect.
    """
    for m in mounts:
        try:
            _mount_one(root, m, bundle)
        except OSError as e:
            raise EngineError(f"mount {m.get('source')} on {m.get('destination')} ({m.get('type')}, "
                              f"{','.join(m.get('options') or [])}): {e.strerror}") from None
# --8<-- [end:mount_all]


def _mount_one(root: str, m: dict, bundle: Path) -> None:
    """One mount of config.json, under ``root``."""
    flags, propagation, data = 0, 0, []
    for option in m.get("options") or []:
        if option in MOUNT_FLAGS:
            flags = (flags | MOUNT_FLAGS[option][0]) & ~MOUNT_FLAGS[option][1]
        elif option in PROPAGATION:
            propagation |= PROPAGATION[option]
        else:
            data.append(option)
    kind = m.get("type") or ("bind" if flags & _syscalls.MS_BIND else "none")
    source = m.get("source") or kind
    if kind == "bind" or flags & _syscalls.MS_BIND:
        source = str(bundle / source) if not os.path.isabs(source) else source
        flags |= _syscalls.MS_BIND
        target = _target(root, m["destination"], not os.path.isdir(source))
        _syscalls.mount(source, target, None, flags & (_syscalls.MS_BIND | _syscalls.MS_REC))
        extra = flags & ~(_syscalls.MS_BIND | _syscalls.MS_REC)
        if extra:  # the descriptor names the directory under the new mount: look it up again
            _syscalls.mount(None, _mounted(root, m["destination"]), None,
                            _syscalls.MS_REMOUNT | _syscalls.MS_BIND | extra)
    else:
        target = _target(root, m["destination"], False)
        _syscalls.mount(source, target, kind, flags, ",".join(data) or None)
    if propagation:
        _syscalls.mount(None, _mounted(root, m["destination"]), None, propagation)


def _mounted(root: str, destination: str) -> str:
    """The mount now at ``destination`` under ``root`` (a descriptor opened before it names what is under)."""
    from minidocker.core.rootpath import fd_path, open_in_root

    return fd_path(open_in_root(root, destination, os.O_PATH | os.O_CLOEXEC))


def make_devices(root: str, nodes: list[dict]) -> None:
    """In the container, before pivot_root: linux.devices, each node made under the container's /dev."""
    from minidocker.core.rootpath import fd_path, mkdirs_in_root

    for node in nodes:
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        kind = kinds.get(node.get("type"))
        if kind is None or not str(node.get("path", "")).startswith("/dev/"):
            raise EngineError(f"device {node.get('path')!r}: type c, b or p under /dev/")
        parent = mkdirs_in_root(root, os.path.dirname(node["path"]))
        name = os.path.basename(node["path"])
        path = os.path.join(fd_path(parent), name)
        if os.path.lexists(path):
            os.unlink(path)
        mode = int(node.get("fileMode", 0o666)) & 0o7777
        os.mknod(path, mode | kind, os.makedev(int(node.get("major", 0)), int(node.get("minor", 0))))
        os.chmod(path, mode)
        os.chown(path, int(node.get("uid", 0)), int(node.get("gid", 0)))
        os.close(parent)


def propagate_root(propagation: str | None) -> None:
    """linux.rootfsPropagation: the propagation of ``/``, in the container, after ``pivot_root``.

    As runc: a shared root before ``pivot_root`` would make it fail (EINVAL), and after it the
    change stays in the container's mount namespace (chapter 02 made every mount there private).
    Example: ``"rshared"`` makes ``grep ' / / ' /proc/self/mountinfo`` show ``shared:N``.
    """
    if propagation:
        if propagation not in PROPAGATION:
            raise EngineError(f"rootfsPropagation {propagation[:40]!r}: one of {', '.join(PROPAGATION)}")
        _syscalls.mount(None, "/", None, PROPAGATION[propagation])
