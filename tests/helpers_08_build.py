"""Chapter 08's build fixtures, shared with the tests of later chapters that build through the daemon.

``busybox`` is built by the builder itself (``FROM scratch`` + ``ADD busybox.tar``); ``run_network``
gives a test module its own bridge, subnet and nftables table for RUN steps; ``Built`` is one build's
result and events; ``context`` writes a build context.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import rootfs
from minidocker.build.builder import BuildError, build, summarize


def _routed(network: ipaddress.IPv4Network) -> bool:
    with open("/proc/net/route") as f:
        for line in list(f)[1:]:
            fields = line.split()
            dst = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            if int(mask) and network.overlaps(ipaddress.IPv4Network(f"{dst}/{mask}")):
                return True
    return False


@pytest.fixture(scope="module", autouse=True)
def run_network() -> Iterator[None]:
    """This module's own bridge, subnet and nftables table: RUN steps use the bridge network."""
    pid = os.getpid()
    candidates = (ipaddress.IPv4Network(f"10.203.{(pid + n) % 256}.0/24") for n in range(256))
    subnet = next(s for s in candidates if not _routed(s))
    names = {"MINIDOCKER_BRIDGE": f"mdb{pid}", "MINIDOCKER_SUBNET": str(subnet),
             "MINIDOCKER_NFT_TABLE": f"minidocker_b09_{pid}"}
    saved = {key: os.environ.get(key) for key in names}
    os.environ.update(names)
    yield
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


class Built:
    """One build's result: the image ID (or the error), and every event it sent."""

    def __init__(self, context: Path, **options: object) -> None:
        """Build; RUN steps without network unless ``network`` says otherwise (quicker: no veth)."""
        self.events: list[dict] = []
        self.error: BuildError | None = None
        self.image_id = ""
        options.setdefault("network", "none")
        try:
            self.image_id = build(context, on_event=self.events.append, **options)  # type: ignore[arg-type]
        except BuildError as e:
            self.error = e

    @property
    def output(self) -> str:
        return "".join(e.get("stream", "") for e in self.events)

    @property
    def cached(self) -> list[bool]:
        """For each step after FROM (and ARGs before it): did it come from the cache?"""
        steps = summarize(self.events)
        return [s["cached"] for s in steps if not s["instruction"].startswith(("FROM", "ARG"))]


def context(path: Path, files: dict[str, str | bytes]) -> Path:
    """Write (or overwrite) files of a build context; return its directory."""
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``busybox:latest``, built by the builder itself: FROM scratch, ADD a tar (auto-extracted)."""
    ctx = tmp_path_factory.mktemp("busybox")
    shutil.copy(rootfs.busybox_tar(), ctx / "busybox.tar")
    (ctx / "Dockerfile").write_text('FROM scratch\nADD busybox.tar /\n'
                                    'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["sh"]\n')
    result = Built(ctx, tags=["busybox:latest"])
    assert result.error is None, result.output
    return result.image_id
