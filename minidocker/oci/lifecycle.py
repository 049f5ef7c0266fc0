"""Chapter 14: create, start, kill, delete: chapter 02's engine split in two at the exec, as runc does.

``create`` does everything but run the program: the cgroup, the namespaces, the mounts, the
restrictions. The container's init then blocks opening ``exec.fifo`` in the state directory,
and ``create`` returns: the init lives on, handed to the nearest subreaper (containerd's shim).
``start`` opens the FIFO, which lets the init go on into execve(2). Between the two, a caller
(dockerd, containerd) connects the network, reads the pid, attaches to the terminal.

The engine is chapter 02's ``start``, unchanged: it runs in a helper process (the *init's
parent*) forked by ``create``, which waits there until the init execs or dies and then exits,
so that the init is re-parented once more. The helper joins namespaces given by path first:
the engine's children inherit them.

::

    minidocker-runtime create --bundle B ID   # R ──fork──> helper ──start()──> init: waits on exec.fifo
    minidocker-runtime start ID               # opens exec.fifo: the init execs the program
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path

from minidocker.cgroups import v1 as cgroups_v1
from minidocker.cgroups import v2 as cgroups_v2
from minidocker.cgroups.cgroup import Cgroup
from minidocker.cgroups.files import read_text, write
from minidocker.core.atomic import atomic_write, rfc3339
from minidocker.core.jsonscan import loads
from minidocker.core.process import EngineError, exit_code, forwarding_signals
from minidocker.core.spec import ORDER_FINAL, ORDER_FIRST
from minidocker.oci import hooks
from minidocker.oci.state import ContainerDir, start_time

TYPE_CHECKING = False
if TYPE_CHECKING:  # start, kill, delete and state import none of chapters 02 and 06's engine: see create
    from minidocker.cgroups.resources import Limits
    from minidocker.oci import specconv

__all__ = ["MAX_CONFIG", "cgroup_of", "create", "delete", "freeze", "kill", "load_config", "run", "start"]

MAX_CONFIG = 4 << 20  # bytes: a bigger config.json is refused, not read
READY_TIMEOUT = 60.0  # seconds the init may take to set up
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "net", "pid")


def load_config(bundle: Path) -> dict:
    """The bundle's config.json, bounded and parsed; runc's words when it is not there."""
    path = bundle / "config.json"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG + 1)
    except FileNotFoundError:
        raise EngineError(f"JSON specification file config.json not found in bundle {bundle}") from None
    except OSError as e:
        raise EngineError(f"{path}: {e.strerror}") from None
    if len(data) > MAX_CONFIG:
        raise EngineError(f"{path} is larger than {MAX_CONFIG >> 20} MiB")
    try:
        config = loads(data)
    except ValueError as e:
        raise EngineError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise EngineError(f"{path}: not a JSON object")
    return config


def cgroup_of(state: dict) -> Cgroup | None:
    """The container's cgroup, from what ``create`` saved; None once it is gone."""
    saved = state.get("cgroup") or {}
    try:
        return Cgroup.open(saved["name"], parent=saved.get("parent"))
    except (EngineError, KeyError):
        return None


# --8<-- [start:create]
def create(box: ContainerDir, bundle: Path, *, pid_file: str | None = None, console_socket: str | None = None,
           warn: object = print, preserve_fds: int = 0) -> dict:
    """``create``: set the container up to the point of exec, leave its init waiting, return its state."""
    from minidocker.oci import specconv  # the engine of chapters 02-06: imported by create alone

    bundle = bundle.resolve()
    config = load_config(bundle)
    converted = specconv.convert(config, bundle, box.id)
    converted.spec.add_hook("before_exec", lambda: close_exec_from(3 + preserve_fds), order=ORDER_FINAL + 1)
    for warning in converted.warnings:
        warn(warning)
    box.make()
    cgroup = None
    try:
        cgroup = _cgroup(converted, config)
        state = {"id": box.id, "bundle": str(bundle), "rootfs": converted.spec.rootfs, "created": rfc3339(),
                 "owner": "", "annotations": config.get("annotations") or {}, "config": config,
                 "cgroup": {"name": converted.cgroup_name, "parent": converted.cgroup_parent}}
        pid, helper = _start_init(box, converted, state, console_socket)
        state.update(pid=pid, pid_start=start_time(pid))
        box.save(state)
        if pid_file:
            atomic_write(Path(os.path.abspath(pid_file)), str(pid), mode=0o644)
        return {**state, "helper": helper}
    except BaseException:
        if cgroup is not None:
            with contextlib.suppress(EngineError):
                cgroup.remove()
        box.remove()
        raise
# --8<-- [end:create]


def close_exec_from(first: int) -> None:
    """Mark every descriptor from ``first`` on close-on-exec: the program gets stdio and ``--preserve-fds``.

    Whatever the caller left open (a socket, a log) must not reach the container (runc's
    ``CloseExecFrom``); descriptors the runtime still needs until the exec close with it.
    """
    for name in os.listdir("/proc/self/fd"):
        if int(name) >= first:
            with contextlib.suppress(OSError):
                os.set_inheritable(int(name), False)


def _cgroup(converted: specconv.Converted, config: dict) -> Cgroup:
    """Chapter 03's cgroup where cgroupsPath says, its limits and device list; the init joins it."""
    from minidocker.cgroups.stage import mount_cgroupfs
    from minidocker.security import devices

    cgroup = Cgroup.create(converted.cgroup_name, converted.limits, parent=converted.cgroup_parent)
    spec = converted.spec
    try:
        if converted.device_rules is not None:
            devices.restrict(cgroup, converted.device_rules)
    except (EngineError, OSError) as e:
        cgroup.remove()
        raise EngineError(f"cannot apply the devices cgroup: {getattr(e, 'strerror', None) or e}") from None
    spec.add_hook("on_created", cgroup.add, order=ORDER_FIRST)
    if any(m.get("type") == "cgroup" for m in config.get("mounts") or []):
        mount = mount_cgroupfs if "cgroup" in spec.namespaces else bind_cgroups
        spec.add_hook("before_pivot", lambda root: mount(root, cgroup))
    return cgroup


# --8<-- [start:bind_cgroups]
def bind_cgroups(root: str, cgroup: Cgroup) -> None:
    """Without a cgroup namespace: the container's own cgroup directories, read-only, at /sys/fs/cgroup.

    A fresh cgroup mount would show the host's whole tree; runc binds the container's part of each
    hierarchy instead, and so do we (docker 20.10 on a v1 host shares the host's cgroup namespace).
    """
    from minidocker.core import syscalls as _syscalls  # ctypes: create's, never start's or delete's

    flags = _syscalls.MS_NOSUID | _syscalls.MS_NODEV | _syscalls.MS_NOEXEC
    target = os.path.join(root, "sys/fs/cgroup")
    bind_ro = _syscalls.MS_REMOUNT | _syscalls.MS_BIND | _syscalls.MS_RDONLY | flags
    if cgroup.version == 2:
        _syscalls.mount(str(cgroup.directories[0]), target, None, _syscalls.MS_BIND)
        _syscalls.mount(None, target, None, bind_ro)
        return
    _syscalls.mount("tmpfs", target, "tmpfs", flags, "mode=755")
    for hierarchy, directory in zip(cgroup.hierarchies, cgroup.directories, strict=True):
        name = hierarchy.mountpoint.name
        os.mkdir(os.path.join(target, name))
        _syscalls.mount(str(directory), os.path.join(target, name), None, _syscalls.MS_BIND)
        _syscalls.mount(None, os.path.join(target, name), None, bind_ro)
        for controller in hierarchy.controllers - {name}:
            os.symlink(name, os.path.join(target, controller))
    _syscalls.mount(None, target, None, _syscalls.MS_REMOUNT | _syscalls.MS_RDONLY | flags)
# --8<-- [end:bind_cgroups]


# --8<-- [start:start_init]
def _start_init(box: ContainerDir, converted: specconv.Converted, state: dict, console_socket: str | None
                ) -> tuple[int, int]:
    """Fork the init's parent, which runs chapter 02's engine; once the init waits: its pid, the parent's."""
    from minidocker.core import syscalls as _syscalls  # imported by create's specconv already

    spec = converted.spec
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # init's parent and init -> us: "pid N", "ready", "error ..."
    fifo = os.open(box.fifo, os.O_PATH | os.O_CLOEXEC)  # reopened by the init after pivot_root
    conn = _terminal(converted, console_socket) if converted.terminal else None
    hooks.preload(converted.hooks)  # startContainer's run in the init, after pivot_root

    def on_created(pid: int) -> None:  # in the init's parent, before the init goes
        if converted.oom_score_adj is not None:
            Path(f"/proc/{pid}/oom_score_adj").write_text(str(converted.oom_score_adj))
        os.write(ready_w, f"pid {pid}\n".encode())
        now = hooks.state_json(box.id, "creating", pid, state["bundle"], state["annotations"])
        for name in ("prestart", "createRuntime", "createContainer"):
            hooks.run_hooks(converted.hooks, name, now)

    def wait_for_start() -> None:  # in the init, the last thing before exec
        _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, 0)  # outlive create: `start` comes later
        os.write(ready_w, b"ready\n")
        os.close(ready_w)
        fd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start`
        os.write(fd, b"0")
        os.close(fd)
        now = hooks.state_json(box.id, "running", 1, state["bundle"], state["annotations"])
        hooks.run_hooks(converted.hooks, "startContainer", now)
    # --8<-- [end:start_init]

    # --8<-- [start:start_init_fork]
    spec.add_hook("on_created", on_created)
    if converted.terminal:
        from minidocker.oci import console  # imported here, before the init pivots away from it

        size = converted.console_size
        spec.add_hook("before_exec", lambda: console.take_terminal(conn, size), order=ORDER_FIRST)
    spec.add_hook("before_exec", wait_for_start, order=ORDER_FINAL - 1)
    helper = os.fork()
    if helper == 0:
        if converted.terminal:  # the caller reads our output to its end: keep none of it open
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
        _init_parent(converted, ready_w)
    os.close(ready_w)
    os.close(fifo)
    if conn is not None:
        os.close(conn)
    return _wait_ready(ready_r, helper), helper
    # --8<-- [end:start_init_fork]


def _terminal(converted: specconv.Converted, console_socket: str | None) -> int | None:
    """With process.terminal: the console socket, connected (None: share the caller's terminal)."""
    if console_socket is None and not os.isatty(0):
        raise EngineError("cannot allocate tty if runc will detach without setting console socket")
    from minidocker.oci import console  # only with a terminal: sockets are dear to import

    return None if console_socket is None else console.connect(console_socket)


def _init_parent(converted: specconv.Converted, ready_w: int) -> None:
    """In the init's parent: join the namespaces given by path, run chapter 02's engine. Never returns."""
    from minidocker.core import syscalls as _syscalls
    from minidocker.namespaces import stage as namespaces

    try:
        for kind in JOIN_ORDER:
            if kind in converted.join:
                fd = os.open(converted.join[kind], os.O_RDONLY | os.O_CLOEXEC)
                _syscalls.setns(fd)
                os.close(fd)
        namespaces.start(converted.spec)  # returns once the init has exec'd (after `start`), or died
    except BaseException as e:
        with contextlib.suppress(BaseException):
            os.write(ready_w, f"error {str(e)[:3000]}\n".encode())
        os._exit(1)
    os._exit(0)


def _wait_ready(ready_r: int, helper: int) -> int:
    """Read the init's parent's messages until the init waits on the FIFO; its pid."""
    deadline, buffer, pid = time.monotonic() + READY_TIMEOUT, b"", 0
    try:
        while True:
            readable, _, _ = select.select([ready_r], [], [], 0.2)
            chunk = os.read(ready_r, 4096) if readable else b""
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith("pid "):
                    pid = int(line[4:])
                elif line.startswith("error "):
                    os.waitpid(helper, 0)
                    raise EngineError(line[6:])
                elif line == "ready" and pid:
                    return pid
            if (readable and not chunk) or (os.waitpid(helper, os.WNOHANG)[0] and not readable):
                raise EngineError("the container's init exited before it was ready")
            if time.monotonic() > deadline:
                raise EngineError(f"the container's init was not ready within {READY_TIMEOUT:g} s")
    finally:
        os.close(ready_r)


# --8<-- [start:start]
def start(box: ContainerDir, warn: object = print) -> None:
    """``start``: open the FIFO, which releases the init into exec; then the poststart hooks."""
    state = box.load()
    status = box.status(state)
    if status != "created":
        raise EngineError(f"cannot start a container that has {status}" if status == "stopped"
                          else f"cannot start an already {status} container")
    fd = os.open(box.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # the init's open(2) returns
    try:
        deadline = time.monotonic() + 10
        while not select.select([fd], [], [], 0.1)[0]:
            if box.status(state) == "stopped" or time.monotonic() > deadline:
                raise EngineError("cannot start a container that has stopped")
        if not os.read(fd, 1):
            raise EngineError("cannot start an already running container")
    finally:
        os.close(fd)
    box.fifo.unlink()
    try:
        hooks.run_hooks(state["config"].get("hooks") or {}, "poststart", _state(box, state, "running"))
    except EngineError as e:
        warn(f"{e}")
# --8<-- [end:start]


def _state(box: ContainerDir, state: dict, status: str) -> dict:
    return hooks.state_json(box.id, status, state.get("pid", 0), state["bundle"], state.get("annotations"))


def kill(box: ContainerDir, signum: int, everything: bool = False) -> None:
    """``kill``: send ``signum`` to the init (``--all``: to every process in the cgroup)."""
    state = box.load()
    if box.status(state) == "stopped":
        raise EngineError("container not running")
    cgroup = cgroup_of(state)
    targets = cgroup.pids() if everything and cgroup else {state["pid"]}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


# --8<-- [start:delete]
def delete(box: ContainerDir, force: bool = False, warn: object = print) -> None:
    """``delete``: kill what is left (a created one, or anything with ``--force``), remove cgroup and state.

    The container's mounts live in its own mount namespace and go with its last process; on the
    host there is the cgroup, the state directory and its FIFO. Then the poststop hooks.
    """
    if not box.state_file.exists():
        if force and box.exists():
            box.remove()
            return
        raise EngineError(f"container does not exist: {box.id}")
    state = box.load()
    status = box.status(state)
    if status in ("running", "paused") and not force:
        raise EngineError(f"cannot delete container {box.id} that is not stopped: {status}")
    cgroup = cgroup_of(state)
    if status == "paused" and cgroup is not None:
        freeze(cgroup, False)
    if status != "stopped":
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["pid"], signal.SIGKILL)
    if cgroup is not None:
        cgroup.remove()  # kills whatever is left in it first
    box.remove()
    try:
        hooks.run_hooks(state["config"].get("hooks") or {}, "poststop", _state(box, state, "stopped"))
    except EngineError as e:
        warn(f"{e}")
# --8<-- [end:delete]


# --8<-- [start:freeze]
def freeze(cgroup: Cgroup, frozen: bool, timeout: float = 5.0) -> None:
    """``pause`` / ``resume``: the v1 freezer (``freezer.state``) or v2's ``cgroup.freeze``."""
    if cgroup.version == 2:
        write(cgroup.directories[0] / "cgroup.freeze", "1" if frozen else "0")
        return
    state = cgroup.path("freezer") / "freezer.state"
    write(state, "FROZEN" if frozen else "THAWED")
    deadline = time.monotonic() + timeout
    while frozen and read_text(state).strip() != "FROZEN":
        if time.monotonic() > deadline:
            raise EngineError(f"cgroup {cgroup.name} did not freeze within {timeout:g} s")
        time.sleep(0.002)
# --8<-- [end:freeze]


def update(state: dict, limits: Limits) -> None:
    """``update``: write new limits into the running container's cgroup (chapter 03's writers)."""
    cgroup = cgroup_of(state)
    if cgroup is None:
        raise EngineError("container not running")
    if cgroup.version == 2:
        cgroups_v2.write_limits(cgroup.directories[0], limits)
    else:
        cgroups_v1.write_limits(cgroup.controllers(), limits)


# --8<-- [start:run]
def run(box: ContainerDir, bundle: Path, *, detach: bool, pid_file: str | None = None,
        console_socket: str | None = None, warn: object = print, preserve_fds: int = 0) -> int:
    """``run``: create and start; in the foreground, wait, pass signals on, delete, exit as the container.

    As a subreaper, the runtime is handed the init when its parent exits after the exec.
    """
    from minidocker.core import syscalls as _syscalls

    if not detach:
        _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)
    with forwarding_signals() as signals:
        state = create(box, bundle, pid_file=pid_file, console_socket=console_socket, warn=warn,
                       preserve_fds=preserve_fds)
        try:
            start(box, warn)
        except BaseException:
            delete(box, force=True, warn=warn)
            raise
        if detach:
            return 0
        os.waitpid(state["helper"], 0)  # the init's parent exits right after the exec: the init is ours
        status = signals.wait(state["pid"])
    delete(box, force=True, warn=warn)
    return exit_code(status)
# --8<-- [end:run]
