"""Chapter 15's test tooling: a desktop server as a program, and Debian's Chromium driven by Playwright.

The server is started as a user starts it (``minidocker -H DAEMON desktop --addr 127.0.0.1:0``) and
its URL read from the one line it prints. The browser is the system's ``/usr/bin/chromium``, with a
fresh profile, no sandbox (we are root), nothing fetched in the background; Playwright's own
browsers are never downloaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IMG = Path(__file__).resolve().parent.parent / "chapters" / "img"


class Desktop:
    """A ``minidocker desktop`` process: its URL (with the token), origin and token."""

    def __init__(self, host: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "minidocker", "-H", host, "desktop", "--addr",
                                         "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, **(env or {})})
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"minidocker desktop printed {line!r}: {self.process.stderr.read()[-2000:]}")
        self.url = line
        parts = urllib.parse.urlsplit(line)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        self.port = parts.port

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def desktop(host: str) -> Iterator[Desktop]:
    server = Desktop(host)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def chromium(profile: Path):
    """A Playwright browser context on Debian's Chromium, with its own profile directory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS, bypass_csp=True,  # for waits
            viewport={"width": 1280,
                                                                                      "height": 900})
        try:
            yield context
        finally:
            context.close()
