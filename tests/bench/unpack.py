"""Scenario ``unpack``: a layer tar unpacked on tmpfs by chapter 04's ``untar.unpack`` and by GNU tar.

Where only the CPU counts (tmpfs: no disk), how fast does the engine turn a layer into files?
One uncompressed tar of big files (10 MB of random bytes) and many small ones (5 KB), generated
from a seed, is unpacked into an empty directory on a private tmpfs:

* minidocker: ``untar.unpack`` (every member checked and opened safely under the root, the tar
  hashed on the way, as a pull does), in a fresh interpreter, its start included;
* GNU tar: ``tar -xf TAR -C DIR`` (as root: owners, modes and times restored too).

The directory is emptied after each run, outside the timing. The table gives seconds; the notes
give throughput (MB of file content per second).

Example::

    .venv/bin/python -m tests.bench unpack --runs 5
"""

from __future__ import annotations

import io
import os
import random
import shutil
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tests.bench.context import Context
from tests.bench.report import Table
from tests.bench.timing import Contender, alternate, command

__all__ = ["unpack"]

BIG, BIG_SIZE = 20, 10 << 20
SMALL, SMALL_SIZE = 5000, 5 << 10
UNPACK = ("import sys; from minidocker.overlay import untar; "
          "untar.unpack(open(sys.argv[1], 'rb', buffering=0), sys.argv[2])")


def make_tar(path: Path, seed: int = 4) -> int:
    """The layer: BIG big files and SMALL small ones in 50 directories; returns the content bytes."""
    rng = random.Random(seed)
    total = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in range(50):
            info = tarfile.TarInfo(f"usr/share/d{d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(info)
        for i in range(BIG + SMALL):
            size = BIG_SIZE if i < BIG else SMALL_SIZE
            data = rng.randbytes(size)
            info = tarfile.TarInfo(f"usr/share/d{i % 50}/f{i}")
            info.size, info.mode, info.mtime = size, 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
            total += size
    return total


def unpack(ctx: Context, runs: int, warmup: int, only: Sequence[str]) -> list[Table]:
    """Unpack the generated layer with ``untar.unpack`` and with GNU tar, on a private tmpfs."""
    from minidocker.core import syscalls

    place = ctx.base / "unpack"
    place.mkdir()
    syscalls.mount("mdbench", str(place), "tmpfs", 0, "mode=0700")  # the sandbox's mount namespace
    tar_path, dest = place / "layer.tar", place / "out"
    ctx.say("generating the layer tar")
    content = make_tar(tar_path)

    def fresh() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()

    rows = []
    if not only or "minidocker" in only:
        rows.append(Contender("minidocker", "minidocker `untar.unpack` (ch. 04)",
                              command([sys.executable, "-c", UNPACK, str(tar_path), str(dest)], before=fresh),
                              ours=True, shown="python -c 'untar.unpack(open(TAR), DIR)'"))
    if not only or "tar" in only:
        rows.append(Contender("tar", "GNU tar", command(["tar", "-xf", str(tar_path), "-C", str(dest)],
                                                        before=fresh), shown="tar -xf TAR -C DIR"))
    series = alternate(rows, runs, warmup, ctx.say)
    shutil.rmtree(dest, ignore_errors=True)
    os.unlink(tar_path)
    speeds = ", ".join(f"{s.contender.key} {content / s.median / 1e6:.0f} MB/s" for s in series if s.ok)
    notes = [f"the layer: {BIG} files of {BIG_SIZE >> 20} MiB and {SMALL} of {SMALL_SIZE >> 10} KiB "
             f"({content / 1e6:.0f} MB of content, {os.cpu_count()} cores), unpacked on a private tmpfs; "
             f"minidocker's time includes its interpreter's start",
             f"throughput: {speeds or 'none'}"]
    return [Table("8", "Layer unpack on tmpfs", "s", series, runs, warmup, notes, scale=1.0)]
