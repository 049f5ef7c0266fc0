"""Chapter 02: run a command in new namespaces: its own PIDs, hostname, mounts, IPC, network, cgroup root.

A namespace wraps one global resource so that the processes inside see their own instance of it.
unshare(2) puts the calling process into new namespaces; a new PID namespace applies to the
caller's *children*, so the engine forks twice:

    engine ──fork──> setup child: unshare(NEWNS|NEWUTS|NEWIPC|NEWNET|NEWPID[|NEWUSER])
                       └──fork──> container PID 1: waits for "go", enters its cgroup namespace,
                                   sets the hostname, mounts /proc /dev /sys, pivot_root, exec CMD

Between the two, the engine (outside) finishes the container from the host side: it writes the user
namespace's id maps, and later chapters add their hooks there (join a cgroup, plug in a network).

Run it (as root)::

    python -m minidocker.namespaces --hostname box "$(python -m minidocker.rootfs)" -- \\
        /bin/sh -c 'echo $$; hostname'       # prints 1, then box

Options: ``--hostname``, ``--userns`` (root inside maps to an unprivileged host range), ``--init``
(a tiny init as PID 1), ``-e KEY=VALUE``, ``-w DIR``. Exit status as in chapter 01.
"""

from __future__ import annotations

import _socket
import argparse
import contextlib
import fcntl
import os
import struct
import sys
from collections.abc import Sequence

from minidocker.core import stage as _stage
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import (
    DEFAULT_PATH,
    EngineError,
    Forwarder,
    exec_command,
    exit_code,
    forwarding_signals,
    read_report,
)
from minidocker.core.spec import ContainerSpec, IdMap
from minidocker.core.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from minidocker.namespaces import init, mounts

__all__ = ["STAGES", "Container", "main", "run", "start"]

NAMESPACES = {"mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID,
              "net": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER}


class Container:
    """A started container: the host pid of its PID 1, and how to wait for it."""

    def __init__(self, spec: ContainerSpec, pid: int, status: int | None = None, child: bool = True) -> None:
        self.spec = spec
        self.pid = pid
        self.status = status  # raw wait status once it has exited
        self.child = child  # False: PID 1 is our parent's child (see start's ``reap``)

    def __repr__(self) -> str:
        return f"Container(spec={self.spec!r}, pid={self.pid!r}, status={self.status!r})"

    def wait(self, signals: Forwarder | None = None) -> int:
        """Wait for PID 1 to exit (the kernel then kills the rest); return its shell-style exit code.

        With ``signals`` (see :func:`run`), pass the engine's signals on to it meanwhile.
        """
        if self.status is None:
            if not self.child:
                self.status = _zombie_status(self.pid)
            else:
                self.status = signals.wait(self.pid) if signals else os.waitpid(self.pid, 0)[1]
            for hook in self.spec.hooks("on_exit"):
                hook(self.status)
        return exit_code(self.status)


def _zombie_status(pid: int) -> int:
    """Wait for ``pid``, not our child, to exit; its wait status, read before its parent reaps it.

    A pidfd becomes readable when the process exits, child or not; ``/proc/PID/stat``'s 52nd field
    is then its wait status (proc(5)), for as long as it is a zombie: its parent (a daemon's
    monitor, see :func:`start`) reaps it only once told the pid is done with.
    """
    import select  # only a daemon's monitor needs it

    pidfd = os.pidfd_open(pid)
    try:
        select.select([pidfd], [], [])
    finally:
        os.close(pidfd)
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return int(fields[52 - 3])


# exercise 02.11: Map root inside to an unprivileged range outside
# hint: write one line "inside outside count\n" to /proc/PID/uid_map and to /proc/PID/gid_map.
# --8<-- [start:write_id_maps]
def write_id_maps(pid: int, id_map: IdMap) -> None:
    """Map container uid/gid ``inside..`` to host ids ``outside..`` for the user namespace of ``pid``.

    Written from the parent namespace by a privileged process, so no ``setgroups deny`` is needed.
    Until this is done the container's processes are "nobody" (65534) and can do nothing useful.
    """
    line = f"{id_map.inside} {id_map.outside} {id_map.count}\n"
    for kind in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{kind}", "w") as f:
            f.write(line)
# --8<-- [end:write_id_maps]


# exercise 02.10: Bring up the loopback device
# hint: ioctl(2) on any AF_INET socket: SIOCGIFFLAGS (0x8913) reads the flags of b"lo" (struct
#   "16sH", padded to 40 bytes), SIOCSIFFLAGS (0x8914) writes them back with IFF_UP (0x1) set.
# --8<-- [start:loopback_up]
def loopback_up() -> None:
    """Bring up ``lo`` in this (new) network namespace: it starts down, with no other device.

    A tiny ioctl(2) on any socket is enough: read the interface flags, add IFF_UP, write them back.
    Chapter 05 uses netlink (pyroute2) for the real network; here we want nothing heavy.
    """
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)  # socket's C core: 3 ms less to import
    try:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, siocgifflags, request + bytes(22)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up) + bytes(22))
    finally:
        s.close()
# --8<-- [end:loopback_up]


# exercise 02.2: Start a container from the engine's side
# hint: check the rootfs; become a subreaper (prctl PR_SET_CHILD_SUBREAPER, int(reap)) so that PID 1
#   is handed to you (Container(spec, pid, child=reap)); three os.pipe2(os.O_CLOEXEC) pipes (pid, go,
#   report); fork _setup_child(); read PID 1's pid, write the id maps, run spec.hooks("on_created"),
#   then write b"go" (kill PID 1 if any of that fails); a report on the report pipe means
#   EngineError(report, container.wait()).
# --8<-- [start:start]
# --8<-- [start:start_part1]
def start(spec: ContainerSpec, reap: bool = True) -> Container:
    # --8<-- [end:start_part1]
    """Create the namespaces and the container's PID 1, run the hooks, and return once CMD is exec'd.

    Raises :class:`EngineError` with the container's own reason (exit 127 for a missing command,
    126 for one that can't be executed, 125 for a failed set-up); nothing is left running then.
    With ``reap=False`` PID 1 goes to our parent instead, which must be a subreaper: chapter 10's
    monitor starts containers from a short-lived child of its own.
    """
    # --8<-- [start:start_part2]
    if not os.path.isdir(spec.rootfs):
        raise EngineError(f"rootfs {spec.rootfs!r} is not a directory: build one with "
                          "'python -m minidocker.rootfs'")
    # PID 1 is the *grandchild*: when the set-up child exits, the kernel hands it to us.
    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, int(reap))
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)  # set-up child -> engine: the pid of PID 1
    go_r, go_w = os.pipe2(os.O_CLOEXEC)  # engine -> PID 1: the host side is ready
    report_r, report_w = os.pipe2(os.O_CLOEXEC)  # PID 1 -> engine: why it failed; EOF on exec
    setup = os.fork()
    if setup == 0:
        os.close(pid_r), os.close(go_w), os.close(report_r)
        _setup_child(spec, pid_w, go_r, report_w)
    os.close(pid_w), os.close(go_r), os.close(report_w)
    pid_text = read_report(pid_r)
    os.waitpid(setup, 0)
    if not pid_text:
        os.close(go_w)
        raise EngineError(read_report(report_r) or "could not create the namespaces")
    container = Container(spec, int(pid_text), child=reap)
    try:
        if spec.id_map:
            write_id_maps(container.pid, spec.id_map)
        for hook in spec.hooks("on_created"):
            hook(container.pid)
        os.write(go_w, b"go")
    except BaseException:
        os.kill(container.pid, 9)
        container.wait()
        os.close(report_r)
        raise
    finally:
        os.close(go_w)
    problem = read_report(report_r)
    if problem:
        raise EngineError(problem, container.wait())
    return container
# --8<-- [end:start_part2]
# --8<-- [end:start]


# exercise 02.1: Unshare the namespaces and fork PID 1
# hint: OR together the CLONE_NEW* flags of spec.namespaces (all but cgroup, which PID 1 unshares
#   later; add CLONE_NEWUSER when spec.id_map is set) for one _syscalls.unshare(); fork: the child
#   closes pid_w and becomes _container_process(); the parent writes the child's pid to pid_w and
#   os._exit(0)s. On any exception write it to report_w and os._exit(125). Never return.
# --8<-- [start:setup_child]
def _setup_child(spec: ContainerSpec, pid_w: int, go_r: int, report_w: int) -> None:
    """In the first child: unshare the namespaces, fork PID 1, report its pid, exit. Never returns."""
    try:
        # The cgroup namespace waits until PID 1 has joined its cgroup, so that cgroup becomes "/".
        flags = 0
        for name in spec.namespaces - {"cgroup"}:
            flags |= NAMESPACES[name]
        if spec.id_map:
            flags |= CLONE_NEWUSER
        _syscalls.unshare(flags)
        pid = os.fork()
        if pid == 0:
            os.close(pid_w)
            _container_process(spec, go_r, report_w)
        os.write(pid_w, str(pid).encode())
        os._exit(0)
    except BaseException as e:
        with contextlib.suppress(BaseException):
            os.write(report_w, f"creating namespaces: {e}".encode())
        os._exit(125)
# --8<-- [end:setup_child]


# exercise 02.3: Be PID 1: build the container's world, then exec
# hint: wait for b"go"; PR_SET_PDEATHSIG; with spec.id_map become root of the user namespace; then the
#   cgroup namespace, loopback_up(), the hostname and, with a mount namespace, make_mounts_private,
#   prepare_root, spec.hooks("before_pivot") and pivot_into; spec.hooks("before_exec"); chdir to
#   spec.cwd or "/".
#   Report any failure on report_w and os._exit(125); then run_as_init() or exec_command().
# --8<-- [start:container_process]
def _container_process(spec: ContainerSpec, go_r: int, report_w: int) -> None:
    """In PID 1 of the new namespaces: wait for "go", build the container's view, exec. Never returns."""
    try:
        if os.read(go_r, 2) != b"go":
            os._exit(125)  # the engine gave up (or died) before we started
        os.close(go_r)
        _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, 9)  # if the engine dies, so do we
        if spec.id_map:  # the maps are written: become root of the user namespace
            os.setgroups([])
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if "cgroup" in spec.namespaces:
            _syscalls.unshare(CLONE_NEWCGROUP)
        if "net" in spec.namespaces:
            loopback_up()
        if "uts" in spec.namespaces:
            _syscalls.sethostname(spec.hostname or spec.id[:12])
        if "mount" in spec.namespaces:
            if spec.rootfs_propagation == "rslave":  # a bind asked for it
                mounts.make_mounts_slave()
            else:
                mounts.make_mounts_private()
            mounts.prepare_root(spec.rootfs)
            for hook in spec.hooks("before_pivot"):
                hook(spec.rootfs)
            mounts.pivot_into(spec.rootfs)
        else:
            os.chroot(spec.rootfs)
        for hook in spec.hooks("before_exec"):
            hook()
        os.chdir(spec.cwd or "/")
    except BaseException as e:
        with contextlib.suppress(BaseException):
            os.write(report_w, f"container set-up: {e}".encode())
        os._exit(125)
    if spec.init:
        init.run_as_init(spec.argv, spec.env, report_w)
    exec_command(spec.argv, spec.env, report_w)
# --8<-- [end:container_process]


# --8<-- [start:run]
def run(spec: ContainerSpec) -> int:
    """Start the container, pass on the signals sent to the engine while it runs, return its exit status.

    The forwarding starts before the container does: a SIGTERM that arrives while it is being
    created waits, and reaches it as soon as it exists.
    """
    with forwarding_signals() as signals:
        container = start(spec)
        return container.wait(signals)
# --8<-- [end:run]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of chapter 02."""
    group = parser.add_argument_group("namespaces (chapter 02)")
    group.add_argument("--hostname", default="", help="container hostname (default: the short container id)")
    group.add_argument("--userns", action="store_true",
                       help="run in a user namespace: root inside is uid 100000 outside")
    group.add_argument("--init", action="store_true", help="run a tiny init as PID 1 that reaps zombies")
    group.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                       help="set an environment variable (KEY alone copies it from here)")
    group.add_argument("-w", "--workdir", default="", metavar="DIR",
                       help="working directory inside (default: /, or the image's)")


def configure(args: argparse.Namespace, spec: ContainerSpec, cleanup: contextlib.ExitStack) -> None:
    """Fill the spec from the options of chapter 02 (and the ROOTFS and command)."""
    spec.rootfs = os.path.abspath(args.rootfs) if args.rootfs else ""
    spec.argv = list(args.command)
    spec.hostname = args.hostname
    spec.cwd = args.workdir
    spec.init = args.init
    spec.id_map = IdMap() if args.userns else None
    for item in args.env:
        key, sep, value = item.partition("=")
        if not key:
            raise EngineError(f"invalid environment variable {item!r}: use KEY=VALUE")
        if sep or key in os.environ:
            spec.user_env[key] = value if sep else os.environ[key]
    spec.env = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.hostname or spec.id[:12], "HOME": "/root"}
    if sys.stdout.isatty():
        spec.env["TERM"] = os.environ.get("TERM", "xterm")
    spec.env.update(spec.user_env)


STAGES = (_stage.Stage("namespaces", add_arguments, configure),)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.namespaces [OPTIONS] ROOTFS -- CMD [ARG...]``."""
    return _stage.main(argv, prog="python -m minidocker.namespaces", doc=__doc__, stages=STAGES, run=run)


if __name__ == "__main__":
    _stage.exit_now(main())
