"""``python -m tests.bench``: run the benchmark, print the table, save it (see ``__init__.py``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import peers, report
from tests.bench.context import Context
from tests.bench.sandbox import Sandbox
from tests.bench.scenarios import SCENARIOS

RESULTS = Path(__file__).resolve().parent / "results.md"
# scenario -> the peers it may need installed
NEEDS = {"runtime": ["runc", "crun"], "run": ["docker", "podman", "registry"],
         "pull": ["docker", "podman", "skopeo", "registry"], "many": ["docker", "podman", "registry"],
         "large": ["docker", "podman", "registry"], "cli": ["docker", "podman", "registry"],
         "unpack": [], "soak": ["docker", "registry"], "oci": ["runc", "crun", "registry"],
         "build": ["docker", "podman", "registry"]}

# scenarios run only when named: the soak's 10,000 containers take about an hour
ONLY_BY_NAME = ("soak",)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"which to run, of {', '.join(SCENARIOS)} (default: all but "
                        f"{', '.join(ONLY_BY_NAME)})")
    parser.add_argument("--runs", type=int, help="measured runs of every scenario (default: per scenario)")
    parser.add_argument("--warmup", type=int, help="warm-up runs, not measured (default: per scenario)")
    parser.add_argument("--only", default="", metavar="KEY,...",
                        help="only these rows (e.g. minidocker,docker or unshare-chroot,runc)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install missing peers")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS,
                        help=f"where to save the table (default: {RESULTS})")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}")
    return args


def _unmount_under(base: Path) -> None:
    """Whatever is still mounted under our directory (in our own mount namespace), deepest first."""
    from minidocker.core import syscalls as _syscalls

    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(f"{base}/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(OSError):
            _syscalls.umount2(point, _syscalls.MNT_DETACH)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("python -m tests.bench: containers need root: run it as root", file=sys.stderr)
        return 2
    chosen = args.scenarios or [s for s in SCENARIOS if s not in ONLY_BY_NAME]
    only = [k for k in args.only.split(",") if k]
    say = lambda text: print(f"[bench] {text}", file=sys.stderr, flush=True)  # noqa: E731
    wanted = sorted({p for s in chosen for p in NEEDS[s] if not only or p in only or p == "registry"})
    missing = peers.install(wanted, allowed=not args.no_install, say=say)
    base = Path(tempfile.mkdtemp(prefix="mdbench-"))
    base.chmod(0o755)
    prefix = f"{os.environ.get('MINIDOCKER_CGROUP_PARENT') or 'minidocker'}-bench{os.getpid()}"
    # minidocker as users run it: private state, run dir and cgroup parent; .pyc files written and used.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update({"MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run"),
                       "MINIDOCKER_CGROUP_PARENT": f"{prefix}-minidocker"})
    sandbox = Sandbox(base, prefix)
    ctx = None
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    try:
        sandbox.enter()
        ctx = Context(base, sandbox, missing, say)
        tables = []
        for name in chosen:
            scenario, runs, warmup = SCENARIOS[name]
            runs = args.runs if args.runs is not None else runs
            warmup = args.warmup if args.warmup is not None else warmup
            say(f"scenario {name}: {runs} runs after {warmup} warm-up")
            tables += scenario(ctx, runs, warmup, only)
        command = " ".join(["python -m tests.bench", *(argv if argv is not None else sys.argv[1:])])
        text = report.render(tables, peers.machine(), peers.versions(), (f"{load_before:.1f}",
                             f"{os.getloadavg()[0]:.1f}"), time.monotonic() - started, command)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(text)
        say(f"saved to {args.output}")
        return 0
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if ctx is not None:
            ctx.close()
        sandbox.close()
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
