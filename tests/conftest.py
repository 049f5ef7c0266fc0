"""Shared fixtures: the busybox rootfs, stage runners, chapter selection, and the leak check.

Tests run as root against the real kernel. Every test gets the ``no_leaks`` check for free: after
the test, no new mount, process, cgroup, link or network namespace may remain (see ``leaks.py``).

``pytest --chapter N`` runs the tests of chapters 0..N only (the cumulative suite of chapter N): a
test's chapter is the number in its file name, ``tests/test_02_namespaces.py`` -> 2.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.core.stage import run_stage
from tests import leaks

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chapter", type=int, default=None,
                     help="run only the tests of chapters 0..N (the cumulative suite of chapter N)")


def chapter_of(item: pytest.Item) -> int:
    """A test's chapter: the ``NN`` in ``test_NN_*.py`` (notebook tests set their own)."""
    marker = item.get_closest_marker("chapter")
    if marker:
        return int(marker.args[0])
    match = re.match(r"test_(\d\d)_", Path(str(item.fspath)).name)
    return int(match.group(1)) if match else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    limit = config.getoption("--chapter")
    if limit is not None:
        keep = [i for i in items if chapter_of(i) <= limit]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    # The site renders the executed notebooks: build it last.
    items.sort(key=lambda i: "test_site" in str(i.fspath))


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("minidocker's tests run containers on the real kernel: run them as root")
    # Orphans (a container whose engine died) come to us instead of the host's init, so the leak
    # check sees them as our descendants.
    from minidocker.core import syscalls as _syscalls

    _syscalls.prctl(_syscalls.PR_SET_CHILD_SUBREAPER, 1)


def _unused_subnet() -> str:
    """A /24 of 10.200.0.0/16 that no route of the host covers, picked from our pid."""
    with open("/proc/net/route") as f:
        routes = [line.split() for line in f.readlines()[1:]]
    taken = set()
    for fields in routes:
        destination = int(fields[1], 16).to_bytes(4, "little")
        if destination[:2] == bytes([10, 200]):
            taken.add(destination[2])
    third = next(n for step in range(256) if (n := (os.getpid() + step) % 256) not in taken)
    return f"10.200.{third}.0/24"


@pytest.fixture(scope="session", autouse=True)
def _private_engine_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point the engine's state, run dir and cgroup parent at this run's own places (see ``_paths``).

    Test runs then never see each other's containers, even when several share a machine; the
    busybox cache stays shared. The base temp dir is made searchable for ``--userns`` containers.
    """
    base = tmp_path_factory.getbasetemp()
    for path in (base, *base.parents):
        if str(path).startswith("/tmp/"):
            path.chmod(path.stat().st_mode | 0o011)
    os.environ["MINIDOCKER_STATE"] = str(base / "state")
    os.environ["MINIDOCKER_RUN"] = str(base / "run")
    os.environ["MINIDOCKER_CGROUP_PARENT"] = f"minidocker-test-{os.getpid()}"
    # The default bridge network, and the client's config (credentials, mirrors), private too.
    os.environ["MINIDOCKER_BRIDGE"] = f"mdt{os.getpid()}"
    os.environ["MINIDOCKER_NFT_TABLE"] = f"minidocker_test_{os.getpid()}"
    os.environ["MINIDOCKER_SUBNET"] = _unused_subnet()
    os.environ["MINIDOCKER_CONFIG"] = str(base / "config")
    os.environ["MINIDOCKER_REGISTRY_MIRRORS"] = ""
    leaks.SCOPE["tmp"] = str(base)
    leaks.SCOPE["cgroup"] = os.environ["MINIDOCKER_CGROUP_PARENT"]


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> object:
    """Fail the test if it left a mount, process, cgroup, link or netns behind (and clean it up)."""
    before = leaks.snapshot()
    yield
    deadline = time.monotonic() + 5
    left = leaks.new_since(before)
    while left and time.monotonic() < deadline:  # exits and lazy unmounts take a moment
        time.sleep(0.05)
        left = leaks.new_since(before)
    if left:
        leaks.remove(left)
        pytest.fail(f"the test left resources behind: {left}", pytrace=False)


def _process_identity(pid: int) -> str:
    """``pid`` and its start time: a recycled pid does not match."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f"{pid} {f.read().rsplit(')', 1)[1].split()[19]}"
    except OSError:
        return ""


def _unmount_views_of_dead_runs() -> None:
    """Unmount the read-only rootfs views that killed test runs left (their cleanup never ran).

    A view belongs to a run whose pid and start time are in ``busybox-ro.owner`` beside it; a
    view without one (older runs) goes once its directory has been left alone for three hours.
    """
    from minidocker.core import syscalls as sc

    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if not re.fullmatch(r"/tmp/pytest-of-[^/]+/pytest-\d+/busybox-ro", point):
            continue
        owner, alive = Path(point).parent / "busybox-ro.owner", True
        try:
            alive = _process_identity(int(owner.read_text().split()[0])) == owner.read_text()
        except (OSError, ValueError, IndexError):
            with contextlib.suppress(OSError):
                alive = time.time() - Path(point).parent.stat().st_mtime < 3 * 3600
        if not alive:
            with contextlib.suppress(OSError):
                sc.umount2(point, sc.MNT_DETACH)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shared busybox root filesystem, seen through a read-only bind mount.

    The cache's rootfs is shared by every test, notebook and test run on the machine: a test that
    writes into it (a file left in /tmp, a ``2>/dev/null`` in a jail without /dev) would change
    what the others see. Read-only, such a test fails at once with "Read-only file system".
    """
    from minidocker import rootfs as base
    from minidocker.core import syscalls as sc

    _unmount_views_of_dead_runs()
    view = tmp_path_factory.getbasetemp() / "busybox-ro"
    view.mkdir(mode=0o755)
    (view.parent / "busybox-ro.owner").write_text(_process_identity(os.getpid()))
    sc.mount(str(base.busybox_rootfs()), str(view), None, sc.MS_BIND)
    sc.mount(None, str(view), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
    yield str(view)
    sc.umount2(str(view), sc.MNT_DETACH)


@pytest.fixture
def writable_rootfs(rootfs: str, tmp_path: Path) -> str:
    """A private copy of the busybox rootfs that a test may change (searchable for --userns)."""
    import shutil

    copy = tmp_path / "rootfs"
    shutil.copytree(rootfs, copy, symlinks=True)
    tmp_path.chmod(0o755)
    return str(copy)


@pytest.fixture
def stage() -> object:
    """Run a stage: ``stage("namespaces", ROOTFS, "--", "true")`` (see ``_stage.run_stage``)."""
    return run_stage

