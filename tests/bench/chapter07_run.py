"""Chapter 07's measurements: ``run --rm busybox true`` through minidockerd beside Debian's dockerd.

Not a test (it takes minutes and needs Debian's docker.io): run it by hand, as root::

    .venv/bin/python -m tests.bench.chapter07_run [--runs 20]

Both daemons run on private paths and are stopped at the end. dockerd runs in a network and mount
namespace of its own (its docker0 bridge, iptables rules and mounts never reach the host), with
its default bridge network, like minidocker's containers (chapter 05's bridge). Both run the same
busybox files: seeded into a local registry for minidockerd, ``docker import``ed for dockerd.
Prints medians (whole command, wall clock), their ratio, and memory: the daemons' idle RSS/PSS and
the per-container cost of a minidocker monitor beside a containerd shim.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minidocker import push, rootfs  # noqa: E402
from minidocker._localregistry import LocalRegistry  # noqa: E402


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB."""
    values = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return values.get("Rss", 0), values.get("Pss", 0)


def pids_named(word: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if word.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    base = Path(tempfile.mkdtemp(prefix="bench07-"))
    env = {**os.environ, "MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run"),
           "MINIDOCKER_CGROUP_PARENT": "minidocker-bench07"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    registry = LocalRegistry(base / "registry").start()
    ours = theirs = None
    try:
        push.seed_busybox(registry.host)
        env["MINIDOCKER_REGISTRY_MIRRORS"] = registry.url
        minidocker = [str(ROOT / ".venv/bin/minidocker"), "-H", f"unix://{base}/mini.sock"]
        ours = subprocess.Popen([sys.executable, "-m", "minidocker.daemon", "-H", f"unix://{base}/mini.sock"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while subprocess.run([*minidocker, "version"], env=env, capture_output=True).returncode:
            time.sleep(0.1)
        subprocess.run([*minidocker, "pull", "busybox"], env=env, check=True, capture_output=True)

        script = (f"ip link set lo up && mount -t tmpfs bench07-etc /etc/docker && exec dockerd "
                  f"--data-root {base}/docker --exec-root {base}/dexec --pidfile {base}/dockerd.pid "
                  f"-H unix://{base}/docker.sock")
        with open(base / "dockerd.log", "w") as log:
            theirs = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                                       script], stdout=log, stderr=subprocess.STDOUT)
        docker = ["docker", "-H", f"unix://{base}/docker.sock"]
        denv = {**env, "DOCKER_CONFIG": str(base / "docker-config")}
        while subprocess.run([*docker, "version"], env=denv, capture_output=True).returncode:
            if theirs.poll() is not None:
                raise RuntimeError((base / "dockerd.log").read_text()[-1000:])
            time.sleep(0.2)
        subprocess.run([*docker, "import", str(rootfs.busybox_tar()), "busybox"], env=denv, check=True,
                       capture_output=True)
        docker_on_ours = ["docker", "-H", f"unix://{base}/mini.sock"]

        commands = {"minidocker CLI -> minidockerd": (minidocker, env),
                    "docker CLI -> minidockerd": (docker_on_ours, denv),
                    "docker CLI -> dockerd 20.10": (docker, denv)}
        results: dict[str, list[float]] = {name: [] for name in commands}
        for cmd, e in commands.values():  # warm-up
            timed([*cmd, "run", "--rm", "busybox", "true"], e)
        for _ in range(runs):  # interleaved: the machine's noise hits all alike
            for name, (cmd, e) in commands.items():
                results[name].append(timed([*cmd, "run", "--rm", "busybox", "true"], e))
        print(f"median of {runs} runs of 'run --rm busybox true' (bridge network):")
        reference = statistics.median(results["docker CLI -> dockerd 20.10"])
        for name, values in results.items():
            median = statistics.median(values)
            print(f"  {name:32} {median * 1000:7.0f} ms   ratio to dockerd: {median / reference:.2f}")

        time.sleep(1)
        daemon_rss, daemon_pss = memory(ours.pid)
        fork = pids_named("minidocker.forkserver")
        fork_mem = memory(fork[0]) if fork else (0, 0)
        dockerd_pid = int((base / "dockerd.pid").read_text())
        containerd = [p for p in pids_named("containerd") if b"containerd.toml" in Path(f"/proc/{p}/cmdline")
                      .read_bytes() or Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"containerd\0")]
        print("idle memory (RSS / PSS, MiB):")
        print(f"  minidockerd {daemon_rss / 1024:6.1f} / {daemon_pss / 1024:6.1f}   + fork server "
              f"{fork_mem[0] / 1024:6.1f} / {fork_mem[1] / 1024:6.1f}")
        d_rss, d_pss = memory(dockerd_pid)
        c_rss, c_pss = memory(containerd[0]) if containerd else (0, 0)
        print(f"  dockerd     {d_rss / 1024:6.1f} / {d_pss / 1024:6.1f}   + containerd  "
              f"{c_rss / 1024:6.1f} / {c_pss / 1024:6.1f}")

        n = 10
        for i in range(n):
            subprocess.run([*minidocker, "run", "-d", "--name", f"m{i}", "busybox", "sleep", "300"], env=env,
                           check=True, capture_output=True)
            subprocess.run([*docker, "run", "-d", "--name", f"d{i}", "busybox", "sleep", "300"], env=denv,
                           check=True, capture_output=True)
        time.sleep(1)
        before = set(fork)
        monitors = [p for p in pids_named("minidocker.forkserver") if p not in before]
        shims = pids_named("containerd-shim")
        for label, pids in (("minidocker monitor", monitors), ("containerd shim", shims)):
            mem = [memory(p) for p in pids]
            if mem:
                rss, pss = (sum(m[i] for m in mem) / n / 1024 for i in (0, 1))
                print(f"  per container, {label:19}: RSS {rss:5.1f} MiB, PSS {pss:5.1f} MiB "
                      f"({len(mem)} processes for {n} containers)")
        ours_after = memory(ours.pid)
        print(f"  minidockerd with {n} containers: RSS {ours_after[0] / 1024:.1f} MiB")
        for i in range(n):
            subprocess.run([*minidocker, "rm", "-f", f"m{i}"], env=env, capture_output=True)
            subprocess.run([*docker, "rm", "-f", f"d{i}"], env=denv, capture_output=True)
    finally:
        for process in (ours, theirs):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                if process.poll() is None:
                    process.kill()
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
