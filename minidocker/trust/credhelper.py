"""``docker-credential-minidocker``: a credential helper that keeps secrets in root-only files.

Docker's CLI (and ours) run it when the config file says ``"credsStore": "minidocker"``: one verb
as its argument, the rest on stdin, the answer on stdout (see :mod:`minidocker.core.credentials`
for the protocol). It moves the secrets out of ``config.json`` (a file people copy, back up and
paste) into a directory of their own, one file per registry:

* where: ``$MINIDOCKER_CREDENTIALS`` if set; for root the state directory's ``credentials/``
  (``/var/lib/minidocker/credentials``, beside the engine's other secrets); for another user
  ``$XDG_DATA_HOME/minidocker/credentials`` (``~/.local/share/minidocker/credentials``);
* how: the directory 0700, each file 0600, named by the base64url of its server URL (so no URL
  can name a path outside), written atomically; every read is bounded and refuses symlinks.

Files are not encryption: root, and whoever reads the disk, reads them. The helper's worth is the
interface: the same four verbs in front of ``pass``, a desktop keyring or a hardware token.

Example::

    $ printf '{"ServerURL":"127.0.0.1:5000","Username":"alice","Secret":"s3cret"}' \\
        | docker-credential-minidocker store
    $ echo 127.0.0.1:5000 | docker-credential-minidocker get
    {"ServerURL": "127.0.0.1:5000", "Username": "alice", "Secret": "s3cret"}
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

from minidocker.core import paths as _paths
from minidocker.core.atomic import atomic_write
from minidocker.core.credentials import NOT_FOUND

__all__ = ["HelperError", "erase", "get", "list_all", "main", "store", "store_dir"]

MAX_INPUT = 64 * 1024  # bytes: a store's JSON, a server URL; and each file we read back
MAX_URL = 2048
USAGE = "Usage: docker-credential-minidocker <store|get|erase|list|version>"


class HelperError(Exception):
    """A failure of a verb: its message goes to stdout and the helper exits 1, as the protocol says."""


def store_dir() -> Path:
    """The directory of the secrets, made 0700 (see the module's docstring for where)."""
    if os.environ.get("MINIDOCKER_CREDENTIALS"):
        directory = Path(os.environ["MINIDOCKER_CREDENTIALS"])
    elif os.geteuid() == 0:
        directory = _paths.state_dir() / "credentials"
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        directory = Path(data) / "minidocker" / "credentials"
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.mkdir(exist_ok=True, mode=0o700)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise HelperError(f"{directory} is not a directory of this user's: refusing to keep secrets there")
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)
    return directory


def _file(server_url: str) -> Path:
    if not server_url:
        raise HelperError("no credentials server URL")
    if len(server_url) > MAX_URL:
        raise HelperError(f"server URL longer than {MAX_URL} characters")
    return store_dir() / base64.urlsafe_b64encode(server_url.encode()).decode().rstrip("=")


def _read_bounded(fd: int, what: str) -> bytes:
    data = b""
    while chunk := os.read(fd, MAX_INPUT + 1 - len(data)):
        data += chunk
        if len(data) > MAX_INPUT:
            raise HelperError(f"{what} is larger than {MAX_INPUT} bytes")
    return data


def _load(path: Path) -> dict[str, str] | None:
    """One stored entry; None if there is none (a symlink or a broken file is none too)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # none, or a symlink (ELOOP)
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        document = json.loads(_read_bounded(fd, str(path)))
    except (ValueError, HelperError):
        return None
    finally:
        os.close(fd)
    keys = ("ServerURL", "Username", "Secret")
    if not isinstance(document, dict) or not all(isinstance(document.get(k), str) for k in keys):
        return None
    return {k: document[k] for k in keys}


# --8<-- [start:verbs]
def store(document: dict[str, object]) -> None:
    """``store``: keep ``{"ServerURL", "Username", "Secret"}`` in the server's own 0600 file."""
    server_url, username, secret = (document.get(k, "") for k in ("ServerURL", "Username", "Secret"))
    if not isinstance(server_url, str) or not server_url:
        raise HelperError("no credentials server URL")
    if not isinstance(username, str) or not username:
        raise HelperError("no credentials username")
    if not isinstance(secret, str):
        raise HelperError("the Secret must be a string")
    entry = {"ServerURL": server_url, "Username": username, "Secret": secret}
    atomic_write(_file(server_url), json.dumps(entry), mode=0o600)


def get(server_url: str) -> dict[str, str]:
    """``get``: what ``store`` kept for ``server_url``; the protocol's NOT_FOUND if nothing."""
    entry = _load(_file(server_url))
    if entry is None or entry["ServerURL"] != server_url:
        raise HelperError(NOT_FOUND)
    return entry


def erase(server_url: str) -> None:
    """``erase``: forget ``server_url``; NOT_FOUND if it was not kept."""
    try:
        os.unlink(_file(server_url))
    except FileNotFoundError:
        raise HelperError(NOT_FOUND) from None


def list_all() -> dict[str, str]:
    """``list``: ``{server URL: user name}`` of every entry."""
    found = {}
    for path in sorted(store_dir().iterdir()):
        if not path.name.startswith(".") and (entry := _load(path)):
            found[entry["ServerURL"]] = entry["Username"]
    return found
# --8<-- [end:verbs]


def _stdin() -> str:
    return _read_bounded(sys.stdin.fileno(), "the input").decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    """``docker-credential-minidocker VERB``: errors on stdout and exit status 1, as every helper."""
    argv = sys.argv[1:] if argv is None else argv
    os.umask(0o077)
    try:
        if len(argv) != 1:
            raise HelperError(USAGE)
        verb = argv[0]
        if verb == "store":
            try:
                document = json.loads(_stdin())
            except ValueError:
                raise HelperError("store expects a JSON object {ServerURL, Username, Secret}") from None
            store(document if isinstance(document, dict) else {})
        elif verb == "get":
            print(json.dumps(get(_stdin().strip())))
        elif verb == "erase":
            erase(_stdin().strip())
        elif verb == "list":
            print(json.dumps(list_all()))
        elif verb == "version":
            from importlib.metadata import version

            print(f"docker-credential-minidocker (minidocker) {version('minidocker')}")
        else:
            raise HelperError(f"Unknown credential action `{verb}`")
    except (HelperError, OSError) as e:
        print(e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
