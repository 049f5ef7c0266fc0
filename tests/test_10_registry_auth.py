"""Chapter 10: ``login`` on the client, then ``push`` and ``pull`` through the daemon.

The credentials live on the client's side (``docker login`` keeps them in ``$DOCKER_CONFIG``, ours in
``$MINIDOCKER_CONFIG``) and travel with each pull and push in the ``X-Registry-Auth`` header; the
daemon uses them before its own config file. Driven by the real ``docker`` CLI and by ours, against
chapter 09's registry with htpasswd (Basic) and token (Bearer) authentication.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from minidocker.client.client import APIError
from minidocker.registry.server import running
from tests.helpers_10_daemon import running_daemon, seeded_registry

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
SERVER = (sys.executable, "-m", "minidocker.registry")


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Path:
    """An htpasswd file with alice (password alice-pw), made with our own ``htpasswd`` command."""
    path = tmp_path_factory.mktemp("users") / "htpasswd"
    subprocess.run([*SERVER, "htpasswd", str(path), "alice"], input="alice-pw\n", text=True, check=True)
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon with a config file of its own (``daemon.config``), busybox from a local mirror."""
    base = tmp_path_factory.mktemp("d07auth")
    env = {"MINIDOCKER_CONFIG": str(base / "daemon-config")}
    with seeded_registry(base / "mirror") as mirror, running_daemon(base, mirror.url, env=env) as daemon:
        daemon.config = base / "daemon-config" / "config.json"
        yield daemon


def run(command: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_docker_login_then_push_and_pull(daemon, users, tmp_path):
    """``docker login`` (checked by the daemon's ``POST /auth``), then ``docker push`` and ``pull``."""
    if DOCKER is None:
        print("skipped: no docker CLI here (apt-get install docker.io)")
        pytest.skip("no docker CLI here: apt-get install docker.io")
    env = {**daemon.env, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    # A config that names its credential helpers gets no default one from the host (the docker CLI
    # picks docker-credential-pass where it is installed): the login stays in this file.
    (tmp_path / "docker-config").mkdir()
    (tmp_path / "docker-config" / "config.json").write_text('{"credHelpers": {"example.invalid": "none"}}')

    def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run([DOCKER, *args], env, stdin)

    with running(tmp_path / "storage", "--htpasswd", str(users)) as registry:
        image = f"{registry.host}/alice/bb:1"
        assert docker("pull", "busybox").returncode == 0
        assert docker("tag", "busybox", image).returncode == 0
        refused = docker("push", image)  # not logged in, and the daemon's config has nothing either
        assert refused.returncode != 0 and "unauthorized" in refused.stderr, refused.stderr
        wrong = docker("login", "-u", "alice", "-p", "nope", registry.host)
        assert wrong.returncode != 0 and "login attempt" in wrong.stderr, wrong.stderr
        login = docker("login", "-u", "alice", "--password-stdin", registry.host, stdin="alice-pw\n")
        assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
        assert registry.host in json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]

        pushed = docker("push", image)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.count("digest: sha256:") == 1, pushed.stdout  # said once, not twice
        assert docker("rmi", image, "busybox").returncode == 0
        pulled = docker("pull", image)
        assert pulled.returncode == 0, pulled.stderr
        assert "Downloaded newer image" in pulled.stdout and pulled.stdout.rstrip().endswith(image)
        assert image in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()

        assert docker("logout", registry.host).returncode == 0
        assert docker("rmi", image).returncode == 0
        anonymous = docker("pull", image)
        assert anonymous.returncode != 0 and "unauthorized" in anonymous.stderr, anonymous.stderr


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_our_cli_sends_its_own_config(daemon, users, tmp_path, kind):
    """``minidocker login`` writes ``$MINIDOCKER_CONFIG`` of the client; the daemon's has wrong ones."""
    options = ["--htpasswd", str(users)]
    options += ["--token-key", str(tmp_path / "key.pem")] if kind == "token" else []
    with running(tmp_path / "storage", *options) as registry:
        daemon.config.parent.mkdir(exist_ok=True)
        wrong = base64.b64encode(b"alice:wrong").decode()
        daemon.config.write_text(json.dumps({"auths": {registry.host: {"auth": wrong}}}))
        client_config = tmp_path / "client-config"
        env = {**daemon.env, "MINIDOCKER_CONFIG": str(client_config)}

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
            return run([sys.executable, "-m", "minidocker", "-H", daemon.host, *args], env, stdin)

        image = f"{registry.host}/alice/bb:2"
        assert cli("pull", "busybox").returncode == 0
        assert cli("tag", "busybox", image).returncode == 0
        refused = cli("push", image)  # the daemon's own credentials are wrong
        assert refused.returncode != 0 and "unauthorized" in refused.stderr, refused.stderr
        login = cli("login", "-u", "alice", "--password-stdin", registry.host, stdin="alice-pw\n")
        assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
        assert registry.host in json.loads((client_config / "config.json").read_text())["auths"]
        assert json.loads(daemon.config.read_text())["auths"][registry.host] == {"auth": wrong}

        pushed = cli("push", image)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.count("digest: sha256:") == 1, pushed.stdout
        assert cli("rmi", image, "busybox").returncode == 0
        pulled = cli("pull", image)
        assert pulled.returncode == 0, pulled.stderr
        assert "Downloaded newer image" in pulled.stdout or "Pull complete" in pulled.stdout, pulled.stdout
        assert image.replace(":2", "") in cli("images").stdout
        assert cli("rmi", image).returncode == 0
        daemon.config.unlink()


@pytest.mark.parametrize("header", ["not base64!", base64.urlsafe_b64encode(b"not json").decode(),
                                    base64.urlsafe_b64encode(b'{"username": 1}').decode()])
def test_a_bad_header_is_a_400(daemon, header):
    for path, query in (("/images/create", {"fromImage": "127.0.0.1:1/x/y", "tag": "1"}),
                        ("/images/busybox/push", {})):
        with pytest.raises(APIError) as raised:
            daemon.client.request("POST", path, query, headers={"X-Registry-Auth": header}).read()
        message = str(raised.value)
        assert raised.value.status == 400
        assert message.startswith("invalid X-Registry-Auth header") and "\n" not in message


def test_an_identity_token_is_traded_for_a_token():
    """``{"identitytoken": T}``: OAuth2's ``grant_type=refresh_token`` at the token server; that host only."""
    from minidocker.core.dockerconfig import RegistryAuth, parse_registry_auth
    from minidocker.images import distribution as registry

    forms: list[dict[str, list[str]]] = []

    class Fake(BaseHTTPRequestHandler):
        def answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in {**(headers or {}), "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") == "Bearer granted":
                return self.answer(200, {})
            realm = f"http://{self.headers['Host']}/token"
            self.answer(401, {}, {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'})

        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            forms.append(form)
            if form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == ["id-token"]:
                return self.answer(200, {"access_token": "granted", "expires_in": 300})
            self.answer(401, {})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        header = base64.urlsafe_b64encode(b'{"identitytoken": "id-token"}').decode().rstrip("=")
        assert parse_registry_auth(header) == RegistryAuth(None, "id-token")
        with registry.given_credentials(host, parse_registry_auth(header)):
            registry.connect(host).check_login()
        assert forms[-1]["service"] == ["fake"] and forms[-1]["client_id"] == ["minidocker"]
        with registry.given_credentials(host, RegistryAuth(None, "stolen")), \
                pytest.raises(registry.RegistryError, match="identity token was refused"):
            registry.connect(host).check_login()
        with registry.given_credentials("127.0.0.1:1", RegistryAuth(None, "id-token")), \
                pytest.raises(registry.RegistryError):  # given for another registry: not sent here
            registry.connect(host).check_login()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
