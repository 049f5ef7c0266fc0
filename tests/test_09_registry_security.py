"""Chapter 09: the registry's defaults are safe: who may write, what may be deleted, how errors leave.

Each test is an attack shown to work with the defence off (the flag that switches it off, or the
code before it) and to fail with it on:

* a registry without users is read-only: an anonymous push of ``library/busybox`` (what root's next
  pull through a mirror would run) is refused, unless ``--allow-anonymous-push``;
* deletes are refused (405 UNSUPPORTED, as distribution's ``storage.delete.enabled: false``) unless
  ``--delete-enabled``;
* a password longer than bcrypt's 72 bytes is a wrong password (401), not a crash (500), and does
  not match the password it starts with; an unknown user costs a bcrypt check like a known one;
* errors become the spec's JSON in one place; an unexpected exception is a 500 with its traceback
  in the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys

import pytest
from aiohttp import web

from minidocker.registry.server import running
from tests.helpers_09_registry import OCI_MANIFEST, WRITABLE, call, manifest_for, push_image, sha256

SERVER = (sys.executable, "-m", "minidocker.registry")
EVIL = b"#!/bin/sh\necho owned\n"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_registry_without_users_refuses_anonymous_pushes(tmp_path):
    """The demo's mirror: anyone on the machine could replace library/busybox, and root would run it."""
    with running(tmp_path / "s", "--allow-anonymous-push") as open_registry:  # the defence off: it works
        assert call(open_registry.url, "POST", "/v2/library/busybox/blobs/uploads/").status == 202
        push_image(open_registry.url, "library/busybox", "latest", [EVIL])
    uploads = tmp_path / "s" / "uploads"
    before = set(uploads.iterdir())
    with running(tmp_path / "s") as registry:
        assert call(registry.url, "GET", "/v2/library/busybox/manifests/latest").status == 200  # pulls work
        for method, path, body in (
                ("POST", "/v2/library/busybox/blobs/uploads/", None),
                ("POST", f"/v2/library/busybox/blobs/uploads/?digest={sha256(EVIL)}", EVIL),
                ("POST", f"/v2/library/busybox/blobs/uploads/?mount={sha256(EVIL)}&from=library/x", None),
                ("PUT", "/v2/library/busybox/manifests/latest", manifest_for(b"{}", [EVIL]))):
            refused = call(registry.url, method, path, body, {"Content-Type": OCI_MANIFEST})
            assert refused.status == 403 and refused.codes == ["DENIED"], (method, path, refused.body)
            assert "--allow-anonymous-push" in refused.json()["errors"][0]["message"]
    assert set(uploads.iterdir()) == before  # no upload was even started


def test_allow_anonymous_push_is_refused_with_users(tmp_path):
    """With users, an ACL says who may push: the flag would silently mean nothing, so it is an error."""
    (tmp_path / "htpasswd").write_text("")
    result = subprocess.run([*SERVER, "serve", "--storage", str(tmp_path / "s"), "--htpasswd",
                             str(tmp_path / "htpasswd"), "--allow-anonymous-push"],
                            capture_output=True, text=True)
    assert result.returncode == 125
    assert "--allow-anonymous-push is for a registry without users" in result.stderr


def test_deletes_are_refused_unless_enabled(tmp_path):
    with running(tmp_path / "s", *WRITABLE) as deleting:  # the defence off: deletes work
        digest, _ = push_image(deleting.url, "r/keep", "v1", [b"layer one"])
        push_image(deleting.url, "r/gone", "v1", [b"layer two"])
        assert call(deleting.url, "DELETE", "/v2/r/gone/manifests/v1").status == 202
    with running(tmp_path / "s", "--allow-anonymous-push") as registry:
        for path in ("/v2/r/keep/manifests/v1", f"/v2/r/keep/manifests/{digest}",
                     f"/v2/r/keep/blobs/{sha256(b'layer one')}"):
            refused = call(registry.url, "DELETE", path)
            assert refused.status == 405 and refused.codes == ["UNSUPPORTED"], (path, refused.body)
        assert call(registry.url, "GET", "/v2/r/keep/manifests/v1").status == 200
        started = call(registry.url, "POST", "/v2/r/keep/blobs/uploads/")  # cancelling an upload is no delete
        assert call(registry.url, "DELETE", started.headers["Location"]).status == 204
    with running(tmp_path / "s", "--delete-enabled") as registry:  # no users, no push: no anonymous delete
        refused = call(registry.url, "DELETE", "/v2/r/keep/manifests/v1")
        assert refused.status == 403 and refused.codes == ["DENIED"]


@pytest.fixture
def htpasswd(tmp_path):
    path = tmp_path / "htpasswd"
    subprocess.run([*SERVER, "htpasswd", str(path), "alice"], input="a" * 72 + "\n", text=True, check=True)
    return path


def test_a_long_password_is_a_clean_401(tmp_path, htpasswd):
    """bcrypt reads 72 bytes and the library raises beyond: that was a 500, and a 200 with a suffix."""
    options = ("--htpasswd", str(htpasswd), "--token-key", str(tmp_path / "key.pem"))
    with running(tmp_path / "basic", "--htpasswd", str(htpasswd)) as basic, \
            running(tmp_path / "tokens", *options) as tokens:
        assert call(basic.url, "GET", "/v2/_catalog", headers=_basic("alice", "a" * 72)).status == 200
        for password in ("x" * 100, "a" * 72 + "suffix", "a" * 100):
            refused = call(basic.url, "GET", "/v2/_catalog", headers=_basic("alice", password))
            assert refused.status == 401 and refused.codes == ["UNAUTHORIZED"], refused.body
            assert refused.headers["WWW-Authenticate"] == 'Basic realm="minidocker-registry"'
            token = call(tokens.url, "GET", "/token?service=minidocker-registry",
                         headers=_basic("alice", password))
            assert token.status == 401 and token.codes == ["UNAUTHORIZED"], token.body
    too_long = subprocess.run([*SERVER, "htpasswd", str(htpasswd), "bob"], input="b" * 73 + "\n", text=True,
                              capture_output=True)
    assert too_long.returncode == 125 and "longer than 72 bytes" in too_long.stderr
    assert "bob:" not in htpasswd.read_text()


def test_an_unknown_user_costs_a_bcrypt_check(htpasswd, monkeypatch):
    """Answering at once for an unknown name would tell an attacker which names exist."""
    import bcrypt

    from minidocker.registry.auth import Htpasswd

    checked = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, hashed: checked.append(hashed) or real(pw, hashed))
    users = Htpasswd(htpasswd)
    assert not users.check("alice", "wrong") and len(checked) == 1
    assert not users.check("mallory", "wrong") and len(checked) == 2
    assert not users.check("mallory", "x" * 100) and len(checked) == 3
    assert users.check("alice", "a" * 72)


def test_errors_are_classified_once(tmp_path, caplog):
    """Kinds in, the spec's JSON out, in one place; anything else is a 500 with its traceback logged."""
    from pathlib import Path

    import minidocker.registry as package
    from minidocker.core.digests import DigestError
    from minidocker.core.errors import Forbidden, NotFound, Unauthorized
    from minidocker.registry.protocol import ProtocolError
    from minidocker.registry.server import Registry, error_response, make_app

    offenders = [p.name for p in Path(package.__file__).parent.glob("*.py") if "ApiError" in p.read_text()]
    assert offenders == []

    def answer(error: Exception) -> tuple[int, dict, dict]:
        response = error_response(error)
        return response.status, json.loads(response.body)["errors"][0], dict(response.headers)

    status, body, _ = answer(NotFound("blob x is not in r", code="BLOB_UNKNOWN", detail={"digest": "x"}))
    assert (status, body) == (404, {"code": "BLOB_UNKNOWN", "message": "blob x is not in r",
                                    "detail": {"digest": "x"}})
    status, body, headers = answer(Unauthorized("who?", challenge='Basic realm="r"'))
    assert (status, body["code"], headers["WWW-Authenticate"]) == (401, "UNAUTHORIZED", 'Basic realm="r"')
    assert answer(Forbidden("no"))[:2] == (403, {"code": "DENIED", "message": "no", "detail": None})
    assert answer(DigestError("bad digest"))[:2] == (400, {"code": "DIGEST_INVALID", "message": "bad digest",
                                                           "detail": None})
    status, body, headers = answer(ProtocolError(416, "at 10", code="BLOB_UPLOAD_INVALID",
                                                 detail={"size": 10}))
    assert (status, body["code"], headers["Range"]) == (416, "BLOB_UPLOAD_INVALID", "0-9")

    class Broken(Registry):
        async def tags(self, request, name):
            raise RuntimeError("a bug in a handler")

    async def ask() -> tuple[int, dict]:
        from aiohttp.test_utils import TestClient, TestServer

        app: web.Application = make_app(Broken(str(tmp_path / "s")))
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/v2/r/tags/list")
            return response.status, await response.json()

    with caplog.at_level(logging.ERROR, logger="minidocker.registry.server"):
        status, document = asyncio.run(ask())
    assert status == 500 and document["errors"][0]["code"] == "UNKNOWN"
    assert "a bug in a handler" not in json.dumps(document)  # the details go to the log, not the client
    assert any(r.exc_info and "a bug in a handler" in str(r.exc_info[1]) for r in caplog.records)
