"""The benchmark harness (``python -m tests.bench``) stays runnable: one tiny scenario, one run, for real.

The full benchmark is not part of the suite (it takes about 10 minutes and installs the peers);
this runs the same command on the cheapest rows of scenario 1, so a change that breaks the
harness (its sandbox, its timing, its table) fails here, not on the day someone needs numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.bench import report
from tests.bench.timing import Contender, alternate

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_one_tiny_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    command = [sys.executable, "-m", "tests.bench", "runtime", "--only",
               "minidocker-namespaces,unshare-chroot,runc", "--runs", "1", "--warmup", "0", "--no-install",
               "-o", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert text in result.stdout  # printed and saved alike
    assert "| minidocker | " in text and "- machine: " in text
    ours = re.search(r"^\| \*\*minidocker namespaces stage \(ch\. 02\)\*\* \| ([\d.]+) \|", text, re.M)
    floor = re.search(r"^\| unshare \+ chroot \(the floor\) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| ([\d.*]+) \|$",
                      text, re.M)
    assert ours and floor, text
    assert float(ours.group(1)) > 0 and float(floor.group(2).strip("*")) > 0
    # runc is either measured or says why not: never silently missing
    assert re.search(r"^\| runc run \| ([\d.]+|not measured: .+) \|", text, re.M), text


def test_a_peer_that_cannot_run_says_why_and_ratios_compare_medians() -> None:
    ours = Contender("minidocker", "minidocker", lambda: 0.3, ours=True)
    peer = Contender("docker", "Docker", lambda: 0.6)
    absent = Contender("crun", "crun run", unavailable="not measured: crun refuses hybrid cgroups")
    series = alternate([ours, peer, absent], runs=3, warmup=1)
    assert [len(s.values) for s in series] == [3, 3, 0]
    text = report.render_table(report.Table("9", "demo", "ms", series, 3, 1))
    assert "| **minidocker** | 300 | 300 | 300 | — |" in text
    assert "| Docker | 600 | 600 | 600 | 0.50 |" in text
    assert "| crun run | not measured: crun refuses hybrid cgroups |" in text


def test_a_failing_contender_is_reported_not_dropped() -> None:
    def broken() -> float:
        from tests.bench.timing import timed

        return timed(["sh", "-c", "echo no such image >&2; exit 3"])

    series = alternate([Contender("podman", "podman", broken)], runs=2, warmup=0)
    assert series[0].failure and "exited 3: no such image" in series[0].failure
    text = report.render_table(report.Table("9", "demo", "ms", series, 2, 0))
    assert "| podman | failed: " in text
