"""Chapter 09's measurements: skopeo pushes to and pulls from our registry and Debian's, side by side.

Not a test (it takes a minute or two and needs Debian's skopeo and docker-registry): run it by hand::

    .venv/bin/python -m tests.bench.chapter09_registry [--runs 7]

Our server (``python -m minidocker.registry serve``) and Debian's ``docker-registry``
(distribution 2.8, Go, started by :class:`minidocker.testing.localregistry.LocalRegistry` with the tests'
config: filesystem storage, quiet logs) run on 127.0.0.1, each on a free port and a storage
directory of its own under one private temporary directory, removed at the end.

The image is 64 MiB of random bytes in four layers of 16 MiB (one file in a tar each, gzip'ed:
incompressible, so skopeo sends the layers as they are, with no compression on its side), written
as an OCI layout. Every round writes a *new* image (new random bytes), so each push really uploads
every layer: no server, and no cache of skopeo's, has seen those blobs before. A round, timed with
the wall clock of whole ``skopeo copy`` commands:

* push: ``skopeo copy oci:LAYOUT:bench docker://HOST/bench/rN:latest`` into each server;
* pull: ``skopeo copy docker://HOST/bench/rN:latest dir:DIR`` (``dir:`` stores the blobs as sent);
* 4 parallel pulls: four such copies started together, timed until the last one ends.

The two servers take turns going first (round 1 ours first, round 2 Debian's first...), after one
warm-up round that is not counted; ``sync`` runs before every timed step so that neither pays for
the other's dirty pages. Each server's CPU time (user + system, all threads, from
``/proc/PID/stat``) is taken over every step, and its median printed. skopeo still records the
blobs it saw in its own blob-info cache (``/var/lib/containers/cache`` as root), as any copy does.
Prints medians in ms, the ratio ours ÷ Debian's (below 1: we are faster), the
range of the per-round ratios, and the load average before and after: the machine may be busy
with other work, so read ratios, not absolute times, and run it again if they disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minidocker.core import syscalls as _syscalls  # noqa: E402
from minidocker.testing import ocilayout as _ocilayout  # noqa: E402
from minidocker.testing.localregistry import LocalRegistry, answers, free_port  # noqa: E402

MIB = 1024 * 1024
LAYERS = 4
LAYER_SIZE = 16 * MIB  # 4 x 16 MiB = 64 MiB
PARALLEL = 4
SKOPEO = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
STEPS = ("push", "pull", f"{PARALLEL} parallel pulls")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def write_image(layout: Path) -> None:
    """A fresh 64 MiB image in the OCI layout ``layout``, tag ``bench``: random bytes, gzip'ed layers."""
    layers, diff_ids = [], []
    for i in range(LAYERS):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data-{i}.bin")
            info.size, info.mode, info.mtime = LAYER_SIZE, 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(os.urandom(LAYER_SIZE)))
        raw = buffer.getvalue()
        diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        layers.append(_ocilayout.write_blob(layout, gzip.compress(raw, compresslevel=1, mtime=0),
                                            "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_descriptor = _ocilayout.write_blob(layout, json.dumps(config).encode(),
                                              "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": _ocilayout.OCI_MANIFEST, "config": config_descriptor,
                "layers": layers}
    descriptor = _ocilayout.write_blob(layout, json.dumps(manifest).encode(), _ocilayout.OCI_MANIFEST)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": _ocilayout.OCI_INDEX,
             "manifests": [{**descriptor, "annotations": {_ocilayout.REF_NAME: "bench"}}]}
    (layout / "index.json").write_text(json.dumps(index))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def skopeo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*SKOPEO, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_all(processes: list[subprocess.Popen[str]]) -> None:
    errors = []
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            errors.append(f"{' '.join(map(str, process.args))}: {stderr.strip()[-1000:]}")
    if errors:
        raise RuntimeError("\n".join(errors))


def measure(pid: int, copies: list[tuple[str, str]]) -> tuple[float, float]:
    """Wall-clock seconds from starting every ``skopeo copy SOURCE DEST`` at once until the last one
    ends; the CPU seconds the server ``pid`` spent meanwhile."""
    os.sync()
    cpu = cpu_seconds(pid)
    began = time.perf_counter()
    wait_all([skopeo(source, dest) for source, dest in copies])
    elapsed = time.perf_counter() - began
    return elapsed, cpu_seconds(pid) - cpu


def start_ours(storage: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Our server on a free port of 127.0.0.1; it dies with us (PDEATHSIG) whatever happens."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "minidocker.registry", "serve", "--addr", f"127.0.0.1:{port}",
             "--storage", str(storage), "--allow-anonymous-push"], stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, cwd=ROOT,
            preexec_fn=lambda: _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, signal.SIGTERM))
    deadline = time.monotonic() + 30
    while not answers(f"http://127.0.0.1:{port}"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"our registry did not start: {log.read_text()[-1000:]}")
        time.sleep(0.05)
    return process, f"127.0.0.1:{port}"


def one_round(n: int, base: Path, servers: list[tuple[str, int, str]],
              results: dict[str, dict[str, list[tuple[float, float]]]]) -> None:
    """Round ``n``: a fresh image, pushed to and pulled from each server, in the order of ``servers``."""
    layout = base / f"layout-{n}"
    write_image(layout)
    pulls = base / "pulls"
    try:
        for step in STEPS:
            for name, pid, host in servers:
                reference = f"docker://{host}/bench/r{n}:latest"
                if step == "push":
                    copies = [(f"oci:{layout}:bench", reference)]
                else:
                    count = 1 if step == "pull" else PARALLEL
                    pulls.mkdir(exist_ok=True)
                    copies = [(reference, f"dir:{pulls}/{i}") for i in range(count)]
                results[step][name].append(measure(pid, copies))
                shutil.rmtree(pulls, ignore_errors=True)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
        shutil.rmtree(pulls, ignore_errors=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured rounds (default 7), after one warm-up")
    runs = parser.parse_args().runs
    for program in ("skopeo", "docker-registry"):
        if not shutil.which(program):
            sys.exit(f"{program} is not installed: apt-get install {program}")
    base = Path(tempfile.mkdtemp(prefix="bench10-"))
    ours = theirs = None
    try:
        ours, our_host = start_ours(base / "ours", base / "ours.log")
        theirs = LocalRegistry(base / "theirs").start()
        assert theirs.process is not None
        print(f"{version(['skopeo', '--version'])}; {version(['docker-registry', '--version'])}; "
              f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs", flush=True)
        print(f"load average before (1, 5, 15 min): {load()}", flush=True)
        names = ("ours", "Debian's")
        pids = {"ours": ours.pid, "Debian's": theirs.process.pid}
        hosts = {"ours": our_host, "Debian's": theirs.host}
        results: dict[str, dict[str, list[tuple[float, float]]]] = {s: {m: [] for m in names} for s in STEPS}
        for n in range(runs + 1):  # round 0: the warm-up, thrown away
            order = names if n % 2 else names[::-1]
            one_round(n, base, [(m, pids[m], hosts[m]) for m in order], results)
            if n == 0:
                results = {s: {m: [] for m in names} for s in STEPS}
            else:
                print(f"  round {n}/{runs} done, load {load()}", flush=True)
        size = LAYERS * LAYER_SIZE / MIB
        print(f"\n{size:.0f} MiB image ({LAYERS} random layers), median of {runs} rounds after a warm-up, "
              f"alternating which server goes first:")
        print(f"  {'':18} {'ours ms':>8} {'Debian ms':>10} {'ours/Debian':>12} {'per round':>12} "
              f"{'speed-up':>9}   server CPU s per step, ours / Debian's")
        for step in STEPS:
            mine = [t for t, _ in results[step]["ours"]]
            other = [t for t, _ in results[step]["Debian's"]]
            ratios = [a / b for a, b in zip(mine, other, strict=True)]
            median_mine, median_other = statistics.median(mine), statistics.median(other)
            ratio = median_mine / median_other
            cpu = [statistics.median([c for _, c in results[step][m]]) for m in names]
            print(f"  {step:18} {median_mine * 1000:8.0f} {median_other * 1000:10.0f} "
                  f"{ratio:12.2f} {min(ratios):5.2f}–{max(ratios):<5.2f} {1 / ratio:8.2f}×   "
                  f"{cpu[0]:.2f} / {cpu[1]:.2f}")
        print("  (ours/Debian: ratio of median times, below 1 we are faster; per round: the range of each "
              "round's ratio;\n   speed-up: Debian's time ÷ ours, i.e. our throughput relative to theirs)")
        print(f"load average after (1, 5, 15 min): {load()}")
    finally:
        if ours is not None and ours.poll() is None:
            ours.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                ours.wait(timeout=10)
            if ours.poll() is None:
                ours.kill()
                ours.wait()
        if theirs is not None:
            theirs.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
