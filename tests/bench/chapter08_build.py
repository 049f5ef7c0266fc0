"""Chapter 08's measurements: one Dockerfile built by minidocker and by Docker's classic builder.

Not a test (it takes a minute or two and needs Debian's docker.io): run it by hand, as root::

    .venv/bin/python -m tests.bench.chapter08_build [--runs 5]

dockerd runs on private paths, in a network and mount namespace of its own (its docker0 bridge,
iptables rules and mounts never reach the host), as in chapter 10's benchmark; minidockerd on a
private state directory with its own bridge name. Both build the same context FROM the same
busybox files (``docker import``ed for dockerd, built FROM scratch for minidocker), RUN steps on
the default bridge network. Prints medians (whole command, wall clock) and their ratios:

* a first build (``--no-cache``): every step runs;
* a fully cached rebuild: every step comes from the cache;
* minidocker also without a daemon (``python -m minidocker.build.builder``), to show what the API costs.
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

from minidocker import rootfs  # noqa: E402

DOCKERFILE = """\
FROM busybox
ENV APP=/app LANG=C.UTF-8
WORKDIR /app
COPY requirements.txt ./
RUN for i in $(seq 1 50); do echo "package-$i==1.$i" >> installed.txt; done
COPY src/ ./src/
RUN find src -type f | sort > manifest.txt && wc -l manifest.txt
RUN head -c 1048576 /dev/urandom > blob.bin
EXPOSE 8080
USER nobody
CMD ["sh", "-c", "cat manifest.txt"]
"""


def make_context(directory: Path) -> None:
    (directory / "src").mkdir(parents=True)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "requirements.txt").write_text("".join(f"package-{i}==1.{i}\n" for i in range(50)))
    for i in range(40):
        (directory / "src" / f"module_{i}.py").write_text(f"def f{i}():\n    return {i}\n" * 20)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    return elapsed


CGROUP_PARENT = "minidocker-bench09-docker"  # dockerd's containers go here, removed at the end


def _remove_cgroups(name: str) -> None:
    """Remove the (empty, once dockerd is gone) cgroup ``name`` from every hierarchy, v1 or v2."""
    root = Path("/sys/fs/cgroup")
    tops = [root / name] + [h / name for h in root.iterdir() if h.is_dir()]
    for top in tops:
        if top.is_dir():
            for directory in sorted((p for p in top.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    base = Path(tempfile.mkdtemp(prefix="bench09-"))
    pid = os.getpid()
    env = {**os.environ, "MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run"),
           "MINIDOCKER_CGROUP_PARENT": "minidocker-bench09", "MINIDOCKER_BRIDGE": f"mdbench{pid % 100000}",
           "MINIDOCKER_SUBNET": "10.219.0.0/24", "MINIDOCKER_NFT_TABLE": f"minidocker_bench09_{pid}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have bytecode caches
    ours = theirs = None
    try:
        context = base / "context"
        make_context(context)
        seed = base / "seed"
        seed.mkdir()
        shutil.copy(rootfs.busybox_tar(), seed / "busybox.tar")
        (seed / "Dockerfile").write_text('FROM scratch\nADD busybox.tar /\nCMD ["sh"]\n')
        local = [sys.executable, "-m", "minidocker.build.builder"]
        subprocess.run([*local, "-t", "busybox", str(seed)], env=env, check=True, capture_output=True)

        ours = subprocess.Popen([sys.executable, "-m", "minidocker.daemon", "-H", f"unix://{base}/mini.sock"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        minidocker = [str(ROOT / ".venv/bin/minidocker"), "-H", f"unix://{base}/mini.sock"]
        while subprocess.run([*minidocker, "version"], env=env, capture_output=True).returncode:
            time.sleep(0.1)

        script = (f"ip link set lo up && mount -t tmpfs bench09-etc /etc/docker && exec dockerd "
                  f"--data-root {base}/docker --exec-root {base}/dexec --pidfile {base}/dockerd.pid "
                  f"-H unix://{base}/docker.sock --cgroup-parent /{CGROUP_PARENT}")  # /: at the root
        with open(base / "dockerd.log", "w") as log:
            theirs = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                                       script], stdout=log, stderr=subprocess.STDOUT)
        docker = ["docker", "-H", f"unix://{base}/docker.sock"]
        denv = {**env, "DOCKER_CONFIG": str(base / "docker-config"), "DOCKER_BUILDKIT": "0"}
        while subprocess.run([*docker, "version"], env=denv, capture_output=True).returncode:
            if theirs.poll() is not None:
                raise RuntimeError((base / "dockerd.log").read_text()[-1000:])
            time.sleep(0.2)
        subprocess.run([*docker, "import", "--change", 'CMD ["sh"]', str(rootfs.busybox_tar()), "busybox"],
                       env=denv, check=True, capture_output=True)

        builders = {"docker build (classic) -> dockerd 20.10": ([*docker, "build"], denv),
                    "minidocker build -> minidockerd": ([*minidocker, "build"], env),
                    "python -m minidocker.build.builder (no daemon)": (local, env)}
        first: dict[str, list[float]] = {name: [] for name in builders}
        cached: dict[str, list[float]] = {name: [] for name in builders}
        for command, e in builders.values():  # warm-up, and the cache for the cached runs
            timed([*command, "-t", "bench:latest", str(context)], e)
        for _ in range(runs):  # interleaved: the machine's noise hits all alike
            for name, (command, e) in builders.items():
                first[name].append(timed([*command, "--no-cache", "-t", "bench:latest", str(context)], e))
                cached[name].append(timed([*command, "-t", "bench:latest", str(context)], e))
        reference = "docker build (classic) -> dockerd 20.10"
        for title, results in (("first build (--no-cache: 6 layers, 3 RUN containers)", first),
                               ("fully cached rebuild", cached)):
            print(f"median of {runs} runs, {title}:")
            docker_median = statistics.median(results[reference])
            for name, values in results.items():
                median = statistics.median(values)
                print(f"  {name:42} {median * 1000:7.0f} ms   ratio to Docker: {median / docker_median:.2f}")
        for name in builders:
            ratio = statistics.median(cached[name]) / statistics.median(first[name])
            print(f"  cached / first, {name:42} {ratio:.2f}")
    finally:
        for process in (ours, theirs):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                if process.poll() is None:
                    process.kill()
        _remove_cgroups(CGROUP_PARENT)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
