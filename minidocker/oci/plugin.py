"""Chapter 14's plug-in: minidockerd on any OCI runtime (runc, crun, our own ``minidocker-runtime``).

``minidockerd --add-runtime crun=/usr/bin/crun`` (repeatable, as dockerd; or ``"runtimes"`` in the
config file) makes ``docker run --runtime crun`` hand the container to crun; ``--default-runtime
crun`` makes it everyone's. The daemon (chapter 10) knows none of this: it has a table of runtimes
(:mod:`minidocker.daemon.runtimes`) that we add to, and its monitors start a container of ours
with the launcher we register for the kind ``oci``.

The launcher runs in the container's monitor, after the stages have made the container's overlay,
cgroup and network files. It writes the bundle (:mod:`minidocker.oci.bundle`) under the exec root,
then, as containerd's shim does:

1. ``RUNTIME --root EXEC_ROOT/runtime/NAME create --bundle B --pid-file B/pid ID``, with the
   container's stdio as its own (the runtime passes them on to the process): the namespaces and
   PID 1 exist, the command has not run yet; the monitor, a subreaper, becomes PID 1's parent;
2. the stages' ``on_created`` hooks with PID 1's pid: the veth goes into its network namespace;
3. ``RUNTIME start ID``: the command runs. The monitor waits for PID 1 as for any container of ours,
   then ``RUNTIME delete --force ID`` and the stages' clean-up.

``docker exec`` is ``RUNTIME exec --process FILE ID``; ``docker stop`` and ``kill`` are ``RUNTIME
kill ID SIGNAL``. Example::

    minidockerd --add-runtime crun=/usr/bin/crun &
    docker run --rm --runtime crun busybox echo hello
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import syscalls as _syscalls
from minidocker.core.paths import private_dir, run_dir
from minidocker.core.process import EngineError, exit_code
from minidocker.daemon import runtimes
from minidocker.oci import bundle

__all__ = ["OciContainer", "OciRuntime", "add_daemon_arguments", "install", "launch",
           "read_daemon_arguments"]

KIND = "oci"


def runtime_root(name: str) -> Path:
    """The runtime's ``--root`` (its state of our containers): ``EXEC_ROOT/runtime/NAME``, root's alone."""
    return private_dir(private_dir(run_dir() / "runtime") / name)


def bundle_dir(container_id: str) -> Path:
    """Where a container's bundle is written: ``EXEC_ROOT/bundles/ID``."""
    return private_dir(run_dir() / "bundles") / container_id


def _command(options: dict, *argv: str) -> list[str]:
    return [options["path"], *options.get("args", []), "--root", str(runtime_root(options["name"])), *argv]


def _runtime_error(log: Path, fallback: str) -> str:
    """The last error the runtime logged (runc and crun write JSON lines with ``--log-format json``)."""
    message = ""
    with contextlib.suppress(OSError), open(log, errors="replace") as f:
        for line in f.read(1 << 20).splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                    message = str(entry["msg"])
    return (message or fallback).strip()


def _exit_code_of(message: str) -> int:
    """Docker's exit code for a failed create: 127 command not found, 126 not executable, else 125."""
    text = message.lower()
    if "not found" in text or "no such file" in text:
        return 127
    if "permission denied" in text:
        return 126
    return 125


# --8<-- [start:launch]
def launch(options: dict, spec: Any, config: dict) -> OciContainer:
    """Start the container ``spec`` (stages configured) with the OCI runtime ``options["path"]``."""
    directory = bundle_dir(spec.id)
    cgroup = Cgroup.open(spec.id)  # chapter 03's stage made it; the runtime makes it again, its way
    oci = bundle.oci_config(config, spec, cgroups_path="/" + cgroup.name)
    bundle.write_bundle(directory, oci)
    cgroup.remove()  # (runc would join one that exists; ours refuses it, as a container running)
    log = directory / "runtime.log"
    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)  # PID 1 is ours once `create` exits
    done = subprocess.run(  # our fds 0, 1, 2 are the container's stdio: the runtime passes them on
        _command(options, "--log", str(log), "--log-format", "json", "create", "--bundle", str(directory),
                 "--pid-file", str(directory / "pid"), spec.id), check=False)
    container = OciContainer(options, spec, oci, directory)
    if done.returncode != 0:
        message = _runtime_error(log, f"{options['name']} create exited with {done.returncode}")
        container.delete()
        raise EngineError(f"OCI runtime create failed: {message}", _exit_code_of(message))
    try:
        container.pid = int((directory / "pid").read_text().strip())
        for hook in spec.hooks("on_created"):  # the stages' host side: the veth into its namespace
            hook(container.pid)
        started = subprocess.run(_command(options, "start", spec.id), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if started.returncode != 0:
            raise EngineError(f"OCI runtime start failed: {started.stderr.decode(errors='replace').strip()}")
    except BaseException:
        container.delete()
        raise
    return container
# --8<-- [end:launch]


class OciContainer:
    """A container an OCI runtime started for the monitor: its PID 1, its wait, its exec, its delete."""

    def __init__(self, options: dict, spec: Any, oci: dict, directory: Path) -> None:
        self.options, self.spec, self.oci, self.directory = options, spec, oci, directory
        self.pid = 0
        self.status: int | None = None
        self.execs = 0

    def wait(self) -> int:
        """Wait for PID 1 (the monitor is its subreaper), run the stages' ``on_exit``, delete it."""
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
            for hook in self.spec.hooks("on_exit"):
                with contextlib.suppress(Exception):
                    hook(self.status)
            self.delete()
        return exit_code(self.status)

    def delete(self) -> None:
        """``RUNTIME delete --force ID`` and the bundle: nothing of it left in the exec root."""
        subprocess.run(_command(self.options, "delete", "--force", self.spec.id), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.oci.get("linux", {}).get("cgroupsPath"):
            remove_cgroup_dirs(self.oci["linux"]["cgroupsPath"])


def remove_cgroup_dirs(cgroups_path: str) -> None:
    """Remove the (empty) directories of ``cgroups_path`` in every cgroup tree, the parents too.

    A runtime makes the path in *every* hierarchy it finds (on a hybrid host also ``name=systemd``
    and the unified one), and its ``delete`` removes the container's directory, not the parents it
    made: ours knows its own hierarchies only. A parent another container still uses is not empty:
    rmdir(2) refuses, and that is the end of it.
    """
    parts = [p for p in cgroups_path.split("/") if p]
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f if " - cgroup" in line}
    for point in points:
        for depth in range(len(parts), 0, -1):
            try:
                os.rmdir(os.path.join(point, *parts[:depth]))
            except FileNotFoundError:
                continue
            except OSError:
                break

    # --8<-- [start:spawn_exec]
    def spawn_exec(self, argv: list[str], env: dict, cwd: str, user: str | None, tty: bool) -> int:
        """``docker exec``: ``RUNTIME exec --process FILE ID``, with our fds 0, 1, 2 as its stdio."""
        process = dict(self.oci["process"], args=argv, cwd=cwd or "/",
                       env=[f"{k}={v}" for k, v in env.items()])
        if user:
            process["user"] = bundle._user(self.spec.rootfs, user)
            if process["user"]["uid"] != 0:  # as for PID 1: another user keeps only the bounding set
                process["capabilities"] = dict(process["capabilities"], effective=[], permitted=[])
        self.execs += 1
        path = self.directory / f"exec-{self.execs}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(process, f)
        command = _command(self.options, "exec", "--process", str(path), self.spec.id)
        return os.posix_spawn(command[0], command, dict(os.environ))
    # --8<-- [end:spawn_exec]


class OciRuntime(runtimes.Runtime):
    """The daemon's side of an OCI runtime: a signal is ``RUNTIME kill ID SIGNAL``."""

    def signal(self, container_id: str, pid: int, signum: int) -> None:
        done = subprocess.run(_command(self.start_options(), "kill", container_id, str(signum)),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
        if done.returncode != 0:  # gone already, or never created: the supervisor tries the pid itself
            raise ProcessLookupError(done.stderr.decode(errors="replace").strip())


runtimes.register_launcher(KIND, launch)  # the monitors import us (daemon/plugins.py): they can launch


def add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """``--add-runtime NAME=PATH`` (repeatable) and ``--default-runtime NAME``, as dockerd's."""
    parser.add_argument("--add-runtime", action="append", default=[], metavar="NAME=PATH",
                        help="an OCI runtime containers may run on (docker run --runtime NAME)")
    parser.add_argument("--default-runtime", metavar="NAME",
                        help=f"the runtime of containers that name none (default: {runtimes.ENGINE})")


def read_daemon_arguments(args: argparse.Namespace, config: dict) -> None:
    """Into the daemon's config: ``runtimes`` as in dockerd's ``daemon.json``, and ``default-runtime``."""
    found = dict(config.get("runtimes") or {})
    for item in args.add_runtime:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"minidockerd: --add-runtime {item!r}: expected NAME=PATH")
        found[name] = {"path": path}
    for name, entry in found.items():
        if name == runtimes.ENGINE:
            raise SystemExit(f"minidockerd: runtime name '{name}' is reserved")
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise SystemExit(f"minidockerd: runtime {name!r}: expected {{\"path\": \"...\"}}")
        path = shutil.which(entry["path"])
        if path is None:
            raise SystemExit(f"minidockerd: runtime {name!r}: {entry['path']} is not an executable")
        entry["path"] = os.path.abspath(path)
    config["runtimes"] = found
    if args.default_runtime:
        config["default-runtime"] = args.default_runtime


def install(app: Any, hooks: Any) -> None:
    """Add the configured runtimes to the daemon's table; tidy up after a container that is removed."""
    for name, entry in (app["config"].get("runtimes") or {}).items():
        app["runtimes"].add(OciRuntime(name, entry["path"], list(entry.get("runtimeArgs") or []), kind=KIND))

    async def removed(app: Any, c: Any) -> None:  # a monitor killed outright left its runtime state
        runtime = app["runtimes"].by_name.get(c.config["HostConfig"].get("Runtime") or "")
        if isinstance(runtime, OciRuntime) and ((runtime_root(runtime.name) / c.id).exists() or
                                                bundle_dir(c.id).exists()):
            left = OciContainer(runtime.start_options(), _Id(c.id), {}, bundle_dir(c.id))
            await asyncio.get_running_loop().run_in_executor(None, left.delete)

    hooks.container_removed.append(removed)


class _Id:
    def __init__(self, container_id: str) -> None:
        self.id = container_id
