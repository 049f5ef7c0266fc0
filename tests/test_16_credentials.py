"""Chapter 16: credential helpers: ``credsStore``, ``credHelpers`` and ``docker-credential-*`` programs.

The protocol against our own helper (``docker-credential-minidocker``: store, get, list, erase, the
files' modes, bounded answers); the real ``docker`` CLI using our helper (``credsStore``:
``minidocker``) to log in to chapter 09's registry with an htpasswd user; a helper we did not
write (Debian's ``docker-credential-pass``, over ``pass`` and a throwaway GPG key) behind our
client's login, pull and logout through our daemon; ``credHelpers`` winning over ``credsStore``, for
our client and chapter 07's; and a distinctive password that never reaches the config file, a log
the daemon wrote, a container's log, ``info`` or ``image inspect``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from minidocker.core import credentials, dockerconfig
from minidocker.core.errors import Failed
from minidocker.registry.server import running, seed
from tests.helpers_10_daemon import running_daemon, seeded_registry

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
PASS_HELPER = shutil.which("docker-credential-pass")
BIN = str(Path(sys.executable).parent)  # where pip put docker-credential-minidocker
PASSWORD = f"md16-{uuid.uuid4().hex[:12]}-pw"  # distinctive: grepped for everywhere it must not be
IMAGE = "alice/bb:1"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Chapter 09's registry with one htpasswd user, alice, holding ``alice/bb:1`` (busybox)."""
    base = tmp_path_factory.mktemp("reg16")
    users = base / "htpasswd"
    subprocess.run([sys.executable, "-m", "minidocker.registry", "htpasswd", str(users), "alice"],
                   input=f"{PASSWORD}\n", text=True, check=True, capture_output=True)
    seed(base / "storage", IMAGE)
    with running(base / "storage", "--htpasswd", str(users)) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon (in --debug, so that it logs all it may) with its own data root and exec root."""
    base = tmp_path_factory.mktemp("d16")
    env = {"MINIDOCKER_STATE": str(base / "state"), "MINIDOCKER_RUN": str(base / "run"),
           "MINIDOCKER_CONFIG": str(base / "daemon-config")}
    with seeded_registry(base / "mirror") as mirror, running_daemon(base, mirror.url, "--debug",
                                                                     env=env) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def gpg(tmp_path_factory):
    """``pass`` initialised with a GPG key made here (no passphrase); its agent killed at the end."""
    if PASS_HELPER is None or shutil.which("pass") is None:
        pytest.skip("no docker-credential-pass here: apt-get install golang-docker-credential-helpers pass")
    base = tmp_path_factory.mktemp("gpg16")
    env = {**os.environ, "GNUPGHOME": str(base / "gnupg"), "PASSWORD_STORE_DIR": str(base / "store")}
    (base / "gnupg").mkdir(mode=0o700)
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "minidocker <t@invalid>",
                        "default", "default", "never"], env=env, check=True, capture_output=True, timeout=60)
        listing = subprocess.run(["gpg", "--list-keys", "--with-colons"], env=env, check=True,
                                 capture_output=True, text=True).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        subprocess.run(["pass", "init", fingerprint], env=env, check=True, capture_output=True)
        yield env
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
        _reap(f"--homedir {base / 'gnupg'}")


def _reap(marker: str) -> None:
    """Wait for the (killed) agent whose command line has ``marker``; it is our child (a subreaper's)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def _env(daemon, tmp_path: Path, config: dict | None, **extra: str) -> dict[str, str]:
    """The environment of a client: its own config file (``config``), our helper on $PATH."""
    (tmp_path / "config").mkdir(exist_ok=True)
    if config is not None:
        (tmp_path / "config" / "config.json").write_text(json.dumps(config))
    return {**daemon.env, "PATH": f"{BIN}:{os.environ['PATH']}", "DOCKER_HOST": daemon.host,
            "MINIDOCKER_CONFIG": str(tmp_path / "config"), "DOCKER_CONFIG": str(tmp_path / "config"),
            "MINIDOCKER_CREDENTIALS": str(tmp_path / "secrets"), **extra}


def _run(env: dict[str, str], *command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120)


def _cli(daemon, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return _run(env, sys.executable, "-m", "minidocker", "-H", daemon.host, *args, stdin=stdin)


def _config_text(tmp_path: Path) -> str:
    return (tmp_path / "config" / "config.json").read_text()


# ---- the protocol, against our own helper ---------------------------------------------------------

def test_our_helper_speaks_the_protocol(tmp_path, monkeypatch):
    """store, get, list, erase through :mod:`minidocker.core.credentials`; 0700 directory, 0600 files."""
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    monkeypatch.setenv("MINIDOCKER_CREDENTIALS", str(tmp_path / "secrets"))
    assert credentials.get("minidocker", "127.0.0.1:5000") is None
    credentials.store("minidocker", "127.0.0.1:5000", "alice", PASSWORD)
    credentials.store("minidocker", "https://index.docker.io/v1/", "<token>", "id-token")
    assert credentials.get("minidocker", "127.0.0.1:5000") == ("127.0.0.1:5000", "alice", PASSWORD)
    assert credentials.list_all("minidocker") == {"127.0.0.1:5000": "alice", "https://index.docker.io/v1/":
                                                  "<token>"}
    assert oct((tmp_path / "secrets").stat().st_mode & 0o7777) == "0o700"
    files = list((tmp_path / "secrets").iterdir())
    assert len(files) == 2 and all(oct(f.stat().st_mode & 0o7777) == "0o600" for f in files)
    assert credentials.erase("minidocker", "127.0.0.1:5000") is True
    assert credentials.erase("minidocker", "127.0.0.1:5000") is False  # "credentials not found ..."
    assert credentials.get("minidocker", "127.0.0.1:5000") is None
    assert credentials.list_all("minidocker") == {"https://index.docker.io/v1/": "<token>"}

    # The raw protocol: errors on stdout, exit status 1; a URL cannot name a path outside.
    helper = [f"{BIN}/docker-credential-minidocker"]
    env = {**os.environ}
    missing = _run(env, *helper, "get", stdin="127.0.0.1:5000\n")
    assert (missing.returncode, missing.stdout) == (1, "credentials not found in native keychain\n")
    no_user = _run(env, *helper, "store", stdin='{"ServerURL": "x", "Secret": "s"}')
    assert (no_user.returncode, no_user.stdout) == (1, "no credentials username\n")
    stored = _run(env, *helper, "store", stdin=json.dumps({"ServerURL": "../../etc/x", "Username": "u",
                                                             "Secret": "s"}))
    assert stored.returncode == 0 and len(list((tmp_path / "secrets").iterdir())) == 2
    too_big = _run(env, *helper, "get", stdin="x" * 70_000)
    assert too_big.returncode == 1 and "larger than" in too_big.stdout


def test_a_helper_that_is_missing_or_misbehaves_is_one_line(daemon, registry, tmp_path, monkeypatch):
    """No such helper, a helper that writes without end (bounded, killed), one that fails."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, body in (("chatty", "yes"), ("broken", "echo 'keyring locked'; exit 3")):
        (fakes / f"docker-credential-{name}").write_text(f"#!/bin/sh\n{body}\n")
        (fakes / f"docker-credential-{name}").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fakes}:{os.environ['PATH']}")
    with pytest.raises(Failed, match=r"^credential helper docker-credential-chatty get: it wrote more than"):
        credentials.get("chatty", "x")
    with pytest.raises(Failed, match=r"^credential helper docker-credential-broken get failed: keyring lock"):
        credentials.get("broken", "x")

    env = _env(daemon, tmp_path, {"credsStore": "nosuch"})
    pulled = _cli(daemon, env, "pull", f"{registry.host}/{IMAGE}")
    assert pulled.returncode == 1 and pulled.stderr == (
        "minidocker: error getting credentials: credential helper docker-credential-nosuch is not installed "
        "(not found in $PATH)\n"), pulled.stderr


# ---- the docker CLI with our helper -----------------------------------------------------------------

def test_docker_login_and_logout_through_our_helper(daemon, registry, tmp_path):
    """``{"credsStore": "minidocker"}``: ``docker login`` stores in our helper, ``docker logout`` erases."""
    if DOCKER is None:
        pytest.skip("no docker CLI here: apt-get install docker.io")
    env = _env(daemon, tmp_path, {"credsStore": "minidocker"})
    login = _run(env, DOCKER, "login", "-u", "alice", "--password-stdin", registry.host, stdin=PASSWORD)
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
    assert "unencrypted" not in login.stderr
    config = json.loads(_config_text(tmp_path))
    assert config["auths"] == {registry.host: {}} and PASSWORD not in _config_text(tmp_path)
    helper = _run(env, "docker-credential-minidocker", "get", stdin=registry.host)
    assert json.loads(helper.stdout) == {"ServerURL": registry.host, "Username": "alice", "Secret": PASSWORD}

    pulled = _run(env, DOCKER, "pull", f"{registry.host}/{IMAGE}")  # the CLI reads it back through get
    assert pulled.returncode == 0, pulled.stderr
    assert _run(env, DOCKER, "rmi", f"{registry.host}/{IMAGE}").returncode == 0

    logout = _run(env, DOCKER, "logout", registry.host)
    assert logout.returncode == 0 and "Removing login credentials" in logout.stdout, logout.stderr
    assert "WARNING" not in logout.stderr, logout.stderr
    assert _run(env, "docker-credential-minidocker", "list").stdout.strip() == "{}"
    assert registry.host not in json.loads(_config_text(tmp_path)).get("auths", {})


# ---- a helper we did not write: docker-credential-pass ---------------------------------------------

def test_pass_helper_behind_our_client(daemon, registry, gpg, tmp_path):
    """``{"credsStore": "pass"}``: ``minidocker login``, a pull through the daemon, ``logout``."""
    env = _env(daemon, tmp_path, {"credsStore": "pass"}, GNUPGHOME=gpg["GNUPGHOME"],
               PASSWORD_STORE_DIR=gpg["PASSWORD_STORE_DIR"])
    image = f"{registry.host}/{IMAGE}"
    refused = _cli(daemon, env, "pull", image)
    assert refused.returncode == 1 and "unauthorized" in refused.stderr, refused.stderr
    login = _cli(daemon, env, "login", "-u", "alice", "--password-stdin", registry.host, stdin=PASSWORD)
    assert (login.returncode, login.stdout, login.stderr) == (0, "Login Succeeded\n", "")
    assert json.loads(_config_text(tmp_path))["auths"] == {registry.host: {}}
    assert PASSWORD not in _config_text(tmp_path)
    assert json.loads(_run(env, "docker-credential-pass", "list").stdout) == {registry.host: "alice"}
    shown = _run(env, "pass", "show", f"docker-credential-helpers/{_b64(registry.host)}/alice")
    assert shown.stdout.strip() == PASSWORD  # in pass's store, encrypted with the key

    pulled = _cli(daemon, env, "pull", image)
    assert pulled.returncode == 0, pulled.stderr
    assert _cli(daemon, env, "rmi", image).returncode == 0

    logout = _cli(daemon, env, "logout", registry.host)
    assert (logout.returncode, logout.stdout, logout.stderr) == (
        0, f"Removing login credentials for {registry.host}\n", "")
    assert json.loads(_run(env, "docker-credential-pass", "list").stdout or "{}") == {}
    assert json.loads(_config_text(tmp_path))["auths"] == {}
    again = _cli(daemon, env, "pull", image)
    assert again.returncode == 1 and "unauthorized" in again.stderr, again.stderr


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# ---- credHelpers win over credsStore ----------------------------------------------------------------

def test_cred_helpers_win_over_creds_store(daemon, registry, gpg, tmp_path):
    """``credHelpers[REG]`` over ``credsStore`` over ``auths``: for our client and chapter 07's."""
    both = {"credsStore": "pass", "credHelpers": {"ghcr.io": "x", "quay.io": ""}}
    assert dockerconfig.helper_for("ghcr.io", both) == "x"
    assert dockerconfig.helper_for("lscr.io", both) == "pass"
    assert dockerconfig.helper_for("quay.io", both) is None  # an empty name: this one in auths
    assert dockerconfig.helper_for("docker.io", {"credHelpers": {"https://index.docker.io/v1/": "y"}}) == "y"
    assert dockerconfig.helper_for("ghcr.io", {}) is None

    env = _env(daemon, tmp_path, {"credsStore": "pass", "credHelpers": {registry.host: "minidocker"}},
               GNUPGHOME=gpg["GNUPGHOME"], PASSWORD_STORE_DIR=gpg["PASSWORD_STORE_DIR"],
               MINIDOCKER_STATE=str(tmp_path / "state"))
    login = _run(env, sys.executable, "-m", "minidocker.images", "login", "-u", "alice", "--password-stdin",
                 registry.host, stdin=f"{PASSWORD}\n")
    assert (login.returncode, login.stdout, login.stderr) == (0, "Login Succeeded\n", "")
    assert json.loads(_run(env, "docker-credential-minidocker", "list").stdout) == {registry.host: "alice"}
    assert json.loads(_run(env, "docker-credential-pass", "list").stdout or "{}") == {}
    assert PASSWORD not in _config_text(tmp_path)
    pulled = _run(env, sys.executable, "-m", "minidocker.images", "pull", f"{registry.host}/{IMAGE}")
    assert pulled.returncode == 0, pulled.stderr  # chapter 07's pull, with the secret from our helper
    through_daemon = _cli(daemon, env, "pull", f"{registry.host}/{IMAGE}")
    assert through_daemon.returncode == 0, through_daemon.stderr
    assert _cli(daemon, env, "rmi", f"{registry.host}/{IMAGE}").returncode == 0
    logout = _run(env, sys.executable, "-m", "minidocker.images", "logout", registry.host)
    assert logout.stdout == f"Removing login credentials for {registry.host}\n", logout.stderr
    assert _run(env, "docker-credential-minidocker", "list").stdout.strip() == "{}"

    # Without a helper, the file keeps the password (base64), and login says so.
    env = _env(daemon, tmp_path, {})
    plain = _cli(daemon, env, "login", "-u", "alice", "--password-stdin", registry.host, stdin=PASSWORD)
    assert plain.returncode == 0 and plain.stderr.startswith("WARNING! Your password will be stored unenc")
    assert "auth" in json.loads(_config_text(tmp_path))["auths"][registry.host]


# ---- no secret in any log, in info or in inspect ----------------------------------------------------

def test_no_secret_in_logs_info_or_inspect(daemon, registry, tmp_path):
    """Log in and pull with the distinctive password, run a container: grep everything the daemon wrote."""
    env = _env(daemon, tmp_path, {"credsStore": "minidocker"})
    image = f"{registry.host}/{IMAGE}"
    assert _cli(daemon, env, "login", "-u", "alice", "--password-stdin", registry.host,
                stdin=f"{PASSWORD}\n").returncode == 0
    assert _cli(daemon, env, "pull", image).returncode == 0
    ran = _cli(daemon, env, "run", "--name", "c16", image, "echo", "hello from c16")
    assert ran.returncode == 0 and ran.stdout == "hello from c16\n", ran.stderr
    assert _cli(daemon, env, "logs", "c16").stdout == "hello from c16\n"
    assert PASSWORD not in _cli(daemon, env, "info").stdout
    for path in ("/info", f"/images/{image}/json", "/containers/c16/json"):
        assert PASSWORD not in json.dumps(daemon.client.json("GET", path)), path
    assert _cli(daemon, env, "rm", "c16").returncode == 0

    searched = 0
    for root in (daemon.dir, Path(daemon.env["MINIDOCKER_STATE"]), Path(daemon.env["MINIDOCKER_RUN"])):
        for directory, _, files in os.walk(root):
            for name in files:
                path = Path(directory, name)
                if path.is_file() and not path.is_symlink():
                    with contextlib.suppress(OSError):
                        assert PASSWORD.encode() not in path.read_bytes(), path
                        searched += 1
    assert searched > 10 and (daemon.dir / "daemon.log").stat().st_size > 0
    assert PASSWORD not in _config_text(tmp_path)
    assert _cli(daemon, env, "logout", registry.host).returncode == 0
