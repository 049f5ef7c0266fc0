"""Chapter 10: errors classified once: domain code raises a kind, the daemon maps it to a status.

These run the daemon's real application in-process (aiohttp's test server, no fork server, no
containers): an unknown container is a 404 in Docker's words, a conflict a 409, and a bug (a
backend that raises ``KeyError``) a 500 with its traceback in the log, never a guessed 409.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from minidocker.core import errors
from minidocker.core.process import EngineError
from minidocker.daemon import server
from minidocker.daemon.containers import Container
from minidocker.daemon.supervisor import Supervisor

CID = "c0ffee" + "0" * 58
pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINIDOCKER_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("MINIDOCKER_RUN", str(tmp_path / "run"))
    return tmp_path / "state"


def call(prepare: Callable[[Any], None], method: str, path: str) -> tuple[int, dict, str]:
    """One request to the daemon's application, after ``prepare(app)``: status, JSON body, Content-Type."""

    async def go() -> tuple[int, dict, str]:
        app = server.create_app({})
        app.on_startup.clear()  # no fork server, no sweep of the host's network: only the routes
        app.on_shutdown.clear()
        prepare(app)
        async with TestClient(TestServer(app)) as client:
            response = await client.request(method, path)
            return response.status, json.loads(await response.text() or "{}"), response.content_type

    return asyncio.run(go())


def with_container(status: str) -> Callable[[Any], None]:
    """Give the application's supervisor one container named ``web`` in ``status``."""

    def prepare(app: Any) -> None:
        sup: Supervisor = app["supervisor"]
        directory = sup.root / CID
        directory.mkdir(exist_ok=True)
        (directory / "state.json").write_text(json.dumps({"Status": status, "Pid": 0, "ExitCode": 0}))
        sup.add(Container(directory, {"Id": CID, "Name": "/web", "Config": {}, "HostConfig": {},
                                      "Created": "2026-01-01T00:00:00Z", "Image": "sha256:" + "1" * 64}))

    return prepare


def test_every_kind_is_an_engine_error_with_one_status():
    """A stage still prints one line and exits 125; the daemon maps each kind in one table."""
    expected = {errors.NotFound: 404, errors.Conflict: 409, errors.InvalidArgument: 400,
                errors.Unauthorized: 401, errors.Forbidden: 403, errors.Unsupported: 501,
                errors.Unavailable: 503, errors.NotModified: 304, errors.Failed: 500}
    for kind, status in expected.items():
        e = kind("m")
        assert isinstance(e, EngineError) and e.exit_code == 125
        assert errors.http_status(e) == status, kind
    assert errors.http_status(EngineError("unclassified")) == 500
    assert errors.http_status(errors.NoSuchImage("busybox:latest")) == 404
    assert str(errors.NoSuchImage("busybox:latest")) == "No such image: busybox:latest"
    assert errors.http_status(errors.NotRunning("abc")) == 409


def test_unknown_container_is_404_in_dockers_words(state):
    status, body, content_type = call(lambda app: None, "GET", "/v1.50/containers/nope/json")
    assert (status, body, content_type) == (404, {"message": "No such container: nope"}, "application/json")
    status, body, _ = call(lambda app: None, "GET", "/exec/nope/json")
    assert (status, body) == (404, {"message": "No such exec instance: nope"})
    status, body, _ = call(lambda app: None, "GET", "/volumes/nope")
    assert (status, body) == (404, {"message": "get nope: no such volume"})


def test_conflicts_are_409(state):
    status, body, _ = call(with_container("running"), "DELETE", "/containers/web")
    assert status == 409 and body["message"].startswith(f"You cannot remove a running container {CID}")
    status, body, _ = call(with_container("exited"), "POST", "/containers/web/kill")
    assert (status, body) == (409, {"message": f"Container {CID} is not running"})


def test_a_start_of_a_running_container_is_a_bare_304(state):
    async def noop(*args: Any) -> None:
        raise AssertionError("a running container's monitor must not be asked to start")

    def prepare(app: Any) -> None:
        with_container("running")(app)
        app["supervisor"]._spawn_monitor = noop

    status, body, _ = call(prepare, "POST", "/containers/web/start")
    assert (status, body) == (304, {})


def broken(exception: type[Exception]) -> Callable[..., Awaitable[Any]]:
    async def method(*args: Any, **kwargs: Any) -> Any:
        raise exception("a bug in the backend")

    return method


@pytest.mark.parametrize("exception", [KeyError, ZeroDivisionError])
def test_a_bug_is_a_500_with_its_traceback_logged_not_a_409(state, caplog, exception):
    """A backend that raises something unclassified: 500, the traceback in the daemon's log."""

    def prepare(app: Any) -> None:
        with_container("exited")(app)
        app["supervisor"].remove = broken(exception)

    with caplog.at_level(logging.ERROR, logger="minidockerd"):
        status, body, _ = call(prepare, "DELETE", "/containers/web")
    assert status == 500 and body["message"].startswith(f"internal error: {exception.__name__}")
    [record] = [r for r in caplog.records if r.name == "minidockerd"]
    assert record.exc_info and record.exc_info[0] is exception and "DELETE /containers/web" in record.message


def test_an_image_store_bug_is_not_a_conflict(state, caplog):
    """``rmi`` used to turn *any* exception into a 409; only the store's Conflict is one now."""

    def prepare(app: Any, failure: Exception) -> None:
        def remove(ref: str, force: bool = False) -> list:
            raise failure

        app["images"].find = lambda ref: {"Id": "sha256:" + "1" * 64, "Config": {}}
        app["images"].remove = remove

    message = "conflict: unable to delete 111111111111 (must be forced) - image is being used by container x"
    status, body, _ = call(lambda app: prepare(app, errors.Conflict(message)), "DELETE", "/images/busybox")
    assert (status, body) == (409, {"message": message})
    with caplog.at_level(logging.ERROR, logger="minidockerd"):
        status, body, _ = call(lambda app: prepare(app, KeyError("diff_ids")), "DELETE", "/images/busybox")
    assert (status, body) == (500, {"message": "internal error: KeyError: 'diff_ids'"})
    assert any(r.exc_info for r in caplog.records if r.name == "minidockerd")


def test_a_stated_failure_is_a_500_logged_in_one_line(state, caplog):
    def prepare(app: Any) -> None:
        with_container("exited")(app)

        async def remove(*args: Any, **kwargs: Any) -> None:
            raise errors.Failed("the disk is full")

        app["supervisor"].remove = remove

    with caplog.at_level(logging.ERROR, logger="minidockerd"):
        status, body, _ = call(prepare, "DELETE", "/containers/web")
    assert (status, body) == (500, {"message": "the disk is full"})
    [record] = [r for r in caplog.records if r.name == "minidockerd"]
    assert not record.exc_info and "the disk is full" in record.message


def test_no_route_names_a_status_of_its_own():
    """Handlers raise kinds: no ``ApiError(STATUS, ...)`` is left in the daemon's code."""
    package = Path(server.__file__).parent
    offenders = [p.name for p in package.rglob("*.py") if "ApiError" in p.read_text()]
    assert offenders == []
    assert os.path.exists(package / "routes" / "containers.py")
