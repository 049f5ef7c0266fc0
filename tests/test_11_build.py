"""Chapter 11: chapter 08's builds through the daemon, driven by our client (``minidocker build``)."""

from __future__ import annotations

from pathlib import Path

from tests import helpers_08_build as chapter08
from tests.helpers_10_daemon import running_daemon

# Chapter 08's fixtures: busybox built by the builder itself, and the module's own bridge for RUN.
busybox = chapter08.busybox
run_network = chapter08.run_network
context = chapter08.context


def test_our_client_builds_through_the_daemon(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY a.txt /\nRUN cat /a.txt\n",
                                     "a.txt": "a\n", ".dockerignore": "ignored\n", "ignored": "i"})
    (tmp_path / "daemon").mkdir()
    with running_daemon(tmp_path / "daemon", "http://127.0.0.1:9") as daemon:
        built = daemon.cli("build", "-t", "ours:v1", str(ctx))
        assert built.returncode == 0, built.stderr
        assert built.stdout.startswith("Step 1/3 : FROM busybox\n")
        assert "\na\nRemoving intermediate container" in built.stdout  # the RUN's output, streamed
        assert built.stdout.endswith("Successfully tagged ours:v1\n")
        history = daemon.cli("history", "ours:v1").stdout.splitlines()
        assert "/bin/sh -c cat /a.txt" in history[1] and history[1].endswith("0B")  # it changed no file
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 5\n")
        failed = daemon.cli("build", str(ctx))
        assert failed.returncode == 5 and failed.stderr == "The command '/bin/sh -c exit 5' returned a " \
                                                          "non-zero code: 5\n"
        pruned = daemon.cli("builder", "prune", "-f")
        assert pruned.returncode == 0 and "Total reclaimed space" in pruned.stdout
