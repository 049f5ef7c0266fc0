"""Chapter 10: chapter 08's builds through the daemon, driven by the real ``docker`` CLI (``POST /build``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import helpers_08_build as chapter08
from tests.helpers_10_daemon import running_daemon

# Chapter 08's fixtures: busybox built by the builder itself, and the module's own bridge for RUN.
busybox = chapter08.busybox
run_network = chapter08.run_network
context = chapter08.context


def test_docker_cli_builds_against_our_daemon_and_the_cache_outlives_a_restart(busybox: str,
                                                                              tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine: install Debian's docker.io (./setup.sh does)")
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG WHO=nobody\nCOPY a.txt /\n"
                                                   "RUN echo hello $WHO > /hello\n"
                                                   "CMD [\"cat\", \"/hello\"]\n",
                                     "a.txt": "a"})
    (tmp_path / "daemon").mkdir()
    with running_daemon(tmp_path / "daemon", "http://127.0.0.1:9") as daemon:
        env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_BUILDKIT": "0",
               "DOCKER_CONFIG": str(tmp_path / "docker-config")}

        def docker_build() -> subprocess.CompletedProcess:
            command = [docker, "build", "-t", "from-docker:v1", "--build-arg", "WHO=docker", str(ctx)]
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

        first = docker_build()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Successfully tagged from-docker:v1" in first.stdout and "Using cache" not in first.stdout
        ran = subprocess.run([docker, "run", "--rm", "from-docker:v1"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert ran.stdout == "hello docker\n", ran.stderr
        from_stdin = subprocess.run([docker, "build", "-t", "from-stdin", "-"],  # a Dockerfile, no context
                                    input="FROM busybox\nRUN echo piped\n", env=env, capture_output=True,
                                    text=True, timeout=120)
        assert from_stdin.returncode == 0 and "\npiped\n" in from_stdin.stdout, from_stdin.stderr
        outside = tmp_path / "elsewhere.Dockerfile"  # -f outside the context: the CLI appends it, unpadded
        outside.write_text("FROM busybox\nCOPY a.txt /from-outside\n")
        elsewhere = subprocess.run([docker, "build", "-t", "from-outside", "-f", str(outside), str(ctx)],
                                   env=env, capture_output=True, text=True, timeout=120)
        assert elsewhere.returncode == 0 and "Successfully tagged from-outside" in elsewhere.stdout, \
            elsewhere.stdout + elsewhere.stderr
        daemon.stop()
        daemon.start()
        again = docker_build()
        assert again.stdout.count("Using cache") == 4, again.stdout  # ARG, COPY, RUN, CMD
        history = subprocess.run([docker, "history", "--no-trunc", "from-docker:v1"], env=env,
                                 capture_output=True, text=True)
        assert "|1 WHO=docker /bin/sh -c echo hello $WHO > /hello" in history.stdout
        pruned = subprocess.run([docker, "system", "prune", "-f"], env=env, capture_output=True, text=True)
        assert pruned.returncode == 0 and "Deleted build cache objects" in pruned.stdout, pruned.stdout
        assert "Using cache" not in docker_build().stdout
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
        failed = docker_build()
        assert failed.returncode == 4 and "returned a non-zero code: 4" in failed.stderr
