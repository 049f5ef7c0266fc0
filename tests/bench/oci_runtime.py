"""Chapter 14's measurements: ``minidocker-runtime`` beside runc and crun, alone and under minidockerd.

A scenario of ``python -m tests.bench`` (``oci``), so it runs in the harness's sandbox (private network
and mount namespaces, cgroups under the run's prefix), with its registry and its report::

    .venv/bin/python -m tests.bench oci --runs 15 -o /tmp/oci.md

Three tables, every contender in alternating order after warm-up runs, medians and ratios from the run:

* 14a, the runtime alone, as containerd's shim drives it: ``create``, ``start``, wait for the init
  to exit (its pidfd), ``delete``, on one OCI bundle running ``true`` on the busybox rootfs
  (``peers.oci_bundle``: read-only root, pid/net/ipc/uts/mount/cgroup namespaces, a cgroup); the
  median of each step is given below the table. crun runs where the harness hides the unified
  cgroup tree it refuses (:meth:`Sandbox.legacy_cgroups`), as in scenario 1;
* 14b, ``minidocker run --rm --network none --runtime NAME busybox true`` through one minidockerd
  started with ``--add-runtime`` for runc and ours, beside the daemon's built-in engine
  (``--runtime minidocker``, chapter 10's monitor);
* 14c, where our runtime's time goes: the interpreter alone, and the imports of ``start``/``delete``
  and of ``create``, each a whole ``python -c`` command.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import peers
from tests.bench.context import Context
from tests.bench.report import Table
from tests.bench.timing import BenchError, Contender, alternate, command

__all__ = ["oci"]

OURS = Path(sys.executable).with_name("minidocker-runtime")
STEPS = ("create", "start", "wait", "delete")


def _quiet(argv: Sequence[str]) -> None:
    """Run one runtime command; its output in a file, never a pipe (a created init keeps its stdio)."""
    with tempfile.TemporaryFile() as out:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
        if done.returncode != 0:
            out.seek(0)
            tail = " ".join(out.read().decode(errors="replace").split())[-300:]
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {tail}")


def _wait_exit(pid: int) -> None:
    """Until ``pid`` has exited (pidfd: no polling loop); reaped if it came to us as the subreaper."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], 30)[0]:
            raise BenchError(f"the container's init {pid} did not exit within 30 s")
    finally:
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def lifecycle(prefix: list[str], runtime: str, state: Path, bundle: Path,
              steps: dict[str, list[float]]) -> Callable[[], float]:
    """A ``measure``: create, start, wait, delete of one new container; each step's time kept in ``steps``."""
    ids = itertools.count()
    base = [*prefix, runtime, "--root", str(state)]

    def measure() -> float:
        cid, pid_file = f"bench{next(ids)}", state.parent / f"{state.name}.pid"
        began = time.perf_counter()
        _quiet([*base, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid])
        created = time.perf_counter()
        try:
            _quiet([*base, "start", cid])
            started = time.perf_counter()
            _wait_exit(int(pid_file.read_text()))
            exited = time.perf_counter()
        except BaseException:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=60)
            raise
        _quiet([*base, "delete", cid])
        done = time.perf_counter()
        times = (created - began, started - created, exited - started, done - exited)
        for step, seconds in zip(STEPS, times, strict=True):
            steps.setdefault(step, []).append(seconds)
        return done - began

    return measure


def _alone(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> Table:
    rows, steps = [], {}
    for key, program in (("minidocker-runtime", str(OURS)), ("runc", "runc"), ("crun", "crun")):
        label = f"{key} create + start + delete"
        if only and key not in only:
            continue
        if key in ctx.missing or (key == "minidocker-runtime" and not OURS.exists()):
            rows.append(Contender(key, label, ours=key == "minidocker-runtime",
                                  unavailable=ctx.missing.get(key, "not installed: pip install -e .")))
            continue
        bundle = peers.oci_bundle(ctx.base / f"oci-bundle-{key}", ctx.rootfs,
                                  f"/{ctx.prefix}-oci-{key}/bench")
        prefix = ctx.sandbox.legacy_cgroups() if key == "crun" else []
        steps[key] = {}
        rows.append(Contender(key, label, lifecycle(prefix, program, ctx.base / f"oci-state-{key}", bundle,
                                                    steps[key]), ours=key == "minidocker-runtime",
                              shown=f"{key} create --bundle BUNDLE ID; {key} start ID; {key} delete ID"))
    series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
    notes = []
    for key, kept in steps.items():
        if kept:  # warm-up runs included: the steps' medians, not the table's
            notes.append(f"{key}, median per step: " + ", ".join(
                f"{step} {statistics.median(kept[step]) * 1000:.0f} ms" for step in STEPS if kept.get(step)))
    notes.append("wait: from the end of `start` to the init's exit, seen on its pidfd (`true` itself is "
                 "a few ms); crun runs under the harness's `nsenter` into a mount namespace without the "
                 "unified cgroup tree it refuses (about 2 ms, included)")
    return Table("14a", "An OCI runtime alone: create, start, wait, delete of `true`", "ms", series, runs,
                 warmup, notes)


def _daemon(ctx: Context) -> tuple[object, dict[str, str]]:
    """A minidockerd of its own (state, run dir, cgroup parent, bridge, table), with the runtimes added."""
    from tests.helpers_10_daemon import Daemon

    directory = ctx.base / "oci-minidockerd"
    directory.mkdir(parents=True, exist_ok=True)
    env = {"MINIDOCKER_STATE": str(directory / "state"), "MINIDOCKER_RUN": str(directory / "run"),
           "MINIDOCKER_CGROUP_PARENT": f"{ctx.prefix}-oci-daemon", "MINIDOCKER_BRIDGE": "mdbenchoci0",
           "MINIDOCKER_NFT_TABLE": "minidocker_bench_oci", "MINIDOCKER_SUBNET": "10.219.0.0/24"}
    extra = [f"--add-runtime=minidocker-runtime={OURS}"]
    if shutil.which("runc"):
        extra.append(f"--add-runtime=runc={shutil.which('runc')}")
    daemon = Daemon(directory, f"http://{ctx.registry_host()}", tuple(extra), env).start()
    script = Path(sys.executable).with_name("minidocker")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "minidocker"]
    return daemon, {"cli": cli}


def _through_daemon(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> Table:
    from tests.helpers_10_daemon import kill_monitors

    ctx.say("starting a minidockerd with --add-runtime")
    daemon, extra = _daemon(ctx)
    try:
        cli = [*extra["cli"], "-H", daemon.host]
        done = subprocess.run([*cli, "pull", "busybox"], env=daemon.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"pull busybox: {done.stderr.strip()[-300:]}")
        rows = []
        for key, name, label in (("minidocker", "minidocker", "minidocker (built-in engine)"),
                                 ("minidocker-runtime", "minidocker-runtime", "minidocker-runtime"),
                                 ("runc", "runc", "runc"), ("crun", "crun", "crun")):
            if only and key not in only:
                continue
            ours = key.startswith("minidocker")
            if key == "crun":
                rows.append(Contender(key, label, unavailable="not measured: crun 1.8 refuses this host's "
                                      "hybrid cgroups, and the daemon's containers live in its own mount "
                                      "namespace, not in the one where the harness hides the unified tree"))
                continue
            if key in ctx.missing:
                rows.append(Contender(key, label, ours=ours, unavailable=ctx.missing[key]))
                continue
            argv = [*cli, "run", "--rm", "--network", "none", "--runtime", name, "busybox", "true"]
            rows.append(Contender(key, label, command(argv, daemon.env), ours=ours,
                                  shown=f"minidocker run --rm --network none --runtime {name} busybox true"))
        series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
    finally:
        daemon.remove_all()
        with contextlib.suppress(Exception):
            daemon.stop()
        kill_monitors(Path(daemon.env["MINIDOCKER_STATE"]), grace=5)
    notes = ["one minidockerd for all rows: the daemon makes the container (image, overlay, cgroup, "
             "network files) and either runs it itself or writes a bundle and calls the runtime's "
             "create and start, then delete once it exits"]
    return Table("14b", "Through minidockerd: `run --rm --network none busybox true` on each runtime", "ms",
                 series, runs, warmup, notes)


def _profile(ctx: Context, runs: int, warmup: int) -> Table:
    python = sys.executable
    rows = [Contender("python", "the interpreter: `python -c pass`", command([python, "-c", "pass"])),
            Contender("import-start", "+ what start, kill, state, delete import",
                      command([python, "-c", "import minidocker.oci.cli"])),
            Contender("import-create", "+ what create imports (specconv: chapters 02-06)",
                      command([python, "-c", "import minidocker.oci.cli, minidocker.oci.specconv"]))]
    if shutil.which("runc"):
        rows.append(Contender("runc-version", "`runc --version` (a Go program's start)",
                              command(["runc", "--version"])))
    series = alternate(rows, runs, warmup, ctx.say)
    return Table("14c", "Where minidocker-runtime's time goes: Python's start and imports", "ms", series,
                 runs, warmup, ["each a whole command; the difference between two rows is what that "
                                "step adds; what is left of a runtime command beyond its imports is "
                                "its own work"])


def oci(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """14. Our OCI runtime beside runc and crun: alone, through minidockerd, and its start-up cost."""
    return [_alone(ctx, runs, warmup, only), _through_daemon(ctx, runs, warmup, only),
            _profile(ctx, runs, warmup)]
