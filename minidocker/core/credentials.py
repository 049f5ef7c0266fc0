"""The client side of Docker's credential helpers: ``docker-credential-NAME store|get|erase|list``.

A config file of base64 passwords is readable by anything that reads the file (a backup, a support
bundle, a ``COPY . /app`` of a home directory). Docker's answer is a small program per secret
store, found on ``$PATH`` as ``docker-credential-NAME``, that the CLI runs with one verb and a
little text on its standard input:

* ``store``: ``{"ServerURL": ..., "Username": ..., "Secret": ...}`` in, nothing out;
* ``get``: the server URL in, the same JSON out, or ``credentials not found in native keychain``
  on stdout with exit status 1 (the one error every helper words the same way);
* ``erase``: the server URL in, nothing out;
* ``list``: nothing in, ``{"ServerURL": "Username", ...}`` out.

Any other failure is a message on stdout and a non-zero exit. A ``Username`` of ``<token>`` marks
an identity token rather than a password. The config file names the helper (``credsStore`` for
every registry, ``credHelpers`` per registry: see :mod:`minidocker.core.dockerconfig`).

What a helper prints is read through a bounded pipe (it is another program: a broken one must not
fill our memory or hang a pull), and no error message repeats the secret we sent it.

Example::

    >>> store("minidocker", "127.0.0.1:5000", "alice", "s3cret")
    >>> get("minidocker", "127.0.0.1:5000")
    Credentials(server_url='127.0.0.1:5000', username='alice', secret='s3cret')
    >>> list_all("minidocker")
    {'127.0.0.1:5000': 'alice'}
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import time
from typing import NamedTuple

from minidocker.core.errors import Failed, InvalidArgument

__all__ = ["MAX_OUTPUT", "NOT_FOUND", "PREFIX", "TOKEN_USERNAME", "Credentials", "erase", "get", "list_all",
           "program", "store"]

PREFIX = "docker-credential-"
NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"  # the Username under which an identity token is stored
MAX_OUTPUT = 1 << 20  # bytes of stdout we read from a helper (a list of many registries fits)
MAX_STDERR = 4096  # bytes of its stderr we keep, for the error message
TIMEOUT = 60.0  # seconds: a helper may ask a keyring to unlock, but may not hang a pull forever
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Credentials(NamedTuple):
    """What a helper keeps for one server: a user name and a secret (a password or an identity token)."""

    server_url: str
    username: str
    secret: str


def program(helper: str) -> str:
    """The path of ``docker-credential-HELPER`` on ``$PATH``; one clear line if it is not there.

    The name comes from a config file, so it is a name and nothing else: no ``/``, no ``..``.
    """
    if not _NAME.fullmatch(helper):
        raise InvalidArgument(f"invalid credential helper name {helper!r}: letters, digits, '.', '_', '-'")
    path = shutil.which(PREFIX + helper)
    if path is None:
        raise Failed(f"credential helper {PREFIX}{helper} is not installed (not found in $PATH)")
    return path


def _run(helper: str, verb: str, data: bytes) -> tuple[int, bytes]:
    """Run ``docker-credential-HELPER VERB`` with ``data`` on stdin; its exit status and stdout.

    Both outputs are read as they come (so neither pipe can block the helper) and bounded: past
    ``MAX_OUTPUT`` bytes of stdout or ``TIMEOUT`` seconds the helper is killed. Its stderr goes into
    the error message of a failure, at most ``MAX_STDERR`` bytes of it.
    """
    process = subprocess.Popen([program(helper), verb], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdin and process.stdout and process.stderr
    out, err, pending = bytearray(), bytearray(), memoryview(data)
    deadline = time.monotonic() + TIMEOUT
    try:
        with selectors.DefaultSelector() as selector:
            os.set_blocking(process.stdin.fileno(), False)
            selector.register(process.stdin, selectors.EVENT_WRITE)
            selector.register(process.stdout, selectors.EVENT_READ, out)
            selector.register(process.stderr, selectors.EVENT_READ, err)
            while selector.get_map():
                if len(out) > MAX_OUTPUT or time.monotonic() > deadline:
                    raise _beyond(helper, verb, len(out))
                for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                    if key.fileobj is process.stdin:
                        try:
                            pending = pending[os.write(key.fd, pending[:65536]):]
                        except BrokenPipeError:
                            pending = pending[:0]  # it did not read it all: its exit status says why
                        if not pending:
                            selector.unregister(process.stdin)
                            process.stdin.close()
                    elif chunk := os.read(key.fd, 65536):
                        key.data.extend(chunk if key.data is out else chunk[:MAX_STDERR - len(err)])
                    else:
                        selector.unregister(key.fileobj)
        try:
            code = process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it closed its output but did not exit
            raise _beyond(helper, verb, len(out)) from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            pipe.close()
    if len(out) > MAX_OUTPUT:
        raise _beyond(helper, verb, len(out))
    if code != 0 and err.strip() and not out.strip():  # a helper that reports on stderr
        out = err
    return code, bytes(out)


def _beyond(helper: str, verb: str, written: int) -> Failed:
    """A helper that wrote too much, or took too long (it has been killed)."""
    why = f"it wrote more than {MAX_OUTPUT} bytes" if written > MAX_OUTPUT else f"no answer in {TIMEOUT:g} s"
    return Failed(f"credential helper {PREFIX}{helper} {verb}: {why}")


def _failure(helper: str, verb: str, code: int, out: bytes) -> Failed:
    """One line: what the helper said (its first line, cut short), or its exit status."""
    said = out.decode(errors="replace").strip().splitlines()
    reason = said[0][:200] if said else f"exit status {code}"
    return Failed(f"credential helper {PREFIX}{helper} {verb} failed: {reason}")


def _strings(document: object, *keys: str) -> bool:
    return isinstance(document, dict) and all(isinstance(document.get(k, ""), str) for k in keys)


# --8<-- [start:store_get]
def store(helper: str, server_url: str, username: str, secret: str) -> None:
    """``store``: keep ``secret`` for ``server_url`` in the helper's store."""
    document = {"ServerURL": server_url, "Username": username, "Secret": secret}
    code, out = _run(helper, "store", json.dumps(document).encode())
    if code != 0:
        raise _failure(helper, "store", code, out)


def get(helper: str, server_url: str) -> Credentials | None:
    """``get``: the credentials kept for ``server_url``, or None if the helper has none."""
    code, out = _run(helper, "get", server_url.encode())
    if code != 0:
        if out.decode(errors="replace").strip() == NOT_FOUND:
            return None
        raise _failure(helper, "get", code, out)
    try:
        document = json.loads(out)
    except ValueError:
        document = None
    if not _strings(document, "ServerURL", "Username", "Secret"):
        raise Failed(f"credential helper {PREFIX}{helper} get: its answer is not a JSON object of strings")
    if not document.get("Username") and not document.get("Secret"):
        return None  # how some helpers (docker-credential-pass 0.6) say "not found"
    return Credentials(server_url, document.get("Username", ""), document.get("Secret", ""))
# --8<-- [end:store_get]


def erase(helper: str, server_url: str) -> bool:
    """``erase``: forget the credentials of ``server_url``; False if the helper had none."""
    code, out = _run(helper, "erase", server_url.encode())
    if code != 0:
        if out.decode(errors="replace").strip() == NOT_FOUND:
            return False
        raise _failure(helper, "erase", code, out)
    return True


def list_all(helper: str) -> dict[str, str]:
    """``list``: ``{server URL: user name}`` of everything the helper keeps."""
    code, out = _run(helper, "list", b"")
    if code != 0:
        raise _failure(helper, "list", code, out)
    try:
        document = json.loads(out or b"{}")
    except ValueError:
        document = None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise Failed(f"credential helper {PREFIX}{helper} list: its answer is not a JSON object of strings")
    return document
