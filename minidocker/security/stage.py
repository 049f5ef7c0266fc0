"""Chapter 06: hardening: root in a container must not be root on the host. Docker's defaults, every one.

Namespaces change what a container *sees*; they do not change what its root *may do*. Root in a
chapter-02 container can still load kernel modules, mount the host's disk, reboot the machine,
set its clock. This stage takes those powers away, the way Docker does, in layers, so that one
mistake is not enough:

* **capabilities**: root keeps 14 of 41 (:mod:`minidocker.security.capabilities`);
* **seccomp**: ~300 syscalls allowed, the rest fail with EPERM (:mod:`minidocker.security.seccomp`);
* **masked and read-only paths** in /proc and /sys (:mod:`minidocker.security.masking`);
* **devices**: the devices cgroup lets the container use only harmless devices
  (:mod:`minidocker.security.devices`);
* opt-in: ``no-new-privileges`` (setuid binaries stop working), ``--read-only``, ``--ulimit``,
  ``--userns`` with an idmapped root filesystem (:mod:`minidocker.security.idmap`).

``--privileged`` turns all of it off, and ``--cap-add``, ``--cap-drop``, ``--security-opt`` adjust it.

Run it (as root)::

    python -m minidocker.security "$(python -m minidocker.rootfs)" -- grep -E 'Cap|Seccomp' /proc/self/status
    python -m minidocker.security --privileged ROOTFS -- /bin/sh     # Docker's --privileged

Options: ``--privileged``, ``--cap-add CAP``, ``--cap-drop CAP``, ``--security-opt OPT``
(``seccomp=unconfined|PROFILE.json``, ``no-new-privileges``, ``systempaths=unconfined``),
``--read-only``, ``--ulimit NAME=SOFT[:HARD]``, ``--pid host``, ``--masked-paths`` and
``--readonly-paths`` (``PATH:PATH...``, replacing Docker's lists, as the API's ``HostConfig.MaskedPaths``
and ``ReadonlyPaths`` do), ``--device /dev/HOST[:/dev/INSIDE[:rwm]]``, and those of the earlier chapters.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections import namedtuple
from collections.abc import Callable, Sequence

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import stage as _stage
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.core.record import Record
from minidocker.core.spec import ORDER_FINAL, ORDER_RESTRICT, ContainerSpec
from minidocker.namespaces import stage as namespaces
from minidocker.network import stage as network
from minidocker.security import capabilities, devices, idmap, masking, rlimits, seccomp

__all__ = ["STAGES", "SWITCH_USER", "Hardening", "SecurityOptions", "docker_argv", "exec_final_hooks",
           "exec_hooks", "finish_process", "harden", "main", "plan", "restrict_process"]

# What a process needs to become another user: kept until the switch, whatever the container drops.
SWITCH_USER = frozenset({"SETUID", "SETGID"})


class SecurityOptions(Record):
    """What ``docker run`` lets a user change about a container's security (Docker's names)."""

    _fields = ("privileged", "cap_add", "cap_drop", "security_opt", "read_only", "ulimits", "masked_paths",
               "readonly_paths", "devices")
    __slots__ = _fields

    def __init__(self, privileged: bool = False, cap_add: list[str] | None = None,
                 cap_drop: list[str] | None = None, security_opt: list[str] | None = None,
                 read_only: bool = False, ulimits: list[str] | None = None,
                 masked_paths: list[str] | None = None, readonly_paths: list[str] | None = None,
                 devices: list[str] | None = None) -> None:
        self.privileged = privileged
        self.cap_add = [] if cap_add is None else cap_add
        self.cap_drop = [] if cap_drop is None else cap_drop
        self.security_opt = [] if security_opt is None else security_opt  # "seccomp=...", "no-new-privileges"
        self.read_only = read_only  # --read-only: the root filesystem
        self.ulimits = [] if ulimits is None else ulimits  # "nofile=1024:2048"
        self.masked_paths = masked_paths  # None: Docker's; the API's HostConfig.MaskedPaths
        self.readonly_paths = readonly_paths
        self.devices = [] if devices is None else devices  # --device /dev/HOST[:/dev/INSIDE[:rwm]]


class Hardening(namedtuple("Hardening", "capabilities seccomp seccomp_flags no_new_privileges masked_paths "
                           "readonly_paths read_only_root rlimits privileged devices", defaults=((),))):
    """The options worked out and checked, in the engine, before the container exists."""

    __slots__ = ()
    capabilities: frozenset[str]
    seccomp: bytes | None  # the compiled filter; None: unconfined
    seccomp_flags: int
    no_new_privileges: bool
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    read_only_root: bool
    rlimits: dict[str, tuple[int, int]]
    privileged: bool
    devices: tuple[devices.Device, ...]  # none by default


def _security_opts(items: Sequence[str]) -> tuple[str, bool, bool]:
    """``--security-opt`` values -> (seccomp setting, no_new_privileges, system paths confined)."""
    profile, no_new_privs, confined = "builtin", False, True
    for item in items:
        if item.startswith(("seccomp=", "seccomp:")):
            profile = item[len("seccomp="):]
        elif item.startswith("no-new-privileges") and \
                item[len("no-new-privileges"):].lstrip("=:").lower() in ("", "true", "false"):
            no_new_privs = not item.lower().endswith("false")
        elif item == "systempaths=unconfined":
            confined = False
        elif not item.startswith(("apparmor=", "apparmor:", "label=", "label:")):  # no AppArmor/SELinux here
            raise EngineError(f"invalid --security-opt {item[:60]!r}: use seccomp=unconfined|PROFILE.json, "
                              "no-new-privileges, or systempaths=unconfined")
    return profile, no_new_privs, confined


# exercise 06.13: Work out the hardening from the options, before anything exists
# hint: caps = capabilities.tweak(cap_add, cap_drop, privileged); _security_opts() gives the seccomp
#   setting, no-new-privileges and systempaths; no filter when privileged or "unconfined", else
#   seccomp.default_filter(caps) for "builtin", else load_profile() and
#   compile_profile(profile, caps), profile_flags(profile); no masked
#   or read-only paths when privileged or systempaths=unconfined; rlimits.parse(ulimits).
# --8<-- [start:plan]
def plan(options: SecurityOptions) -> Hardening:
    """Check the options and compile the seccomp filter, in the engine: a mistake is an error *now*.

    The filter depends on the capabilities: Docker's profile allows ``mount`` to a container that
    has ``CAP_SYS_ADMIN``, for instance. ``--privileged`` means: every capability, no filter, no
    masked or read-only paths (and every device, see :func:`harden`).
    """
    caps = capabilities.tweak(options.cap_add, options.cap_drop, options.privileged)
    profile_opt, no_new_privs, confined = _security_opts(options.security_opt)
    program, flags = None, 0
    if not options.privileged and profile_opt in ("builtin", ""):
        program, flags = seccomp.default_filter(caps)  # kept from the fork server's, in a daemon
    elif not options.privileged and profile_opt != "unconfined":
        profile = seccomp.load_profile(profile_opt)
        program, flags = seccomp.compile_profile(profile, caps), seccomp.profile_flags(profile)
    system = confined and not options.privileged
    masked = options.masked_paths if options.masked_paths is not None else masking.MASKED_PATHS
    readonly = options.readonly_paths if options.readonly_paths is not None else masking.READONLY_PATHS
    return Hardening(capabilities=caps, seccomp=program, seccomp_flags=flags,
                     no_new_privileges=no_new_privs, masked_paths=tuple(masked) if system else (),
                     readonly_paths=tuple(readonly) if system else (), read_only_root=options.read_only,
                     rlimits=rlimits.parse(options.ulimits), privileged=options.privileged,
                     devices=tuple(devices.parse_device(d) for d in options.devices))
# --8<-- [end:plan]


# exercise 06.14: Restrict the process, in the right order
# hint: if capget() shows effective != permitted, capset the permitted set as effective again;
#   rlimits.apply; PR_SET_NO_NEW_PRIVS if asked; without it the filter must go in while we still hold
#   CAP_SYS_ADMIN (seccomp.install now); then capabilities.apply with the container's capabilities as
#   the bounding set and, as permitted and effective, them plus SWITCH_USER (the user switch needs them).
# --8<-- [start:restrict_process]
def restrict_process(hardening: Hardening) -> None:
    """In the container, before the switch to the image's user: rlimits, no_new_privs, the bounding set.

    As runc's ``finalizeNamespace``: the bounding set is cut and everything but the switch itself is
    dropped now, while we are still root; ``CAP_SETUID`` and ``CAP_SETGID`` stay until the user
    switch (``ORDER_SWITCH_USER``) has used them, even with ``--cap-drop ALL``, and
    :func:`finish_process` gives the user its own sets last (``ORDER_FINAL``). Installing a seccomp
    filter needs ``CAP_SYS_ADMIN`` or no_new_privs: without no_new_privs it goes in now, while we
    still have ``CAP_SYS_ADMIN`` (so the filter must allow setuid, capset and prctl: Docker's does);
    with it, last. ``PR_SET_KEEPCAPS`` (see :func:`harden`) keeps the permitted set across the switch.
    """
    effective, permitted, inheritable = _syscalls.capget()
    if effective != permitted:
        _syscalls.capset(permitted, permitted, inheritable)
    rlimits.apply(hardening.rlimits)
    if hardening.no_new_privileges:
        _syscalls.prctl(_syscalls.PR_SET_NO_NEW_PRIVS, 1)
    if hardening.seccomp and not hardening.no_new_privileges:
        seccomp.install(hardening.seccomp, hardening.seccomp_flags)
    keep = hardening.capabilities | SWITCH_USER
    capabilities.apply(capabilities.CapabilitySets(bounding=hardening.capabilities, permitted=keep,
                                                   effective=keep))
# --8<-- [end:restrict_process]


# --8<-- [start:finish_process]
def finish_process(hardening: Hardening) -> None:
    """In the container, after the switch to the image's user: the user's own capability sets.

    Root keeps the container's capabilities; any other user gets them as its bounding set only
    (:func:`capabilities.for_user`), as Docker. Then keep-caps goes off, and with no_new_privs the
    seccomp filter goes in, the last thing before exec.
    """
    capabilities.apply(capabilities.for_user(hardening.capabilities, os.getuid()))
    _syscalls.prctl(_syscalls.PR_SET_KEEPCAPS, 0)
    if hardening.seccomp and hardening.no_new_privileges:
        seccomp.install(hardening.seccomp, hardening.seccomp_flags)
# --8<-- [end:finish_process]


# --8<-- [start:protect_filesystem]
def protect_filesystem(hardening: Hardening, root: str) -> None:
    """In the container, before pivot_root: mask, freeze, and (privileged) open up /sys and /dev."""
    masking.mask_paths(root, hardening.masked_paths)
    masking.make_read_only(root, hardening.readonly_paths)
    if hardening.privileged:
        masking.writable_sys(root)
        masking.add_host_devices(root)
    devices.add_devices(root, hardening.devices)
    if hardening.read_only_root:
        masking.remount_read_only(root)
# --8<-- [end:protect_filesystem]


# exercise 06.15: Hook the hardening into a container spec
# hint: plan(options); refuse privileged together with spec.id_map; unless privileged, restrict the
#   devices of Cgroup.open(spec.id) if it exists (failing to: an EngineError, fail closed);
#   idmap.idmap_rootfs(spec); before_pivot hooks: protect_filesystem, PR_SET_KEEPCAPS; restrict_process
#   before_exec at ORDER_RESTRICT, finish_process at ORDER_FINAL; return the plan.
# --8<-- [start:harden]
def harden(spec: ContainerSpec, options: SecurityOptions | None = None) -> Hardening:
    """Apply Docker's defaults (adjusted by ``options``) to the container ``spec``.

    ``restrict_process`` is added at ``ORDER_RESTRICT``: after every ``before_exec`` hook of the
    default order (which may still need privileges), before any switch to another user (at
    ``ORDER_SWITCH_USER``); ``finish_process`` at ``ORDER_FINAL``, after it. ``PR_SET_KEEPCAPS`` keeps
    the permitted set across that switch, as runc does around its own.
    The container's cgroup (chapter 03), if it has one already, gets Docker's device allow-list,
    or the container does not start: without it, a ``mknod`` names the host's disk (runc fails closed).
    With a user namespace the root filesystem is idmapped, so the container's root owns its files
    without a single chown.
    """
    hardening = plan(options or SecurityOptions())
    if hardening.privileged and spec.id_map:
        raise EngineError("--privileged and --userns do not go together: privileged means the host's root")
    if not hardening.privileged:
        try:
            cgroup = Cgroup.open(spec.id)
        except EngineError:  # no cgroup: a bare spec, without chapter 03's stage
            cgroup = None
        if cgroup is not None:
            try:  # fail closed, as runc: a container without its device list does not start
                devices.restrict(cgroup, devices.DOCKER_DEVICES + tuple(d.rule for d in hardening.devices))
            except (EngineError, OSError) as e:
                raise EngineError(f"cannot apply the devices cgroup, so the container does not start: "
                                  f"{getattr(e, 'strerror', None) or e}") from None
    idmap.idmap_rootfs(spec)
    spec.add_hook("before_pivot", lambda root: protect_filesystem(hardening, root))
    spec.add_hook("before_pivot", lambda _root: _syscalls.prctl(_syscalls.PR_SET_KEEPCAPS, 1))
    spec.add_hook("before_exec", lambda: restrict_process(hardening), order=ORDER_RESTRICT)
    spec.add_hook("before_exec", lambda: finish_process(hardening), order=ORDER_FINAL)
    return hardening
# --8<-- [end:harden]


def exec_hooks(config: dict) -> list[Callable[[], None]]:
    """For ``docker exec``: the hooks that give an exec'd process the container's restrictions.

    ``config`` is the daemon's container record (``HostConfig`` in Docker's API form). Masks and
    mounts are already in the container's mount namespace; capabilities, seccomp, no_new_privs and
    rlimits belong to each process.
    """
    hardening = plan(options_from_docker(config.get("HostConfig") or {}))
    return [lambda: restrict_process(hardening)]


def exec_final_hooks(config: dict) -> list[Callable[[], None]]:
    """For ``docker exec``: what an exec'd process gets after it became its user (:func:`finish_process`)."""
    hardening = plan(options_from_docker(config.get("HostConfig") or {}))
    return [lambda: finish_process(hardening)]


def options_from_docker(host: dict) -> SecurityOptions:
    """Docker API ``HostConfig`` -> :class:`SecurityOptions`."""
    return SecurityOptions(
        privileged=bool(host.get("Privileged")), cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []), security_opt=list(host.get("SecurityOpt") or []),
        read_only=bool(host.get("ReadonlyRootfs")),
        ulimits=[f"{u['Name']}={u.get('Soft', -1)}:{u.get('Hard', u.get('Soft', -1))}"
                 for u in host.get("Ulimits") or []],
        masked_paths=host.get("MaskedPaths"), readonly_paths=host.get("ReadonlyPaths"),
        devices=[f"{d.get('PathOnHost', '')}:{d.get('PathInContainer') or d.get('PathOnHost', '')}:"
                 f"{d.get('CgroupPermissions') or 'rwm'}" for d in host.get("Devices") or []])


def docker_argv(host: dict) -> list[str]:
    """Docker API ``HostConfig`` -> this stage's options, for the daemon's ``engine.stage_argv``."""
    options, argv = options_from_docker(host), []
    argv += ["--privileged"] if options.privileged else []
    argv += ["--read-only"] if options.read_only else []
    for flag, values in (("--cap-add", options.cap_add), ("--cap-drop", options.cap_drop),
                         ("--security-opt", options.security_opt), ("--ulimit", options.ulimits),
                         ("--device", options.devices)):
        for value in values:
            argv += [flag, value]
    for flag, paths in (("--masked-paths", options.masked_paths),
                        ("--readonly-paths", options.readonly_paths)):
        if paths is not None:  # the API's list replaces Docker's; [] means none
            if any(":" in path for path in paths):
                raise EngineError(f"{flag}: a path with ':' cannot be masked here: {paths}")
            argv += [flag, ":".join(paths)]
    if host.get("PidMode") == "host":
        argv += ["--pid", "host"]
    return argv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 06, spelled as in ``docker run``."""
    group = parser.add_argument_group("hardening (chapter 06)")
    group.add_argument("--privileged", action="store_true",
                       help="turn the hardening off: every capability and device, no seccomp, no masks")
    group.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                       help="add a capability (or ALL)")
    group.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                       help="drop a capability (or ALL)")
    group.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                       help="seccomp=unconfined|PROFILE.json, no-new-privileges, systempaths=unconfined")
    group.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    group.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                       help="a resource limit, e.g. nofile=1024:2048")
    group.add_argument("--pid", choices=["host"], help="share the host's PID namespace")
    group.add_argument("--device", action="append", default=[], metavar="/dev/HOST[:/dev/INSIDE[:rwm]]",
                       help="give the container a host device (a node, and its devices cgroup rule)")
    group.add_argument("--masked-paths", metavar="PATH[:PATH...]", type=_paths,
                       help="the paths to mask instead of Docker's list ('' for none; the API's MaskedPaths)")
    group.add_argument("--readonly-paths", metavar="PATH[:PATH...]", type=_paths,
                       help="the paths to make read-only instead of Docker's ('' for none; ReadonlyPaths)")


def _paths(text: str) -> list[str]:
    paths = [p for p in text.split(":") if p]
    if not all(p.startswith("/") for p in paths):
        raise argparse.ArgumentTypeError(f"{text!r}: absolute paths, separated by ':'")
    return paths


def configure(args: argparse.Namespace, spec: ContainerSpec,
              cleanup: contextlib.ExitStack) -> None:
    """Fill the spec from the options of chapter 06: Docker's defaults unless told otherwise."""
    if args.pid == "host":
        spec.namespaces.discard("pid")
    harden(spec, SecurityOptions(privileged=args.privileged, cap_add=args.cap_add,
                                 cap_drop=args.cap_drop, security_opt=args.security_opt,
                                 read_only=args.read_only, ulimits=args.ulimit,
                                 masked_paths=args.masked_paths, readonly_paths=args.readonly_paths,
                                 devices=args.device))


STAGES = (*network.STAGES, _stage.Stage("security", add_arguments, configure))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.security [OPTIONS] ROOTFS -- CMD [ARG...]``."""
    return _stage.main(argv, prog="python -m minidocker.security", doc=__doc__, stages=STAGES,
                       run=namespaces.run)


if __name__ == "__main__":
    _stage.exit_now(main())
