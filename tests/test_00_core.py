"""Chapter 00: the small helpers every part shares (minidocker/core), each once, with Docker's behaviour."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from minidocker.core import api, atomic, digests, units

# -- sizes in: go-units' RAMInBytes, what `docker run --memory` reads -------------------------------


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("512", 512), ("100b", 100), ("100B", 100), ("512k", 512 << 10), ("512K", 512 << 10),
    ("64m", 64 << 20), ("64mb", 64 << 20), ("64MB", 64 << 20), ("64MiB", 64 << 20), ("64mib", 64 << 20),
    ("64 m", 64 << 20), ("64 MiB", 64 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29), ("2t", 2 << 40),
    ("1p", 1 << 50), ("0.5k", 512), (4096, 4096), (0, 0),
])
def test_parse_size_reads_what_docker_reads(text: str | int, size: int) -> None:
    assert units.parse_size(text) == size


@pytest.mark.parametrize("text", [
    "12x", "", "m", "k", "b", "-1", "+1", "1.2.3g", ".5m", "5.m", "64mbb", "64ib", "64i", "64kbi", "64  m",
    " 64m", "64m ", "1e3", "0x10", "64 m b", "64e", "six", -1,
])
def test_parse_size_refuses_in_dockers_words(text: str | int) -> None:
    """``docker run --memory 12x``: ``invalid size: '12x'``; the message names exactly what was typed."""
    with pytest.raises(ValueError) as error:
        units.parse_size(text)
    assert str(error.value) == f"invalid size: '{text}'"


# -- sizes out: go-units' HumanSizeWithPrecision, what `docker images` prints -----------------------


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (512, "512B"), (999, "999B"), (1000, "1kB"), (4100, "4.1kB"), (4283948, "4.28MB"),
    (1_234_567, "1.23MB"), (67_108_864, "67.1MB"), (1_048_576, "1.05MB"), (999_999, "1e+03kB"),
    (5 * 10**9, "5GB"), (2.5e12, "2.5TB"), (3e15, "3PB"), (10**27, "1e+03YB"),
])
def test_human_size_prints_three_digits_as_docker_images(size: float, text: str) -> None:
    assert units.human_size(size) == text


@pytest.mark.parametrize(("size", "text"), [(1_048_576, "1.049MB"), (2_221_290, "2.221MB"), (512, "512B")])
def test_human_size_prints_four_digits_as_docker_pull_progress(size: int, text: str) -> None:
    assert units.human_size(size, 4) == text


# -- atomic writes --------------------------------------------------------------------------------


def test_atomic_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    atomic.atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    atomic.atomic_write(path, "text too")
    assert path.read_text() == "text too"
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left


def test_atomic_write_keeps_the_mode_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    atomic.atomic_write(path, b"{}", mode=0o600)
    assert path.stat().st_mode & 0o777 == 0o600


def test_atomic_write_fsyncs_the_file_and_its_directory(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic.write_json(tmp_path / "x.json", {"Running": True})
    assert len(synced) == 2
    assert Path(synced[0]).parent == tmp_path and Path(synced[0]).name.endswith(".tmp")  # the data first
    assert synced[1] == str(tmp_path)  # then the directory, after the rename
    assert atomic.read_json(tmp_path / "x.json") == {"Running": True}


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error"):
        atomic.atomic_write(path, b"new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_never_recreates_a_removed_directory(tmp_path: Path) -> None:
    """A monitor writing the state of a container removed meanwhile must not bring its directory back."""
    with pytest.raises(FileNotFoundError):
        atomic.atomic_write(tmp_path / "gone" / "state.json", b"{}")
    assert not (tmp_path / "gone").exists()


# -- digests --------------------------------------------------------------------------------------

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_digest_of_and_verify_digest() -> None:
    assert digests.digest_of(b"") == EMPTY
    assert digests.digest_of(b"", "sha512").startswith("sha512:cf83e135")
    digests.verify_digest(b"", EMPTY, "blob")
    digests.verify_digest(b"", digests.digest_of(b"", "sha512"), "blob")
    with pytest.raises(digests.DigestError, match=r"^layer: digest mismatch: expected sha256:e3b0"):
        digests.verify_digest(b"tampered", EMPTY, "layer")


@pytest.mark.parametrize("digest", [
    "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "A" * 64, "sha512:" + "a" * 64, "md5:" + "a" * 32,
    "sha384:" + "a" * 96, "SHA256:" + "a" * 64, "sha256:" + "a" * 64 + "\n", "sha256:../../etc/passwd", "",
    "sha256" + "a" * 64,
])
def test_a_malformed_digest_is_refused_before_anything_is_hashed(digest: str) -> None:
    with pytest.raises(digests.DigestError, match="invalid digest"):
        digests.check_digest(digest)
    with pytest.raises(digests.DigestError, match=r"^manifest: invalid digest"):
        digests.verify_digest(b"", digest, "manifest")


def test_check_digest_splits_a_valid_one() -> None:
    assert digests.check_digest(EMPTY) == ("sha256", EMPTY[7:])
    assert digests.check_digest("sha512:" + "0" * 128) == ("sha512", "0" * 128)


# -- the API contract -----------------------------------------------------------------------------


def test_the_daemon_and_the_client_speak_the_one_api_version() -> None:
    from minidocker.client import client
    from minidocker.daemon import server
    from minidocker.daemon.routes import system

    assert server.API_VERSION is system.API_VERSION is client.API_VERSION is api.API_VERSION
    assert server.default_socket is client.default_socket is api.default_socket
    assert tuple(map(int, api.MIN_API_VERSION.split("."))) <= tuple(map(int, api.API_VERSION.split(".")))


def test_default_socket_follows_the_run_directory(monkeypatch) -> None:
    monkeypatch.delenv("MINIDOCKER_RUN", raising=False)
    assert api.default_socket() == "/run/minidocker.sock"
    monkeypatch.setenv("MINIDOCKER_RUN", "/tmp/run-x")
    assert api.default_socket() == "/tmp/run-x/minidocker.sock"


@pytest.mark.parametrize("kernel", [True, False], ids=["openat2", "walk"])
def test_paths_inside_a_rootfs_are_resolved_inside_it(tmp_path, monkeypatch, kernel):
    """CVE-2014-9356's class: an image's symlinks (absolute, or ../ past its root) name host paths when
    followed from the host; resolved in the root (openat2's RESOLVE_IN_ROOT, or the walk of older
    kernels) they name the root's own files, and nothing is made outside it."""
    from minidocker.core import rootpath

    monkeypatch.setattr(rootpath, "_kernel_resolves", kernel)
    root, tag = tmp_path / "root", f"minidocker-pwned-{os.getpid()}-{kernel}"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    os.symlink(f"/tmp/{tag}-abs", root / "etc/hostname")
    os.symlink(f"../../../../../../../../tmp/{tag}-rel", root / "etc/hosts")
    os.symlink("/tmp", root / "link")
    os.symlink("loop", root / "loop")
    try:
        for name in ("/etc/hostname", "etc/hosts"):
            os.close(rootpath.open_in_root(root, name, os.O_WRONLY | os.O_CREAT))
        os.close(rootpath.mkdirs_in_root(root, f"/link/{tag}-dir/deep"))
        assert sorted(os.listdir(root / "tmp")) == [f"{tag}-abs", f"{tag}-dir", f"{tag}-rel"]
        assert (root / "tmp" / f"{tag}-dir" / "deep").is_dir()
        fd = rootpath.open_in_root(root, "/../../etc/hostname", os.O_RDONLY)
        try:
            assert os.path.realpath(rootpath.fd_path(fd)) == str(root / "tmp" / f"{tag}-abs")
        finally:
            os.close(fd)
        with pytest.raises(OSError):
            rootpath.open_in_root(root, "/loop/x")
    finally:
        leaked = [p for p in os.listdir("/tmp") if p.startswith(tag)]
        for name in leaked:
            path = os.path.join("/tmp", name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    assert leaked == []
