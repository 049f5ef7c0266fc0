"""Chapter 15: the dashboard in a real browser (Debian's Chromium, driven by Playwright) against a
real minidockerd: an image pulled with its progress, a container started from the CLI appearing
without a reload, its logs streamed, a shell typed into, a click that stops it; the token, cookie
and same-origin rules; and the same page against Debian's dockerd. Each view's screenshot goes to
chapters/img/15-*.png, where the chapter shows it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers_15_desktop import CHROMIUM, IMG, chromium, desktop

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed "
                                "(./setup.sh test installs it)")
TIMEOUT = 20_000  # ms: what the page has, at most, to show a change


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon with the local registry as its mirror, and no image yet: the page pulls busybox."""
    from tests.helpers_10_daemon import running_daemon, seeded_registry

    base = tmp_path_factory.mktemp("d15")
    with seeded_registry(base / "registry") as registry, running_daemon(base, registry.url) as daemon:
        daemon.registry = registry
        yield daemon


@pytest.fixture(scope="module")
def server(daemon):
    with desktop(daemon.host) as server:
        yield server


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium15")) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(server.url)
        page.wait_for_selector("#live:not(.off)")
        page.evaluate("window.loadedOnce = 'yes'")  # gone if the page ever reloads
        yield page


@pytest.fixture(scope="module")
def busybox(daemon):
    """busybox in the daemon: pulled by the page's test if it ran first, else here."""
    images = daemon.client.json("GET", "/images/json")
    if not any("busybox:latest" in (i.get("RepoTags") or []) for i in images):
        for _ in daemon.client.stream_json("POST", "/images/create", {"fromImage": "busybox"}):
            pass
    return "busybox"


@pytest.fixture(scope="module")
def web15(daemon, busybox, page):
    """A container started from the CLI while the page is open (before the leak check's first look:
    it lives for the module), and when: the page must show it without a reload."""
    started = time.monotonic()
    run = daemon.cli("run", "-d", "--name", "web15", "-p", "18015:80", "--stop-signal", "INT", busybox,
                     "ping", "-i", "0.2", "127.0.0.1")  # a line every 0.2 s, from one process
    assert run.returncode == 0, run.stderr
    warm = daemon.cli("exec", "web15", "true")  # the daemon's exec fork server starts now, not in a test
    assert warm.returncode == 0, warm.stderr
    yield started
    daemon.cli("rm", "-f", "web15")


def view(page, name: str) -> None:
    page.click(f"nav button[data-view={name}]")


def shot(page, name: str) -> None:
    IMG.mkdir(exist_ok=True)
    page.screenshot(path=str(IMG / f"15-{name}.png"))


def test_an_image_is_pulled_with_a_progress_bar_per_layer(daemon, page) -> None:
    images = daemon.client.json("GET", "/images/json")
    if any("busybox:latest" in (i.get("RepoTags") or []) for i in images):  # "up to date" shows no layer
        daemon.client.request("DELETE", "/images/busybox:latest", {"force": "1"}).read()
    view(page, "images")
    page.fill("#pull-image", "busybox:latest")
    page.click("#pull-go")
    page.wait_for_function("document.querySelector('#pull-status').textContent.startsWith('Status:')")
    assert page.text_content("#pull-percent") == "100%"
    layers = page.query_selector_all("#pull-layers .layer")
    assert layers, "no layer was shown"
    for layer in layers:
        assert layer.eval_on_selector("progress", "p => p.value") == 100
    assert "Pull complete" in page.text_content("#pull-layers") or "Already exists" in page.text_content(
        "#pull-layers")
    row = page.wait_for_selector("#images tr.image:has-text('busybox:latest')")
    assert row.query_selector_all(".layers span"), "the image's layers are not drawn"
    shot(page, "images")


def test_a_container_started_from_the_cli_appears_without_a_reload(daemon, web15, page) -> None:
    started = web15
    view(page, "containers")
    page.wait_for_selector("tr.container[data-name=web15] .state.running")
    seen = time.monotonic() - started
    assert page.evaluate("window.loadedOnce") == "yes"
    latency = page.evaluate("window.desktop.latencies")
    print(f"from 'minidocker run -d' to the row: {seen * 1000:.0f} ms; from the start event: {latency} ms")
    assert page.get_attribute("tr.container[data-name=web15] a", "href").endswith(":18015/")
    page.wait_for_selector("tr.container[data-name=web15] svg.spark polyline[points*=',']")  # stats, live
    shot(page, "containers")


def test_its_logs_stream_into_the_page_and_can_be_searched(daemon, web15, page) -> None:
    page.click("tr.container[data-name=web15] button[data-action=logs]")
    page.wait_for_selector("#logs div:has-text('seq=3 ')")
    count = len(page.query_selector_all("#logs div"))
    page.wait_for_function(f"document.querySelectorAll('#logs div').length > {count + 2}")  # still coming
    page.fill("#logs-search", "seq=2")
    visible = page.eval_on_selector_all("#logs div:not(.hidden)", "rows => rows.map(r => r.textContent)")
    assert visible and all("seq=2" in text for text in visible), visible
    page.fill("#logs-search", "")
    shot(page, "logs")


def test_a_shell_in_the_page_runs_what_is_typed(daemon, web15, page) -> None:
    page.click("tr.container[data-name=web15] button[data-action=terminal]")
    page.wait_for_selector("#terminal .xterm")
    text = "(() => { const b = window.desktop.term.buffer.active; const lines = [];"\
           " for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));"\
           " return lines; })()"
    page.wait_for_function(f"{text}.some(l => l.includes('#'))")  # the shell's prompt
    page.click("#terminal")
    page.keyboard.type("echo hi\n")
    page.wait_for_function(f"{text}.some(l => l.trim() === 'hi')")
    shot(page, "terminal")
    page.click("#detail-close")  # the WebSocket closes: the shell must end (no_leaks checks)


def test_the_network_view_draws_the_bridge_and_its_containers(daemon, web15, page) -> None:
    view(page, "networks")
    page.wait_for_selector("#network-map text:has-text('bridge')")
    page.wait_for_selector("#network-map text:has-text('web15')")
    assert page.query_selector("#network-map rect.net-container")
    shot(page, "networks")
    view(page, "containers")


def test_a_click_stops_the_container_and_the_panel_shows_the_call(daemon, web15, page) -> None:
    page.click("tr.container[data-name=web15] button[data-action=stop]")
    page.wait_for_selector("tr.container[data-name=web15] .state.exited")
    assert daemon.client.json("GET", "/containers/web15/json")["State"]["Running"] is False
    page.wait_for_selector("#calls tr:has-text('/containers/') >> text=/stop$/")
    rows = page.eval_on_selector_all("#calls tbody tr", "rows => rows.map(r => r.innerText)")
    assert any("POST" in r and "/stop" in r and "204" in r for r in rows), rows[:5]


def test_prune_asks_first_in_dockers_words(daemon, web15, page) -> None:
    messages = []

    def answer(dialog):
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.click("button.prune[data-kind=containers]")
    page.wait_for_function("true")
    deadline = time.monotonic() + 5
    while not messages and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert messages == ["WARNING! This will remove all stopped containers.\n"
                        "Are you sure you want to continue?"]
    assert daemon.client.json("GET", "/containers/web15/json")  # dismissed: nothing removed


def _request(server, path: str, method: str = "GET", headers: dict | None = None) -> int:
    request = urllib.request.Request(server.origin + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def test_without_the_token_or_from_another_origin_it_refuses(server) -> None:
    cookie = {"Cookie": f"minidocker-desktop-{server.port}={server.token}"}
    assert _request(server, "/api/overview") == 403
    wrong = {"Cookie": f"minidocker-desktop-{server.port}=wrong"}
    assert _request(server, "/api/overview", headers=wrong) == 403
    assert _request(server, "/api/overview", headers=cookie) == 200
    assert _request(server, "/api/overview", headers={"X-Desktop-Token": server.token}) == 200
    # a cross-site form: the cookie (were it sent), another Origin, no custom header
    evil = {**cookie, "Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
    assert _request(server, "/api/prune/containers", "POST", evil) == 403
    assert _request(server, "/api/prune/containers", "POST", {**cookie, "Origin": server.origin}) == 403
    assert _request(server, "/api/containers/x/dance", "POST", {**cookie, "Origin": server.origin,
                                                                "X-Desktop": "1"}) == 400  # past the guard
    # DNS rebinding: the right token, but another site's name in Host
    assert _request(server, "/api/overview", headers={**cookie, "Host": "evil.example"}) == 403


def test_a_websocket_from_another_origin_is_refused(server) -> None:
    """The handshake with the right cookie but another site's Origin: refused before any exec."""
    def handshake(origin: str) -> str:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"GET /api/containers/web15/terminal HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         f"Cookie: minidocker-desktop-{server.port}={server.token}\r\n"
                         f"Origin: {origin}\r\n\r\n".encode())
            return sock.recv(4096).decode(errors="replace").split("\r\n")[0]

    assert handshake("http://evil.example") == "HTTP/1.1 403 Forbidden"


def test_the_page_lists_the_containers_of_debians_dockerd(page, server) -> None:
    from minidocker import rootfs
    from tests.helpers_09_registry import Dockerd

    base = Path(tempfile.mkdtemp(prefix="md15-"))  # dockerd's sockets need a short path
    try:
        dockerd = Dockerd(base)
        if reason := dockerd.unavailable():
            pytest.skip(reason)
        with dockerd:
            imported = subprocess.run(["docker", "-H", f"unix://{dockerd.socket}", "import",
                                       str(rootfs.busybox_tar()), "bb15"], capture_output=True, text=True,
                                      env=dockerd.env, timeout=120)
            assert imported.returncode == 0, imported.stderr
            created = dockerd.docker("create", "--name", "from-dockerd", "bb15", "sh")
            assert created.returncode == 0, created.stderr
            with desktop(f"unix://{dockerd.socket}") as theirs:
                try:  # the same tab (a new one would start a renderer process that outlives the test)
                    page.goto(theirs.url)
                    page.wait_for_selector("tr.container[data-name=from-dockerd] .state.created")
                    assert "API 1.41" in page.text_content("#daemon")
                    page.wait_for_selector("#calls tr:has-text('/v1.41/containers/json')")
                finally:
                    page.goto(server.url)
            dockerd.docker("rm", "-f", "from-dockerd")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_servers_idle_cost(server) -> None:
    """Not a check but a measure for the chapter: CPU time over 3 idle seconds, and resident memory."""
    stat = lambda: Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()  # noqa: E731
    ticks = os.sysconf("SC_CLK_TCK")
    before = stat()
    time.sleep(3)
    after = stat()
    cpu = (int(after[11]) + int(after[12]) - int(before[11]) - int(before[12])) / ticks / 3 * 100
    rss = int(after[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    print(f"desktop server idle: {cpu:.1f}% CPU, {rss:.0f} MiB resident")
    assert cpu < 20
    json.dumps(None)
