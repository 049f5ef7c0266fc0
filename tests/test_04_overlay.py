"""Chapter 04: the layer store, safe unpacking, overlayfs container filesystems, diff and commit."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import zstandard

from minidocker import rootfs
from minidocker.core import paths as _paths
from minidocker.core.process import EngineError
from minidocker.core.spec import ContainerSpec
from minidocker.namespaces import stage as namespaces
from minidocker.overlay import tar as _tar
from minidocker.overlay.changes import commit, diff
from minidocker.overlay.layers import LayerError, LayerStore, import_rootfs
from minidocker.overlay.stage import ContainerFS, mount_overlay

KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


def entry(name: str, kind: str = "file", data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = KINDS[kind]
    info.mode = 0o755 if kind == "dir" else 0o644
    info.size = len(data) if kind == "file" else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def stored(store: LayerStore) -> list[str]:
    """Everything in the store besides its empty skeleton."""
    return sorted(str(p.relative_to(store.root)) for sub in ("sha256", "l", "containers", ".tmp")
                  for p in (store.root / sub).iterdir())


def snapshot(root: Path) -> dict[str, tuple]:
    """A comparable picture of a tree: type, mode, owner, content, link target, times, xattrs."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            st = os.lstat(path)
            item: tuple = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISREG(st.st_mode):
                item += (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_nlink)
            elif stat.S_ISLNK(st.st_mode):
                item += (os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                item += (st.st_mtime_ns,)
            names = sorted(os.listxattr(path, follow_symlinks=False))
            item += (tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names),)
            found[str(path.relative_to(root))] = item
    return found


@pytest.fixture(scope="session")
def busybox_tar() -> Path:
    return rootfs.busybox_tar()


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "layers")


@pytest.fixture
def base(store: LayerStore, busybox_tar: Path) -> str:
    """The busybox image's one layer, in the test's store."""
    return import_rootfs(store, busybox_tar)


def run_in(fs: ContainerFS, script: str) -> int:
    """Run ``sh -c script`` in a container whose root is ``fs`` (mounted here, in this process)."""
    spec = ContainerSpec(rootfs=str(fs.mount()), argv=["/bin/sh", "-c", script],
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return namespaces.run(spec)


# --- the layer store ---------------------------------------------------------------------------

def test_plain_gzip_and_zstd_give_one_layer_named_by_the_uncompressed_tar(store, tmp_path):
    plain = tar_bytes(entry("etc/", "dir"), entry("etc/motd", data=b"hello\n"))
    expected = "sha256:" + hashlib.sha256(plain).hexdigest()
    ids = {store.add(write(tmp_path / "l.tar", plain)),
           store.add(write(tmp_path / "l.tar.gz", gzip.compress(plain))),
           store.add(write(tmp_path / "l.tar.zst", zstandard.ZstdCompressor().compress(plain))),
           store.add(io.BytesIO(gzip.compress(plain)), compression="gzip")}
    assert ids == {expected}
    assert store.layers() == [expected]
    assert (store.path(expected) / "etc/motd").read_bytes() == b"hello\n"
    assert store.size(expected) == 6 and os.readlink(store.root / store.link(expected)).endswith("/diff")


def test_a_layer_streams_from_a_pipe(store, tmp_path):
    """A registry download is a stream that cannot seek: the store reads it once, in order."""
    plain = tar_bytes(entry("big", data=os.urandom(3 << 20)), entry("small", data=b"x"))
    with subprocess.Popen(["gzip", "-c", write(tmp_path / "l.tar", plain)], stdout=subprocess.PIPE) as gz:
        diff_id = store.add(gz.stdout)
    assert diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (store.path(diff_id) / "big").stat().st_size == 3 << 20


class Trickle(io.RawIOBase):
    """A stream that hands out its bytes in pieces of odd sizes, as a pipe may."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.sizes = data, 0, [1, 511, 513, 70000, 1 << 20, 3]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.sizes[self.at % len(self.sizes)], len(self.data) - self.at)
        buffer[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def test_headers_are_read_as_tarfile_reads_them():
    """The unpack parses plain headers itself and leaves the rest to tarfile: members come out the same."""
    from minidocker.overlay import untar

    big = os.urandom((1 << 20) - 700)  # headers that straddle the reader's 1 MiB blocks
    members = [entry("d/", "dir"), entry("d/big", data=big), entry("d/" + "p" * 120 + "/x", data=b"x"),
               entry("l" * 120, data=b"long"), entry("d/\u00e9t\u00e9", data=b"utf-8"),
               entry("d/s", "symlink", linkname="big"), entry("d/h", "hardlink", linkname="d/big"),
               entry("old/", data=b"", type=tarfile.AREGTYPE), entry("d/after", data=big[:5000]),
               entry("x", data=b"xattr", pax_headers={"SCHILY.xattr.user.a": "1"}),
               entry("big-id", uid=1 << 30, gid=5), entry("t", data=b"t", mtime=1700000000.5)]
    archives = {}
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
            for info, data in members:
                with contextlib.suppress(ValueError):  # ustar cannot hold some of them
                    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        archives[fmt] = buffer.getvalue()
    buffer = io.BytesIO()  # a global header: it applies to every member after it (tarfile's job)
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "7"}) as tar:
        for info, data in members[:4]:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    archives["global"] = buffer.getvalue()

    class Counted(tarfile.TarFile):
        calls = 0

        def next(self):
            Counted.calls += 1
            return super().next()

    def seen(tar, next_member):
        found = []
        while (member := next_member(tar)) is not None:
            found.append((member.name, member.get_info(), member.offset, member.offset_data,
                          member.pax_headers))
        return found

    for fmt, data in archives.items():
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            expected = seen(tar, tarfile.TarFile.next)
        reader = _tar.HashingReader(io.BufferedReader(Trickle(data), 4096))
        Counted.calls = 0
        with Counted.open(fileobj=reader, mode="r:") as tar:
            assert seen(tar, untar._next_member) == expected, fmt
        reader.drain()
        assert reader.diff_id() == "sha256:" + hashlib.sha256(data).hexdigest()
        assert len(expected) >= 4
        if fmt == tarfile.USTAR_FORMAT:  # all plain: tarfile reads the first (in open) and the end
            assert Counted.calls == 3


def test_a_wrong_diff_id_is_refused_and_nothing_is_kept(store, tmp_path):
    path = write(tmp_path / "l.tar", tar_bytes(entry("x", data=b"x")))
    with pytest.raises(LayerError, match="does not match"):
        store.add(path, expected_diff_id="sha256:" + "0" * 64)
    assert stored(store) == []


def test_a_corrupt_layer_is_refused_and_nothing_is_kept(store, tmp_path):
    good = gzip.compress(tar_bytes(entry("a", data=os.urandom(100000)), entry("b", data=b"b")))
    for bad in (good[: len(good) // 2], b"\x1f\x8bnot gzip at all", b"plain garbage" * 100):
        with pytest.raises(LayerError):
            store.add(io.BytesIO(bad))
    assert stored(store) == []


def test_ownership_modes_times_xattrs_and_links_are_kept(store, tmp_path):
    mtime = "1700000000.123456789"
    layer = tar_bytes(
        entry("d/", "dir", mode=0o1750, uid=1000, gid=1001, pax_headers={"mtime": mtime}),
        entry("d/suid", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        entry("d/owned", data=b"mine", uid=1234, gid=5678, mode=0o600, pax_headers={"mtime": mtime}),
        entry("d/cap", data=b"ping", pax_headers={"SCHILY.xattr.security.capability":
                                                   bytes.fromhex("0100000200200000000000000000000000000000")
                                                   .decode("utf-8", "surrogateescape"),
                                                   "SCHILY.xattr.user.note": "kept"}),
        entry("d/link", "symlink", linkname="/etc/passwd", uid=42, gid=43),
        entry("d/hard", "hardlink", linkname="d/owned"),
        entry("d/fifo", "fifo", mode=0o640),
    )
    diff_id = store.add(write(tmp_path / "l.tar", layer))
    d = store.path(diff_id) / "d"
    st = d.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o1750, 1000, 1001,
                                                                                1700000000123456789)
    assert stat.S_IMODE((d / "suid").stat().st_mode) == 0o4755
    owned = (d / "owned").stat()
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode), owned.st_mtime_ns) == (
        1234, 5678, 0o600, 1700000000123456789)
    assert os.getxattr(d / "cap", "security.capability")[:4] == bytes.fromhex("01000002")
    assert os.getxattr(d / "cap", "user.note") == b"kept"
    assert os.readlink(d / "link") == "/etc/passwd" and os.lstat(d / "link").st_uid == 42
    assert (d / "hard").stat().st_ino == owned.st_ino
    assert stat.S_ISFIFO((d / "fifo").lstat().st_mode)


def test_oci_whiteouts_become_overlayfs_whiteouts(store, tmp_path):
    layer = tar_bytes(entry("etc/", "dir"), entry("etc/.wh.group"), entry("var/", "dir"),
                      entry("var/.wh..wh..opq"), entry("var/new", data=b"n"),
                      entry("x", data=b"x", pax_headers={"SCHILY.xattr.trusted.overlay.redirect": "/etc"}))
    root = store.path(store.add(write(tmp_path / "l.tar", layer)))
    group = os.lstat(root / "etc/group")
    assert stat.S_ISCHR(group.st_mode) and group.st_rdev == 0
    assert os.getxattr(root / "var", "trusted.overlay.opaque") == b"y"
    assert not (root / "var/.wh..wh..opq").exists() and (root / "var/new").exists()
    assert "trusted.overlay.redirect" not in os.listxattr(root / "x")  # a layer may not forge these


def test_layers_are_removed_only_when_nobody_holds_them(store, base):
    store.ref(base, "image:busybox")
    fs = ContainerFS.create(store, "c1", [base])
    assert store.holders(base) == {"image:busybox", "container:c1"}
    store.unref(base, "image:busybox")
    assert store.remove_unused() == [] and store.has(base)
    fs.remove()
    assert store.remove_unused() == [base]
    assert stored(store) == []


def test_concurrent_adds_of_one_layer_store_it_once(store, busybox_tar):
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.add(busybox_tar))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert len(store.layers()) == 1 and not list((store.root / ".tmp").iterdir())
    assert len(list((store.root / "l").iterdir())) == 1


# --- hostile layers ------------------------------------------------------------------------------

def hostile(outside: Path) -> dict[str, list]:
    """Members that try to write, link or plant something outside the layer (``outside``: a victim)."""
    link_out = entry("s", "symlink", linkname=str(outside))
    return {
        # a layer is unpacked in LAYERS/.tmp/<random>/diff: four levels up is the victim's parent
        "dotdot": [entry("../../../../outside/evil", data=b"x")],
        "dotdot inside a path": [entry("a/", "dir"), entry("a/../../../../../outside/evil", data=b"x")],
        "absolute": [entry(str(outside / "evil"), data=b"x")],
        "symlink then write": [link_out, entry("s/evil", data=b"x")],
        "relative symlink then write": [entry("up", "symlink", linkname="../../../../../../.."),
                                        entry(f"up{outside}/evil", data=b"x")],
        "symlink then directory": [link_out, entry("s/sub/", "dir")],
        # the unpack keeps walked directories open (untar.Parents): one replaced must be walked again
        "directory replaced by a symlink, then written through": [
            entry("s/", "dir"), entry("s/sub/", "dir"), entry("s/sub/f", data=b"x"), link_out,
            entry("s/sub/evil", data=b"x")],
        "hard link out": [entry("hl", "hardlink", linkname="../../../../outside/secret")],
        "hard link absolute": [entry("hl", "hardlink", linkname=str(outside / "secret"))],
        "hard link through a symlink": [link_out, entry("hl", "hardlink", linkname="s/secret")],
        "whiteout through a symlink": [link_out, entry("s/.wh.secret")],
        "opaque through a symlink": [link_out, entry("s/.wh..wh..opq")],
        "whiteout of the parent": [entry("a/", "dir"), entry("a/.wh..")],
        "character device": [entry("null", "chr", devmajor=1, devminor=3)],
        "block device": [entry("disk", "blk", devmajor=8, devminor=0)],
    }


CASES = sorted(hostile(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_hostile_layer_is_refused_and_leaves_nothing(case, store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret\n")
    entries = hostile(outside)[case]
    layer = write(tmp_path / "hostile.tar", tar_bytes(*entries))
    before = snapshot(outside)
    with pytest.raises(LayerError, match="layer refused") as refused:
        store.add(layer)
    if "symlink" in case:
        assert "goes through the symlink" in str(refused.value)
    with pytest.raises(LayerError, match="layer refused"):  # the half-unpacked layer goes too
        store.add(io.BytesIO(gzip.compress(tar_bytes(entry("good/", "dir"), entry("good/x", data=b"ok"),
                                                     *entries))))
    assert stored(store) == []
    assert snapshot(outside) == before and (outside / "secret").read_text() == "secret\n"
    assert os.stat(outside / "secret").st_nlink == 1


def test_a_negative_size_is_refused(store, tmp_path):
    """A size of -1 (a PAX record can say so) would pour the rest of the tar into one file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info, _ = entry("pour", size=-1)
        tar.addfile(info)
        for info, data in (entry("etc/", "dir"), entry("etc/passwd", data=b"root::0:0::/:/bin/sh\n")):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    with pytest.raises(LayerError, match="'pour' has a negative size"):
        store.add(write(tmp_path / "l.tar", buffer.getvalue()))
    assert stored(store) == []


def test_replacing_a_symlink_by_a_file_does_not_write_through_it(store, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    layer = tar_bytes(entry("f", "symlink", linkname=str(victim)), entry("f", data=b"replaced\n"))
    root = store.path(store.add(io.BytesIO(layer)))
    assert (root / "f").read_text() == "replaced\n" and not (root / "f").is_symlink()
    assert victim.read_text() == "untouched\n"


def test_hostile_layer_through_the_stage_is_one_line(stage, tmp_path):
    layer = write(tmp_path / "evil.tar", tar_bytes(entry("../evil", data=b"x")))
    result = stage("overlay", "--layer", str(layer), "--", "/bin/true")
    assert result.returncode == 125
    assert result.stderr == ("minidocker: layer refused: member '../evil' leaves the layer "
                             "('..' in its path)\n")


# --- container filesystems -------------------------------------------------------------------------

def test_writes_land_in_the_upper_layer_and_never_in_a_lower_one(store, base):
    before = snapshot(store.path(base))
    fs = ContainerFS.create(store, "c1", [base])
    try:
        assert run_in(fs, "echo hi > /hello && echo more >> /etc/passwd && chmod 600 /etc/group") == 0
        assert (fs.merged / "hello").read_text() == "hi\n"
        assert (fs.upper / "hello").read_text() == "hi\n"
        assert (fs.upper / "etc/passwd").read_text().endswith("more\n")  # copied up, then changed
        assert not (fs.upper / "bin").exists()  # untouched directories are not copied
    finally:
        fs.remove()
    assert snapshot(store.path(base)) == before
    assert not fs.dir.exists() and store.holders(base) == set()


def test_two_containers_on_the_same_layers_do_not_see_each_others_writes(store, base):
    one, two = ContainerFS.create(store, "one", [base]), ContainerFS.create(store, "two", [base])
    try:
        assert run_in(one, "echo one > /etc/motd") == 0
        assert run_in(two, "test ! -e /etc/motd && echo two > /etc/motd") == 0
        assert (one.merged / "etc/motd").read_text() == "one\n"
        assert (two.merged / "etc/motd").read_text() == "two\n"
        assert not (store.path(base) / "etc/motd").exists()
    finally:
        one.remove()
        two.remove()


def test_deleting_a_lower_file_leaves_a_whiteout_and_the_layer_intact(store, base):
    fs = ContainerFS.create(store, "c1", [base])
    try:
        assert run_in(fs, "rm /etc/group && test ! -e /etc/group") == 0
        whiteout = os.lstat(fs.upper / "etc/group")
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
        assert (store.path(base) / "etc/group").is_file()
        assert diff(fs) == [("C", "/etc"), ("D", "/etc/group")]
    finally:
        fs.remove()


def test_commit_stacked_on_the_image_reproduces_the_containers_view(store, base, tmp_path):
    data = store.add(io.BytesIO(tar_bytes(
        entry("data/", "dir"), entry("data/a", data=b"a"), entry("data/b", data=b"b"),
        entry("data/sub/", "dir"), entry("data/sub/old", data=b"old"), entry("data/gone/", "dir"),
        entry("data/gone/x", data=b"x"), entry("data/keep", data=b"keep"))))
    script = ("echo added > /new && mkdir -p /newdir/deep && echo n > /newdir/deep/f"
              " && echo changed >> /data/b && rm /data/a && rm -rf /data/gone"
              " && rm -rf /data/sub && mkdir /data/sub && echo fresh > /data/sub/new"  # an opaque dir
              " && chmod 4711 /data/keep && chown 1000:1000 /new && ln -s /new /data/link"
              " && ln /new /data/hardlink && mkfifo /data/fifo")
    fs = ContainerFS.create(store, "c1", [base, data])
    try:
        assert run_in(fs, script) == 0
        os.setxattr(fs.merged / "data/b", "user.note", b"set from outside")
        assert os.getxattr(fs.upper / "data/sub", "trusted.overlay.opaque") == b"y"
        assert ("D", "/data/sub/old") in diff(fs) and ("D", "/data/gone") in diff(fs)
        view = snapshot(fs.merged)
        layer = commit(fs, store, tar_path=tmp_path / "layer.tar")
        with tarfile.open(layer.tar) as tar:
            members = tar.getmembers()
        assert {"data/.wh.a", "data/.wh.gone", "data/sub/.wh..wh..opq", "new"} <= {m.name for m in members}
        assert not any("trusted.overlay" in key for m in members for key in m.pax_headers)
        again = ContainerFS.create(store, "c2", [base, data, layer.diff_id])
        try:
            assert snapshot(again.mount()) == view
            assert diff(again) == []
        finally:
            again.remove()
    finally:
        fs.remove()


def test_a_container_that_changed_nothing_commits_an_empty_layer(store, base, tmp_path):
    """A commit of no change is a tar of only its end: the unpack reads no member, seeks nowhere back."""
    from minidocker.overlay import untar

    fs = ContainerFS.create(store, "c1", [base])
    try:
        layer = commit(fs, store, tar_path=tmp_path / "layer.tar")
    finally:
        fs.remove()
    data = layer.tar.read_bytes()
    with tarfile.open(layer.tar) as tar:
        assert tar.getmembers() == []
    assert os.listdir(store.path(layer.diff_id)) == []
    (tmp_path / "empty").mkdir()
    reader = _tar.HashingReader(io.BufferedReader(Trickle(data), 4096))
    assert untar.unpack(reader, tmp_path / "empty") == 0
    reader.drain()
    assert reader.diff_id() == layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path / "empty") == []


def test_commit_never_follows_a_directory_swapped_for_a_host_symlink(store, base, tmp_path, monkeypatch):
    """CVE-2018-15664's class: between the walk's listing of the upper directory and its reading of
    /data, the container makes /data a symlink to a host directory. The layer holds /data's own files
    (read through the descriptor opened before the swap) and nothing of the host's."""
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "marker").write_text("host only\n")
    fs = ContainerFS.create(store, "c1", [base])
    try:
        (fs.upper / "data").mkdir()
        (fs.upper / "data/inside").write_text("the container's\n")
        real_scandir, calls, swapped = os.scandir, [], []

        def swap_then_scandir(path):  # the first listing is the upper directory's; then the swap
            if calls and not swapped:
                os.rename(fs.upper / "data", fs.dir / "moved-away")
                os.symlink(str(host), fs.upper / "data")
                swapped.append(True)
            calls.append(path)
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", swap_then_scandir)
        layer = commit(fs, store, tar_path=tmp_path / "layer.tar")
        monkeypatch.undo()
        assert swapped, "the walk never listed a second directory: the swap did not happen"
        with tarfile.open(layer.tar) as tar:
            names = {m.name for m in tar.getmembers()}
            contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isreg())
        assert b"host only" not in contents and "data/marker" not in names, names
    finally:
        fs.remove()


def test_diff_tells_added_from_changed(store, base):
    fs = ContainerFS.create(store, "c1", [base])
    try:
        assert run_in(fs, "touch /etc/passwd /etc/new; mkdir /opt; rm -r /home") == 0
        assert diff(fs) == [("C", "/etc"), ("A", "/etc/new"), ("C", "/etc/passwd"), ("D", "/home"),
                            ("A", "/opt")]
    finally:
        fs.remove()


def test_sixty_layers_and_more_mount_and_run(stage, tmp_path, busybox_tar):
    layers = []
    for i in range(70):
        path = write(tmp_path / f"{i}.tar", tar_bytes(entry(f"layers/{i:02}", data=b"x")))
        layers += ["--layer", str(path)]
    result = stage("overlay", *layers, str(busybox_tar), "--", "/bin/sh", "-c", "ls /layers | wc -l")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "70"
    store = LayerStore()
    full_paths = ":".join(str(store.path(d)) for d in store.layers())
    assert len(full_paths) > 4096  # absolute paths would not have fitted in the mount options


def test_too_many_layers_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="too many layers"):
        mount_overlay(tmp_path, [f"l/{i:012}" for i in range(300)], tmp_path / "u", tmp_path / "w",
                      base=tmp_path)


def test_a_repeated_layer_is_mounted_once(store, base, tmp_path):
    other = store.add(io.BytesIO(tar_bytes(entry("etc/motd", data=b"other\n"))))
    fs = ContainerFS.create(store, "c1", [base, other, base])
    try:
        assert (fs.mount() / "bin/busybox").exists() and (fs.merged / "etc/motd").exists()
    finally:
        fs.remove()


def test_missing_mount_points_go_to_the_init_layer_not_the_diff(store, tmp_path, busybox_tar):
    """An image without /proc, /sys, /dev or /etc/hosts: the engine's mount points are no change."""
    bare = io.BytesIO()
    with tarfile.open(busybox_tar) as source, tarfile.open(fileobj=bare, mode="w") as tar:
        for member in source:
            if member.name.split("/")[0] not in ("proc", "sys", "dev") and member.name not in (
                    "etc/hosts", "etc/hostname", "etc/resolv.conf"):
                tar.addfile(member, source.extractfile(member) if member.isreg() else None)
    fs = ContainerFS.create(store, "c1", [store.add(io.BytesIO(bare.getvalue()))])
    try:
        assert run_in(fs, "test -d /proc/self && test -f /etc/hosts") == 0
        assert diff(fs) == []
        assert sorted(os.listdir(fs.init)) == ["dev", "etc", "proc", "sys"]
    finally:
        fs.remove()


# --- the stage ---------------------------------------------------------------------------------------

def test_stage_runs_a_tarball_image_and_cleans_up(stage, busybox_tar):
    result = stage("overlay", "--layer", str(busybox_tar), "--", "/bin/sh", "-c",
                   "echo hi > /hello; cat /hello; grep -c overlay /proc/mounts")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["hi", "1"]
    assert list((LayerStore().root / "containers").iterdir()) == []
    assert stage("overlay", "--layer", str(busybox_tar), "--", "/bin/sh", "-c", "exit 3").returncode == 3
    missing = stage("overlay", "--layer", str(busybox_tar), "--", "nope")
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    assert list((LayerStore().root / "containers").iterdir()) == []


def test_stage_rootfs_directory_is_the_bottom_layer_and_stays_untouched(stage, rootfs):
    result = stage("overlay", "--hostname", "box", rootfs, "--", "/bin/sh", "-c",
                   "touch /etc/written-by-04 && hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "box\n"
    assert not os.path.exists(os.path.join(rootfs, "etc/written-by-04"))


def test_stage_keep_then_diff_and_commit(stage, busybox_tar, tmp_path):
    result = stage("overlay", "--keep", "--layer", str(busybox_tar), "--", "/bin/sh", "-c",
                   "echo hi > /hello; rm /etc/group")
    assert result.returncode == 0
    container = result.stderr.split()[-1]
    try:
        changes = stage("overlay.changes", "diff", container)
        assert changes.stdout == "C /etc\nD /etc/group\nA /hello\n"
        committed = stage("overlay.changes", "commit", container)
        diff_id = committed.stdout.strip()
        assert committed.returncode == 0 and diff_id.startswith("sha256:"), committed.stderr
        check = stage("overlay", "--layer", str(busybox_tar), "--layer", diff_id, "--", "/bin/sh", "-c",
                      "cat /hello; test -e /etc/group || echo no group")
        assert check.stdout == "hi\nno group\n", check.stderr
    finally:
        assert stage("overlay.changes", "rm", container).returncode == 0


def test_stage_errors_are_one_line(stage, tmp_path):
    cases = {("--", "/bin/true"): "no image",
             ("--layer", "", "--", "/bin/true"): "no path given",
             ("--layer", str(tmp_path / "nope.tar"), "--", "/bin/true"): "no such file or directory",
             ("--layer", "sha256:" + "1" * 64, "--", "/bin/true"): "is not in the store"}
    for args, message in cases.items():
        result = stage("overlay", *args)
        assert result.returncode == 125 and message in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def test_userns_container_writes_its_own_files_into_the_upper_layer(stage, busybox_tar):
    result = stage("overlay", "--userns", "--keep", "--layer", str(busybox_tar), "--", "/bin/sh", "-c",
                   "touch /tmp/mine && id -u && touch /etc/x")
    container = result.stderr.split()[-1]
    try:
        assert result.stdout == "0\n" and "Permission denied" in result.stderr
        assert os.stat(LayerStore().root / "containers" / container / "upper/tmp/mine").st_uid == 100000
    finally:
        assert stage("overlay.changes", "rm", container).returncode == 0


def test_import_of_a_directory_and_of_its_tar(store, tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/conf").write_text("x=1\n")
    (tree / "etc/conf").chmod(0o640)
    os.chown(tree / "etc/conf", 1000, 1000)
    (tree / "bin").mkdir()
    (tree / "bin/tool").write_bytes(os.urandom(5000))
    os.link(tree / "bin/tool", tree / "bin/alias")
    (tree / "bin/sh").symlink_to("/bin/tool")
    from_dir = import_rootfs(store, tree)
    assert import_rootfs(store, tree) == from_dir and store.layers() == [from_dir]  # same bytes
    subprocess.run(["tar", "-C", str(tree), "-cf", str(tmp_path / "tree.tar"), "."], check=True)
    from_tar = import_rootfs(store, tmp_path / "tree.tar")

    def drop_times(view: dict[str, tuple]) -> dict[str, tuple]:
        return {k: tuple(x for x in v if not (isinstance(x, int) and x > 10**15)) for k, v in view.items()}

    assert drop_times(snapshot(store.path(from_dir))) == drop_times(snapshot(store.path(from_tar)))
    layer = store.path(from_dir)
    assert (layer / "bin/alias").stat().st_ino == (layer / "bin/tool").stat().st_ino  # a hard link
    assert _paths.state_dir() != store.root.parent  # the test's own store, not the run's



@pytest.fixture
def settled_tree(tmp_path, monkeypatch):
    """A small tree whose last change is older than ``SETTLED_SECONDS`` (made shorter for the test)."""
    monkeypatch.setattr(_tar, "SETTLED_SECONDS", 0.2)
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin/tool").write_bytes(b"version 1")
    (tree / "bin/other").write_bytes(b"other tool")
    (tree / "bin/sh").symlink_to("tool")
    time.sleep(0.3)
    return tree


def packs(monkeypatch) -> list[Path]:
    """Record every pack_tree call from now on."""
    calls, real = [], _tar.pack_tree
    monkeypatch.setattr(_tar, "pack_tree", lambda root, out: (calls.append(Path(root)), real(root, out))[1])
    return calls


def test_an_unchanged_directory_is_packed_only_once(store, settled_tree, monkeypatch):
    """Its diff ID is remembered under its fingerprint: a second import only refs the layer."""
    calls = packs(monkeypatch)
    first = import_rootfs(store, settled_tree, holder="image:a")
    assert len(calls) == 2  # digest, then add
    assert import_rootfs(store, settled_tree, holder="image:b") == first and len(calls) == 2
    assert store.holders(first) == {"image:a", "image:b"}
    # a content change that keeps size and mtime: only the ctime tells, and it does
    old = os.lstat(settled_tree / "bin/tool")
    (settled_tree / "bin/tool").write_bytes(b"version 2")
    os.utime(settled_tree / "bin/tool", ns=(old.st_atime_ns, old.st_mtime_ns))
    time.sleep(0.3)
    second = import_rootfs(store, settled_tree)
    assert second != first and (store.path(second) / "bin/tool").read_bytes() == b"version 2"
    assert len(calls) == 4
    # the record goes when its layer does; the directory is then packed again
    store.unref(first, "image:a"), store.unref(first, "image:b")
    assert set(store.remove_unused()) == {first, second} and list((store.root / "trees").iterdir()) == []
    assert import_rootfs(store, settled_tree) == second and len(calls) == 6


def test_an_unchanged_tar_is_read_only_once(store, settled_tree, tmp_path, monkeypatch):
    """``--layer big.tar`` on every start: the tar is hashed once, then known by one stat(2)."""
    tar = tmp_path / "layer.tar"
    with open(tar, "wb") as out:
        _tar.pack_tree(settled_tree, out)
    time.sleep(0.3)
    digests, real = [], _tar.tar_digest
    monkeypatch.setattr(_tar, "tar_digest", lambda path: (digests.append(path), real(path))[1])
    first = import_rootfs(store, tar, holder="image:a")
    assert import_rootfs(store, tar, holder="image:b") == first and len(digests) == 1
    assert store.holders(first) == {"image:a", "image:b"}
    old = os.stat(tar)
    (settled_tree / "bin/other").write_bytes(b"OTHER TOOL")
    with open(tar, "wb") as out:  # the same file, size and mtime, other bytes: the ctime tells
        _tar.pack_tree(settled_tree, out)
    os.utime(tar, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (os.stat(tar).st_ino, os.stat(tar).st_size) == (old.st_ino, old.st_size)
    time.sleep(0.3)
    second = import_rootfs(store, tar)
    assert second != first and len(digests) == 2


@pytest.mark.parametrize("change", ["content", "chmod", "chown", "xattr", "swap", "link", "retarget", "add"])
def test_every_change_to_a_directory_changes_its_fingerprint(settled_tree, change):
    before = _tar.tree_fingerprint(settled_tree)
    assert before is not None and _tar.tree_fingerprint(settled_tree) == before
    tool = settled_tree / "bin/tool"
    if change == "content":  # same size, mtime set back
        old = os.lstat(tool)
        tool.write_bytes(b"version 2")
        os.utime(tool, ns=(old.st_atime_ns, old.st_mtime_ns))
    elif change == "chmod":
        tool.chmod(0o700)
    elif change == "chown":
        os.chown(tool, 1000, 1000)
    elif change == "xattr":
        os.setxattr(tool, "user.note", b"x")
    elif change == "swap":  # two names trade places: same names, same sizes
        (settled_tree / "bin/other").write_bytes(b"version 1")
        time.sleep(0.3)
        before = _tar.tree_fingerprint(settled_tree)
        os.rename(tool, settled_tree / "bin/x")
        os.rename(settled_tree / "bin/other", tool)
        os.rename(settled_tree / "bin/x", settled_tree / "bin/other")
    elif change == "link":  # a hard link from outside the tree: the tar's link members can change
        os.link(tool, settled_tree.parent / "outside")
    elif change == "retarget":  # a symlink replaced by one of the same length
        (settled_tree / "bin/sh").unlink()
        (settled_tree / "bin/sh").symlink_to("tooL")
    elif change == "add":
        (settled_tree / "bin/new").touch()
    assert _tar.tree_fingerprint(settled_tree) is None  # too fresh to trust
    time.sleep(0.3)
    after = _tar.tree_fingerprint(settled_tree)
    assert after is not None and after != before


def test_a_directory_that_just_changed_is_not_remembered(store, tmp_path):
    """A change younger than a filesystem's clock tick could hide another one: always pack it."""
    tree = tmp_path / "fresh"
    tree.mkdir()
    (tree / "file").write_text("x")
    assert _tar.tree_fingerprint(tree) is None
    import_rootfs(store, tree)
    assert list((store.root / "trees").iterdir()) == []


def test_a_killed_engines_filesystem_is_removed_at_once_by_its_watchdog(busybox_tar):
    """SIGKILL leaves the engine no time to clean up: its watchdog unmounts and removes the filesystem."""
    containers = LayerStore().root / "containers"
    command = [sys.executable, "-m", "minidocker.overlay", "--layer", str(busybox_tar), "--", "/bin/sh", "-c",
               "echo ready; exec sleep 30"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as engine:
        assert engine.stdout.readline() == "ready\n"
        (orphan,) = containers.iterdir()
        assert os.path.ismount(orphan / "merged")
        engine.kill()
    deadline = time.monotonic() + 5
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not orphan.exists() and list(containers.iterdir()) == []
    assert not os.path.ismount(orphan / "merged")


def test_an_abandoned_filesystem_is_removed_by_the_next_run_once_its_container_is_gone(stage, busybox_tar):
    """Should its watchdog die too, the next run removes it: only once its engine *and* container are."""
    store = LayerStore()
    fs = ContainerFS.create(store, "abandoned", [import_rootfs(store, busybox_tar)])
    fs.mount()
    fs.claim(os.getpid())  # engine, then container: both this process, alive
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = (fs.dir / "engine").read_text().splitlines()[1]
    (fs.dir / "engine").write_text(f"{dead.pid} 1\n{alive}\n")  # the engine died, its container lives
    assert ContainerFS.remove_abandoned(store) == [] and fs.mounted()
    (fs.dir / "engine").write_text(f"{dead.pid} 1\n{dead.pid} 2\n")  # both dead
    assert stage("overlay", "--layer", str(busybox_tar), "--", "/bin/true").returncode == 0
    assert not fs.dir.exists() and list((store.root / "containers").iterdir()) == []
