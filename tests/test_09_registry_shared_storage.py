"""Chapter 09: two server processes on one storage directory: a killed upload, and pulls during pushes.

Nothing is visible until it is complete (``registry/blobstore.py``): a reader on one server, while the other
one is still writing, sees "not there yet" (404) or the whole, right bytes, never part of a blob, and
never a manifest whose blobs it cannot serve.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

from minidocker.registry.server import running
from tests.helpers_09_registry import (
    OCI_MANIFEST,
    WRITABLE,
    call,
    manifest_for,
    push_blob,
    raw_upload,
    sha256,
)


def test_server_killed_during_an_upload(tmp_path):
    """No partial blob becomes visible; another server process resumes the session, or a new one redoes it."""
    storage = tmp_path / "storage"
    data = os.urandom(1 << 20)
    digest = sha256(data)
    with running(storage, *WRITABLE) as first:
        location = call(first.url, "POST", "/v2/r/kill/blobs/uploads/").headers["Location"]
        with raw_upload(first.url, location, len(data), data[:300_000]):
            deadline = time.monotonic() + 10
            upload = storage / "uploads" / location.rsplit("/", 1)[1] / "data"
            while upload.stat().st_size < 300_000 and time.monotonic() < deadline:
                time.sleep(0.02)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
    assert not (storage / "blobs" / "sha256" / digest[7:9] / digest[7:]).exists()
    with running(storage, *WRITABLE) as second:
        assert call(second.url, "HEAD", f"/v2/r/kill/blobs/{digest}").status == 404
        status = call(second.url, "GET", location)
        assert status.status == 204 and status.headers["Range"] == "0-299999"
        done = call(second.url, "PUT", f"{location}?digest={digest}", data[300_000:],
                    {"Content-Range": f"300000-{len(data) - 1}"})
        assert done.status == 201, done.body
        assert push_blob(second.url, "r/kill2", data) == digest  # or simply upload it again
        assert call(second.url, "GET", f"/v2/r/kill/blobs/{digest}").body == data


@dataclass
class Image:
    """One push of the busy test: through ``url``, these blobs, then this manifest as ``latest``."""

    url: str
    blobs: list[bytes]
    manifest: bytes


def _images(urls: list[str], rounds: int) -> list[Image]:
    """Push i goes through server i % 2: a 2 MiB layer all share, a layer and a config of its own."""
    shared = os.urandom(2 << 20)
    images = []
    for i in range(rounds):
        layers, config = [shared, os.urandom(300_000 + i)], json.dumps({"n": i}).encode()
        images.append(Image(urls[i % 2], [*layers, config], manifest_for(config, layers)))
    return images


async def _push_while_pulling(urls: list[str], images: list[Image], seen: Counter) -> str:
    """Push every image concurrently while one reader per server pulls the shared layer, ``latest``
    and the blobs being pushed through the *other* server, until the pushes are over; return the
    digest ``latest`` has at the end. The last push starts only once a reader has seen a ``latest``:
    readers then see tags while blobs are still being written, whatever the timing."""
    import aiohttp

    blobs = {sha256(blob): blob for image in images for blob in image.blobs}
    manifests = {sha256(image.manifest): image.manifest for image in images}
    shared = sha256(images[0].blobs[0])
    pushing, tagged = True, asyncio.Event()
    async with aiohttp.ClientSession() as session:

        async def stream(data: bytes):  # the bytes arrive over a while: the upload is in flight
            for start in range(0, len(data), 64 << 10):
                yield data[start:start + (64 << 10)]
                await asyncio.sleep(0.002)

        async def upload(url: str, data: bytes) -> None:
            async with session.post(f"{url}/v2/r/busy/blobs/uploads/") as started:
                location = started.headers["Location"]
            async with session.patch(url + location, data=stream(data)) as patched:
                assert patched.status == 202, await patched.text()
            async with session.put(f"{url}{location}?digest={sha256(data)}") as done:
                assert done.status == 201, await done.text()

        async def push(image: Image, wait: bool) -> None:
            if wait:
                await asyncio.wait_for(tagged.wait(), 60)
            await asyncio.gather(*(upload(image.url, blob) for blob in image.blobs))
            async with session.put(f"{image.url}/v2/r/busy/manifests/latest", data=image.manifest,
                                   headers={"Content-Type": OCI_MANIFEST}) as put:
                assert put.status == 201, await put.text()

        async def pull_blob(url: str, digest: str) -> bool:
            """Not there yet (False), or there whole and right (True): nothing in between."""
            async with session.get(f"{url}/v2/r/busy/blobs/{digest}") as got:
                body = await got.read()
                if got.status == 404:
                    assert json.loads(body)["errors"][0]["code"] in ("BLOB_UNKNOWN", "NAME_UNKNOWN")
                    seen["blob 404"] += 1
                    return False
                assert got.status == 200, body
                assert got.headers["Docker-Content-Digest"] == digest
                size, length = len(blobs[digest]), int(got.headers["Content-Length"])
                assert length == size, f"{digest}: {length} of its {size} bytes"
                assert body == blobs[digest], f"{digest}: {len(body)} bytes, not the {size} pushed"
                seen["blob 200"] += 1
                return True

        async def pull_latest(url: str) -> None:
            async with session.get(f"{url}/v2/r/busy/manifests/latest") as got:
                body = await got.read()
                if got.status == 404:
                    assert json.loads(body)["errors"][0]["code"] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
                    seen["latest 404"] += 1
                    return
                assert got.status == 200, body
                assert got.headers["Content-Type"] == OCI_MANIFEST
                assert got.headers["Docker-Content-Digest"] == sha256(body) and body in manifests.values()
            document = json.loads(body)
            for descriptor in (document["config"], *document["layers"]):  # a tag's image is whole
                assert await pull_blob(url, descriptor["digest"]), f"latest names a missing {descriptor}"
            seen["latest 200" + (" while pushing" if pushing else "")] += 1
            tagged.set()

        async def read(url: str) -> None:
            others = [sha256(blob) for image in images if image.url != url for blob in image.blobs[1:]]
            while pushing:
                await pull_blob(url, shared)
                await pull_latest(url)
                for digest in others:
                    await pull_blob(url, digest)
                seen["rounds"] += 1

        async def push_all() -> None:
            nonlocal pushing
            try:
                await asyncio.gather(*(push(image, i == len(images) - 1) for i, image in enumerate(images)))
            finally:
                pushing = False

        await asyncio.gather(push_all(), *(read(url) for url in urls))
        for url in urls:  # and once more when every push is over: everything is there
            assert all([await pull_blob(url, digest) for digest in blobs])
        async with session.get(f"{urls[1]}/v2/r/busy/manifests/latest") as latest:
            assert latest.status == 200
            return latest.headers["Docker-Content-Digest"]


def test_two_servers_share_one_storage_directory(tmp_path):
    """Concurrent pushes through two server processes, with pulls through the other one all along."""
    storage = tmp_path / "storage"
    with running(storage, *WRITABLE) as one, running(storage, *WRITABLE) as two:
        images, seen = _images([one.url, two.url], rounds=12), Counter()
        latest = asyncio.run(_push_while_pulling([one.url, two.url], images, seen))
        pushed = [sha256(image.manifest) for image in images]
        assert latest in pushed  # concurrent tag updates: one of them won, whole
        for digest in pushed:  # every manifest is there, whichever server took it
            assert call(one.url, "GET", f"/v2/r/busy/manifests/{digest}").status == 200
    # The readers saw the storage mid-push: blobs missing, then whole; a tag while pushes went on.
    assert seen["blob 404"] and seen["blob 200"] and seen["latest 404"] and seen["latest 200 while pushing"]
    assert not list((storage / "uploads").iterdir())
    assert not [p for p in storage.rglob(".tmp-*")]
