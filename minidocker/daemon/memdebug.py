"""Where the daemon's memory goes: tracemalloc snapshots on ``SIGUSR2``, for hunting what grows.

A daemon that runs for months must not keep anything of the containers it has removed. When its
RSS grows with the containers it ran (``python -m tests.bench soak`` shows it), the question is
which line allocated what is still held. Start it with Python's allocation tracing on
(``PYTHONTRACEMALLOC=25``, the frames kept per allocation) and send ``SIGUSR2``: it writes a
snapshot next to its socket (``RUN_DIR/tracemalloc-N.snap``) and logs the ten lines whose memory
grew most since the previous one (Docker's dockerd dumps its goroutines on ``SIGUSR1`` likewise).
Without tracing, nothing is installed and the signal keeps its default.

Example::

    # PYTHONTRACEMALLOC=25 minidockerd &
    # kill -USR2 $(cat /run/minidocker/minidockerd.pid)      # after 100 runs, then after 1000
    # grep tracemalloc /var/log/minidockerd.log
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tracemalloc
from pathlib import Path

__all__ = ["install"]

log = logging.getLogger("minidockerd")


def install(directory: Path) -> None:
    """On ``SIGUSR2``, snapshot and log the growth, if allocations are being traced; else nothing."""
    if not tracemalloc.is_tracing():
        return
    previous: list[tracemalloc.Snapshot] = []

    def dump() -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        path = directory / f"tracemalloc-{len(previous)}.snap"
        snapshot.dump(str(path))
        current, peak = tracemalloc.get_traced_memory()
        log.info("tracemalloc: %d KiB traced (peak %d KiB), snapshot %s", current >> 10, peak >> 10, path)
        if previous:
            for stat in snapshot.compare_to(previous[-1], "traceback")[:10]:
                log.info("tracemalloc: %+d KiB %+d blocks at %s", stat.size_diff >> 10, stat.count_diff,
                         " <- ".join(str(frame) for frame in stat.traceback[-6:][::-1]))
        previous[:] = [snapshot]

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)
