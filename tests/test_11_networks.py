"""Chapter 11: our CLI's network commands and their refusals, Docker's command groups, and the prune
questions, against a daemon on a private socket."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers_10_daemon import daemon_fixture

# Chapter 12 plugs user-defined networks into the daemon: then create is no longer refused.
PLUGGED = importlib.util.find_spec("minidocker.networks.plugin") is not None

GROUPS = ("container", "image", "volume", "network", "system", "builder", "daemon")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from daemon_fixture(tmp_path_factory)


@pytest.fixture
def box(daemon):
    """A running container on the bridge: its id and what ``inspect`` says of its address."""
    started = daemon.cli("run", "-d", "--name", "netbox", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    yield cid, json.loads(daemon.cli("inspect", cid).stdout)[0]["NetworkSettings"]
    daemon.cli("rm", "-f", cid)


def test_our_cli_network_ls_inspect_and_the_refusals(daemon, box):
    cid, settings = box
    listed = daemon.cli("network", "ls")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in lines[1:]] == [
        ["bridge", "bridge", "local"], ["host", "host", "local"], ["none", "null", "local"]]
    assert all(re.fullmatch(r"[0-9a-f]{12}", line.split()[0]) for line in lines[1:])
    quiet = daemon.cli("network", "ls", "-q", "-f", "name=bri").stdout
    assert re.fullmatch(r"[0-9a-f]{12}\n", quiet)
    inspected = json.loads(daemon.cli("network", "inspect", "bridge", "none").stdout)
    assert [n["Name"] for n in inspected] == ["bridge", "none"] and cid in inspected[0]["Containers"]
    address = daemon.cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge").stdout
    subnet = os.environ["MINIDOCKER_SUBNET"]
    assert json.loads(address) == [{"Subnet": subnet, "Gateway": settings["Gateway"]}]
    missing = daemon.cli("network", "inspect", "nope")
    assert (missing.returncode, missing.stdout) == (1, "[]\n") and "network nope not found" in missing.stderr
    if not PLUGGED:  # chapter 12 makes networks (its tests check create): until then, the refusal
        created = daemon.cli("network", "create", "mine")
        assert created.returncode == 1 and created.stderr == (
            "Error response from daemon: user-defined networks are not supported: use bridge, host or none\n")
    removed = daemon.cli("network", "rm", "bridge")
    assert removed.returncode == 1 and "pre-defined network and cannot be removed" in removed.stderr
    assert daemon.cli("network", "prune", "-f").returncode == 0


def test_system_prune_asks_first(daemon):
    def stale() -> bool:
        return "stale" in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()

    assert daemon.cli("create", "--name", "stale", "busybox", "true").returncode == 0
    try:
        for answer in ("", "\n", "n\n", "yes\n"):  # docker's rule: "y" or "Y", nothing else
            declined = daemon.cli("system", "prune", input=answer)
            assert declined.returncode == 0, declined.stderr
            assert declined.stdout.startswith("WARNING! This will remove:\n  - all stopped containers\n")
            assert declined.stdout.endswith("\nAre you sure you want to continue? [y/N] ") and stale()
        accepted = daemon.cli("system", "prune", input="y\n")
        assert "Deleted Containers:\n" in accepted.stdout and not stale(), accepted.stderr
        assert daemon.cli("create", "--name", "stale", "busybox", "true").returncode == 0
        forced = daemon.cli("system", "prune", "-f", stdin=subprocess.DEVNULL)
        assert "Are you sure" not in forced.stdout and not stale(), forced.stderr
        assert "Deleted Containers:\n" in forced.stdout and "Total reclaimed space" in forced.stdout
    finally:
        daemon.cli("rm", "-f", "stale")


def test_every_prune_asks_first(daemon):
    """container, image, volume and builder prune ask Docker's question too; -f does not."""
    assert daemon.cli("create", "--name", "stale", "busybox", "true").returncode == 0
    assert daemon.cli("volume", "create", "spare").returncode == 0
    try:
        for command, warning in ((["container", "prune"], "all stopped containers"),
                                 (["image", "prune"], "all dangling images"),
                                 (["volume", "prune"], "all local volumes not used"),
                                 (["builder", "prune"], "all dangling build cache")):
            declined = daemon.cli(*command, input="n\n")
            assert declined.returncode == 0 and f"WARNING! This will remove {warning}" in declined.stdout, \
                declined.stdout + declined.stderr
            assert "Total reclaimed space" not in declined.stdout
        assert "stale" in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert "spare" in daemon.cli("volume", "ls", "-q").stdout.split()
        pruned = daemon.cli("container", "prune", "-f", stdin=subprocess.DEVNULL)
        assert "Deleted Containers:" in pruned.stdout and "Are you sure" not in pruned.stdout, pruned.stderr
        assert "stale" not in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()
        volumes = daemon.cli("volume", "prune", input="y\n")
        deleted = volumes.stdout.partition("Deleted Volumes:\n")[2].split("\n\n")[0].split()
        assert "spare" in deleted, volumes.stdout + volumes.stderr  # with any other unused volume
    finally:
        daemon.cli("rm", "-f", "stale")
        daemon.cli("volume", "rm", "spare")


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_alone_prints_its_commands_like_docker(group):
    def minidocker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minidocker", "-H", "unix:///nonexistent", *args],
                              capture_output=True, text=True, timeout=30)

    alone = minidocker(group)
    assert (alone.returncode, alone.stdout) == (0, "") and "Traceback" not in alone.stderr
    assert alone.stderr.startswith(f"Usage:  minidocker {group} COMMAND\n\n")
    assert "\nCommands:\n" in alone.stderr
    helped = minidocker(group, "--help")
    assert (helped.returncode, helped.stdout, helped.stderr) == (0, alone.stderr, "")
    unknown = minidocker(group, "frobnicate")
    assert unknown.returncode == 1 and unknown.stderr.startswith(
        f"minidocker: unknown command: minidocker {group} frobnicate\n")


def test_group_subcommands_run_their_commands(daemon):
    listed = daemon.cli("container", "ls", "-a", "--format", "{{.Names}}")
    assert listed.returncode == 0, listed.stderr
    assert "busybox" in daemon.cli("image", "list", "--format", "{{.Repository}}").stdout.split()
    image = json.loads(daemon.cli("image", "inspect", "busybox").stdout)
    assert image[0]["RepoTags"] == ["busybox:latest"]
    container = daemon.cli("container", "inspect", "busybox")  # an image, not a container
    assert container.returncode == 1 and "No such object: busybox" in container.stderr
    history = daemon.cli("image", "history", "busybox")
    assert history.returncode == 0 and history.stdout.startswith("IMAGE"), history.stderr
    assert daemon.cli("network", "list", "-q").stdout.count("\n") == 3
    assert daemon.cli("volume", "list").returncode == 0
