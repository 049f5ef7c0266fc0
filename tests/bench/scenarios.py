"""The scenarios: what is measured, against whom, and how many times by default.

Each scenario is a function ``(ctx, runs, warmup, only) -> [Table]``; ``only`` (row keys) limits
the rows, so a quick check can run one tiny scenario. Row keys: ``minidocker-namespaces``,
``minidocker-runtime``, ``unshare-chroot``, ``runc``, ``crun`` (scenario 1); ``minidocker``,
``docker``, ``podman``, ``skopeo`` (the others).

1. ``runtime``: start-to-exit of ``true`` on the busybox rootfs, runtimes only (no image, no daemon);
2. ``run``: ``run --rm busybox true`` end to end, with the default bridge network and with none;
3. ``pull``: a generated 6-layer, ~66 MB image from the local registry, into an empty store;
4. ``many``: 50 containers started concurrently, then removed (:mod:`tests.bench.many`);
5. ``large``: ``run --rm`` on a ~500 MB image beside busybox: start time must not grow with size;
6. ``cli``: ``ps`` and ``images``, the commands typed most;
9. ``build``: a fully cached rebuild, against Docker's classic builder.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from tests.bench import imagegen, many, soak, unpack
from tests.bench.context import Context
from tests.bench.oci_runtime import oci
from tests.bench.report import Table
from tests.bench.timing import BenchError, Contender, alternate, command, timed

__all__ = ["SCENARIOS"]

ENGINES = ("minidocker", "docker", "podman")
LABELS = {"minidocker": "minidocker (CLI -> minidockerd)", "docker": "Docker (CLI -> dockerd)",
          "podman": "podman"}


def _wanted(only: Sequence[str], key: str) -> bool:
    return not only or key in only


def _engine_row(ctx: Context, name: str, args: Sequence[str], label: str | None = None, *,
                run: bool = False, after: Callable[[], None] | None = None, group: str = "") -> Contender:
    """A row running ``ENGINE ARGS`` (``ENGINE run OPTIONS ARGS`` with ``run``) on a started engine."""
    engine = ctx.engine(name)
    if engine.unavailable:
        return Contender(name, label or LABELS[name], ours=name == "minidocker",
                         unavailable=engine.unavailable, group=group)
    argv = engine.run_argv(*args) if run else engine.argv(*args)
    shown = engine.shown(argv)
    if ctx.registry is not None:
        shown = shown.replace(ctx.registry.host, "REGISTRY")
    return Contender(name, label or LABELS[name], command(argv, engine.env, after=after),
                     ours=name == "minidocker", shown=shown, group=group)


def runtime(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """1. Runtimes: minidocker's stages beside the floor (unshare + chroot), runc and crun."""
    rootfs, python = ctx.rootfs, sys.executable
    rows: list[Contender] = []
    stages = (("minidocker-namespaces", "minidocker namespaces stage (ch. 02)", ["minidocker.namespaces"]),
              ("minidocker-runtime", "minidocker full runtime (ch. 06 stage)",
               ["minidocker.security.stage", "--network", "none"]))
    for key, label, module in stages:
        argv = [python, "-m", *module, rootfs, "--", "true"]
        rows.append(Contender(key, label, command(argv), ours=True,
                              shown=f"python -m {' '.join(module)} ROOTFS -- true"))
    floor = ["unshare", "--pid", "--mount", "--uts", "--ipc", "--net", "--fork", "chroot", rootfs, "true"]
    rows.append(Contender("unshare-chroot", "unshare + chroot (the floor)", command(floor),
                          shown="unshare --pid --mount --uts --ipc --net --fork chroot ROOTFS true"))
    notes = ["all on the same busybox rootfs; minidocker's full runtime is every stage up to chapter 06 "
             "(cgroups, overlay, network none, hardening); runc and crun get an OCI bundle with the same "
             "namespaces and a cgroup each"]
    ids = itertools.count()
    for runtime_name in ("runc", "crun"):
        if not _wanted(only, runtime_name):
            continue
        if runtime_name in ctx.missing:
            rows.append(Contender(runtime_name, f"{runtime_name} run", unavailable=ctx.missing[runtime_name]))
            continue
        bundle = ctx.bundle(runtime_name)
        prefix = ctx.sandbox.legacy_cgroups() if runtime_name == "crun" else []
        state = ctx.base / f"{runtime_name}-state"
        argv = lambda p=prefix, r=runtime_name, s=state, b=bundle: [  # noqa: E731
            *p, r, "--root", str(s), "run", "--bundle", str(b), f"bench{next(ids)}"]
        rows.append(Contender(runtime_name, f"{runtime_name} run", command(argv),
                              shown=f"{runtime_name} run --bundle BUNDLE ID"))
        if runtime_name == "crun":
            wrapper = (statistics.median(timed([*prefix, "true"]) for _ in range(9))
                       - statistics.median(timed(["true"]) for _ in range(9))) * 1000
            notes.append("crun 1.8 refuses this host's hybrid cgroups; rather than move hugetlb to v1 for "
                         "the whole host, crun runs in a mount namespace where a private tmpfs hides "
                         f"/sys/fs/cgroup/unified (plain cgroup v1, like runc here), entered with nsenter: "
                         f"that adds about {wrapper:.1f} ms, included in its row")
    rows = [r for r in rows if _wanted(only, r.key)]
    series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
    return [Table("1", "Runtime: start to exit of `true`", "ms", series, runs, warmup, notes)]


def run(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """2. ``run --rm busybox true`` through each engine, default bridge network, then no network."""
    tables = []
    for key, title, extra in (
            ("2a", "End to end: `run --rm busybox true`, default bridge network", []),
            ("2b", "End to end: `run --rm --network none busybox true`", ["--network", "none"])):
        rows = [_engine_row(ctx, name, ["--rm", *extra, "busybox", "true"], run=True)
                for name in ENGINES if _wanted(only, name)]
        series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
        tables.append(Table(key, title, "ms", series, runs, warmup))
    tables[0].notes.append("every engine in the benchmark's own network namespace, with its own bridge and "
                           "NAT rules (minidocker's and Docker's from scratch; podman's CNI bridge)")
    return tables


def pull(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """3. Pull the generated multi-layer image into an empty store (removed again after each pull)."""
    ctx.say("generating and pushing the multi-layer image")
    info = imagegen.push_generated(ctx.registry_host(), "bench/multilayer", imagegen.MULTILAYER)
    rows = []
    for name in ENGINES:
        if _wanted(only, name):
            engine = ctx.engine(name)
            if not engine.unavailable:  # an empty store to begin with; emptied again after each pull
                with contextlib.suppress(BenchError):
                    engine.call("rmi", info.reference)
            remove = (lambda e=engine: e.call("rmi", info.reference)) if not engine.unavailable else None
            rows.append(_engine_row(ctx, name, ["pull", info.reference], after=remove))
    if _wanted(only, "skopeo"):
        if "skopeo" in ctx.missing:
            rows.append(Contender("skopeo", "skopeo copy (download only)", unavailable=ctx.missing["skopeo"]))
        else:
            dest = ctx.base / "skopeo-copy"
            argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{info.reference}",
                    f"oci:{dest}:latest"]
            rows.append(Contender("skopeo", "skopeo copy (download only)",
                                  command(argv, after=lambda: shutil.rmtree(dest, ignore_errors=True)),
                                  shown="skopeo copy docker://REGISTRY/bench/multilayer oci:DIR"))
    notes = [f"the image: {info.layers} gzip layers, {info.compressed / 1e6:.0f} MB compressed, "
             f"{info.uncompressed / 1e6:.0f} MB unpacked, {info.files} files; from Debian's registry on "
             "127.0.0.1 (same network namespace); removed (`rmi`) after each pull, outside the timing",
             "skopeo only downloads and checks the blobs into an OCI layout: no unpacking, the floor"]
    return [Table("3", "Pull a multi-layer image from a local registry", "s",
                  alternate(rows, runs, warmup, ctx.say, ctx.reap), runs, warmup, notes, scale=1.0)]


def large(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """5. ``run --rm --network none IMAGE true`` on busybox and on a ~500 MB image, per engine."""
    ctx.say("generating and pushing the large image")
    info = imagegen.push_generated(ctx.registry_host(), "bench/large", imagegen.LARGE)
    rows, pulls = [], []
    for name in ENGINES:
        if not _wanted(only, name):
            continue
        engine = ctx.engine(name)
        if not engine.unavailable:
            try:
                start = time.perf_counter()
                engine.call("pull", info.reference, timeout=1200)
                pulls.append(f"{name} {time.perf_counter() - start:.1f} s")
            except BenchError as e:
                rows.append(Contender(name, LABELS[name], ours=name == "minidocker", unavailable=str(e)))
                continue
        for image, label in (("busybox", "busybox"), (info.reference, "large")):
            rows.append(_engine_row(ctx, name, ["--rm", "--network", "none", image, "true"],
                                    f"{LABELS[name]}, {label}", run=True, group=label))
    series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
    notes = [f"the large image: busybox + {info.layers - 1} layers, {info.compressed / 1e6:.0f} MB "
             f"compressed, {info.uncompressed / 1e6:.0f} MB, {info.files} files; pulled once before "
             f"(not timed: {', '.join(pulls) or 'none'})"]
    flat = []
    for name in ENGINES:
        pair = [s for s in series if s.contender.key == name and s.ok]
        if len(pair) == 2:
            flat.append(f"{name} {pair[1].median / pair[0].median:.2f}")
    if flat:
        notes.append("flatness, large ÷ busybox (1.00 = size does not matter): " + ", ".join(flat))
    title = "Start time on a large image (~500 MB) beside busybox"
    return [Table("5", title, "ms", series, runs, warmup, notes)]


def cli(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """6. ``ps`` and ``images``: a client's start-up plus one API round trip."""
    tables = []
    for key, verb in (("6a", "ps"), ("6b", "images")):
        rows = [_engine_row(ctx, name, [verb]) for name in ENGINES if _wanted(only, name)]
        series = alternate(rows, runs, warmup, ctx.say, ctx.reap)
        tables.append(Table(key, f"CLI latency: `{verb}`", "ms", series, runs, warmup))
    tables[0].notes.append("podman has no daemon: its `ps` and `images` read the store themselves")
    return tables


def build(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """9. A fully cached rebuild of chapter 08's benchmark context, beside Docker's classic builder.

    The warm-up builds fill each engine's cache (at least one is always made); every measured run
    finds every step there, so what is timed is the client packing and sending the context and
    the builder matching each step to its cache.
    """
    from tests.bench.chapter08_build import make_context

    context = ctx.base / "build-context"
    if not context.exists():
        make_context(context)
    rows = []
    for name in ENGINES:
        if not _wanted(only, name):
            continue
        row = _engine_row(ctx, name, ["build", "-q", "-t", "bench-build:latest", str(context)])
        if row.measure is not None and name == "docker":  # Docker's classic builder, as chapter 08 compares
            engine = ctx.engine(name)
            argv = engine.argv("build", "-q", "-t", "bench-build:latest", str(context))
            row.measure = command(argv, {**engine.env, "DOCKER_BUILDKIT": "0"})
        rows.append(row)
    series = alternate(rows, runs, max(warmup, 1), ctx.say, ctx.reap)
    notes = ["tests/bench/chapter08_build.py's Dockerfile and context (FROM busybox, ENV, WORKDIR, two "
             "COPYs, three RUNs, EXPOSE, USER, CMD); Docker with DOCKER_BUILDKIT=0"]
    return [Table("9", "Fully cached `build` (every step from the cache)", "ms", series, runs, max(warmup, 1),
                  notes)]


# name -> (scenario, default measured runs, default warm-up runs)
SCENARIOS: dict[str, tuple[Callable[..., list[Table]], int, int]] = {
    "runtime": (runtime, 20, 2),
    "run": (run, 10, 2),
    "pull": (pull, 5, 1),
    "many": (many.many, 3, 1),
    "large": (large, 10, 1),
    "cli": (cli, 20, 2),
    "unpack": (unpack.unpack, 5, 1),
    "soak": (soak.soak, 10000, 2),
    "oci": (oci, 15, 2),
    "build": (build, 15, 2),
}
