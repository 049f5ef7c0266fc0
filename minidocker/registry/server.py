"""Chapter 09: a registry server: the OCI distribution API over the content-addressed store.

``docker push``, ``docker pull`` and ``skopeo copy`` speak one small HTTP API (the OCI distribution
spec, born as Docker's registry API v2). Every endpoint is one line of the table below; the state
lives in the storage directory only (``registry/blobstore.py``, ``registry/store.py``), so any number of
server processes can serve one directory: a server is *stateless*, scale by starting more.

Blobs stream to and from disk (uploads in 1 MiB pieces, downloads with sendfile(2)), never whole in
memory; aiohttp serves many clients at once on one event loop.

Run it::

    python -m minidocker.registry serve --addr 127.0.0.1:5000 --storage /tmp/registry
    skopeo copy --dest-tls-verify=false oci:image:latest docker://127.0.0.1:5000/busybox:latest
    python -m minidocker.registry gc --storage /tmp/registry

Options of ``serve``: ``--htpasswd FILE`` (Basic auth), ``--token-key FILE`` (Bearer tokens from our
own ``/token`` endpoint, with ``--acl FILE`` for per-repository scopes), ``--anonymous-read``,
``--read-only``, ``--allow-anonymous-push`` (without auth, pushes are refused unless given),
``--delete-enabled`` (deletes are refused unless given), ``--tls-cert``/``--tls-key``,
``--access-log FILE`` (``-`` for stderr).

Errors are classified once: handlers and the store raise the kinds of ``core/errors.py`` with the
spec's ``code``; :func:`error_response` is the one place that turns them into the spec's error JSON,
with the kind's status (``core.errors.http_status``) or the protocol's own (405, 413, 416). Anything
else is a bug: a 500, and its traceback in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from minidocker.core.digests import DigestError, check_digest
from minidocker.core.errors import InvalidArgument, Kind, NotFound, Unauthorized, http_status
from minidocker.registry.access import Authorizer
from minidocker.registry.blobstore import BlobStore
from minidocker.registry.protocol import ProtocolError
from minidocker.registry.store import Repositories, check_name
from minidocker.registry.uploads import UploadHandlers

__all__ = ["MAX_MANIFEST", "Registry", "Running", "error_response", "main", "make_app", "running", "seed",
           "serve"]

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 * 1024 * 1024  # the size the spec says every registry should accept
_N = r"(?P<name>.+?)"


class Registry(UploadHandlers):
    """The API's handlers over one storage directory (uploads in :class:`UploadHandlers`)."""

    # --8<-- [start:routes]
    ROUTES: ClassVar = [  # (method, path, handler, action the user needs on the repository)
        ("GET", r"/v2/", "version", None),
        ("GET", r"/v2/_catalog", "catalog", "catalog"),
        ("GET", rf"/v2/{_N}/tags/list", "tags", "pull"),
        ("GET", rf"/v2/{_N}/manifests/(?P<reference>[^/]+)", "get_manifest", "pull"),
        ("PUT", rf"/v2/{_N}/manifests/(?P<reference>[^/]+)", "put_manifest", "push"),
        ("DELETE", rf"/v2/{_N}/manifests/(?P<reference>[^/]+)", "delete_manifest", "delete"),
        ("POST", rf"/v2/{_N}/blobs/uploads/", "start_upload", "push"),
        ("GET", rf"/v2/{_N}/blobs/uploads/(?P<upload>[^/]+)", "upload_status", "push"),
        ("PATCH", rf"/v2/{_N}/blobs/uploads/(?P<upload>[^/]+)", "patch_upload", "push"),
        ("PUT", rf"/v2/{_N}/blobs/uploads/(?P<upload>[^/]+)", "finish_upload", "push"),
        ("DELETE", rf"/v2/{_N}/blobs/uploads/(?P<upload>[^/]+)", "cancel_upload", "push"),
        ("GET", rf"/v2/{_N}/blobs/(?P<digest>[^/]+)", "get_blob", "pull"),
        ("DELETE", rf"/v2/{_N}/blobs/(?P<digest>[^/]+)", "delete_blob", "delete"),
        ("GET", rf"/v2/{_N}/referrers/(?P<digest>[^/]+)", "referrers", "pull"),
    ]
    # --8<-- [end:routes]

    def __init__(self, storage: str, authorizer: Authorizer | None = None, read_only: bool = False,
                 max_manifest: int = MAX_MANIFEST, delete_enabled: bool = False) -> None:
        self.store = BlobStore(storage)
        self.repos = Repositories(self.store)
        self.auth = authorizer or Authorizer()
        self.read_only, self.max_manifest, self.delete_enabled = read_only, max_manifest, delete_enabled
        self._routes = [(m, re.compile(f"^{p}$"), getattr(self, h), a) for m, p, h, a in self.ROUTES]

    # --8<-- [start:dispatch]
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Find the route, check the name and the caller's rights, run the handler (errors: the middleware).

        Deletes are off unless ``--delete-enabled`` (as distribution's ``storage.delete.enabled``):
        a registry that forgets images because someone asked is a choice to make, not a default.
        """
        method = "GET" if request.method == "HEAD" else request.method
        matches = [(m, r.match(request.path), h, a) for m, r, h, a in self._routes]
        matches = [(m, match, h, a) for m, match, h, a in matches if match]
        if not matches:
            raise NotFound(f"no such endpoint: {request.path}", code="UNSUPPORTED")
        found = [(match, h, a) for m, match, h, a in matches if m == method]
        if not found:
            raise ProtocolError(405, f"{request.method} is not supported on {request.path}",
                                code="UNSUPPORTED")
        match, handler, action = found[0]
        args = match.groupdict()
        if "name" in args:
            check_name(args["name"])
        if self.read_only and method != "GET":
            raise ProtocolError(405, "this registry is read-only", code="UNSUPPORTED")
        if action == "delete" and not self.delete_enabled:
            raise ProtocolError(405, "deletes are disabled on this registry (--delete-enabled)",
                                code="UNSUPPORTED")
        if action is not None or self.auth.enabled:
            request["identity"] = await self.auth.authorize(request, args.get("name"), action)
        return await handler(request, **args)
    # --8<-- [end:dispatch]

    @staticmethod
    async def version(request: web.Request) -> web.Response:
        return web.json_response({})

    # -- blobs ------------------------------------------------------------------------------------
    async def get_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """A blob, streamed from disk with sendfile(2); ``Range`` answers 206 with part of it."""
        check_digest(digest)
        if self.repos.blob_size(name, digest) is None:
            raise NotFound(f"blob {digest} is not in {name}", code="BLOB_UNKNOWN", detail={"digest": digest})
        if request.method == "HEAD":
            self.store.touch(digest)  # a pusher may rely on it: keep it past the next collection
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"}
        return web.FileResponse(self.store.path(digest), headers=headers)

    async def delete_blob(self, request: web.Request, name: str, digest: str) -> web.Response:
        if not self.repos.unlink_blob(name, digest):
            raise NotFound(f"blob {digest} is not in {name}", code="BLOB_UNKNOWN", detail={"digest": digest})
        return web.Response(status=202)

    # -- manifests --------------------------------------------------------------------------------
    async def get_manifest(self, request: web.Request, name: str, reference: str) -> web.Response:
        """A manifest, with the media type it was pushed with; HEAD gives the same headers only."""
        digest, media_type, body = self.repos.get_manifest(name, reference)
        return web.Response(body=body, headers={"Content-Type": media_type, "Docker-Content-Digest": digest,
                                                "ETag": f'"{digest}"'})

    # --8<-- [start:put_manifest_handler]
    async def put_manifest(self, request: web.Request, name: str, reference: str) -> web.Response:
        """Read at most ``max_manifest`` bytes, validate and store; 413 for a larger body."""
        if (request.content_length or 0) > self.max_manifest:
            raise self._too_large(request.content_length)
        body = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            body += chunk
            if len(body) > self.max_manifest:
                raise self._too_large(len(body))
        content_type = request.headers.get("Content-Type", "")
        loop = asyncio.get_running_loop()  # may wait for a garbage collection to finish
        digest, manifest = await loop.run_in_executor(None, self.repos.put_manifest, name, reference,
                                                      bytes(body), content_type)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest,
                   "Content-Length": "0"}
        if manifest.subject:
            headers["OCI-Subject"] = manifest.subject
        return web.Response(status=201, headers=headers)
    # --8<-- [end:put_manifest_handler]

    def _too_large(self, size: int | None) -> ProtocolError:
        return ProtocolError(413, f"the manifest is {size} bytes or more; this registry accepts manifests "
                                  f"up to {self.max_manifest} bytes", code="MANIFEST_INVALID")

    async def delete_manifest(self, request: web.Request, name: str, reference: str) -> web.Response:
        self.repos.delete_manifest(name, reference)
        return web.Response(status=202)

    # -- listings ---------------------------------------------------------------------------------
    async def tags(self, request: web.Request, name: str) -> web.Response:
        return self._page(request, f"/v2/{name}/tags/list", "tags", self.repos.tags(name), {"name": name})

    async def catalog(self, request: web.Request) -> web.Response:
        return self._page(request, "/v2/_catalog", "repositories", self.repos.catalog(), {})

    # --8<-- [start:page]
    @staticmethod
    def _page(request: web.Request, path: str, key: str, items: list[str],
              extra: dict[str, Any]) -> web.Response:
        """``n`` items after ``last``, and a ``Link: <…>; rel="next"`` header if more remain."""
        last, count = request.query.get("last"), request.query.get("n")
        if last is not None:
            items = [i for i in items if i > last]
        headers = {}
        if count is not None:
            if not count.isdigit():
                raise InvalidArgument(f"n must be a number, not {count!r}", code="UNSUPPORTED")
            n = min(int(count), 10000)
            if len(items) > n > 0:
                headers["Link"] = f'<{path}?n={n}&last={items[n - 1]}>; rel="next"'
            items = items[:n]
        return web.json_response({**extra, key: items}, headers=headers)
    # --8<-- [end:page]

    async def referrers(self, request: web.Request, name: str, digest: str) -> web.Response:
        """The index of manifests whose ``subject`` is ``digest``, filtered by ``artifactType``."""
        check_digest(digest)
        artifact_type = request.query.get("artifactType")
        found = self.repos.referrers(name, digest, artifact_type) if self.repos.exists(name) else []
        index_type = "application/vnd.oci.image.index.v1+json"
        index = {"schemaVersion": 2, "mediaType": index_type, "manifests": found}
        headers = {"Content-Type": index_type}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(body=json.dumps(index).encode(), headers=headers)


# The spec's code for a kind raised without one (every error body must name a code).
_DEFAULT_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 405: "UNSUPPORTED", 501: "UNSUPPORTED"}


# --8<-- [start:error_response]
def error_response(error: Kind | DigestError) -> web.Response:
    """The one place an error becomes an answer: the spec's ``{"errors": [{"code", "message", "detail"}]}``.

    The status is the kind's (``core.errors.http_status``: NotFound 404, InvalidArgument 400 ...)
    or, for the few the HTTP protocol itself defines, the :class:`ProtocolError`'s own.
    """
    if isinstance(error, DigestError) and not isinstance(error, Kind):
        error = InvalidArgument(str(error), code="DIGEST_INVALID")
    status = error.status if isinstance(error, ProtocolError) else http_status(error)
    code = error.code or _DEFAULT_CODES.get(status, "UNKNOWN")
    body = {"errors": [{"code": code, "message": str(error), "detail": error.detail}]}
    headers = {"Content-Type": "application/json"}
    if isinstance(error, Unauthorized) and error.challenge:
        headers["WWW-Authenticate"] = error.challenge
    if status == 416 and isinstance(error.detail, dict) and "size" in error.detail:
        headers["Range"] = f"0-{max(error.detail['size'] - 1, 0)}"  # where the upload really ends
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)
# --8<-- [end:error_response]


def make_app(registry: Registry) -> web.Application:
    """The aiohttp application: every ``/v2/`` path goes to :meth:`Registry.dispatch`, plus ``/token``."""

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except (Kind, DigestError) as e:
            return error_response(e)
        except web.HTTPException:
            raise
        except Exception:  # a bug: say so, and leave the traceback in the log
            log.exception("%s %s failed", request.method, request.path)
            body = {"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": None}]}
            return web.json_response(body, status=500)

    @web.middleware
    async def api_version(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
        return response

    app = web.Application(middlewares=[api_version, errors])
    app.router.add_route("*", "/v2/{tail:.*}", registry.dispatch)
    if registry.auth.tokens is not None:
        app.router.add_route("GET", "/token", registry.auth.token_endpoint)
        app.router.add_route("POST", "/token", registry.auth.token_endpoint)
    return app


class _AccessLog(AbstractAccessLogger):
    """One line a request: what came in, what went out (``--access-log``)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        sent = [f"{h}: {request.headers[h]}" for h in ("Content-Type", "Content-Range")
                if h in request.headers]
        got = [f"{h}: {response.headers[h]}" for h in ("Location", "Range", "Docker-Content-Digest",
                                                       "WWW-Authenticate") if h in response.headers]
        size = request.content_length if request.content_length is not None else "-"
        self.logger.info(f"{request.method} {request.path_qs} {' '.join(sent)} ({size} bytes in) -> "
                         f"{response.status} {' '.join(got)} ({response.body_length} bytes out, "
                         f"{time * 1000:.1f} ms)".replace("  ", " "))


# exercise 09.5: Serve the application until SIGTERM
# hint: web.AppRunner(app, ...), setup(), web.TCPSite(runner, host, port, ssl_context=...).start();
#   print "listening on http://HOST:PORT" (runner.addresses[0][1]) and flush; wait on an
#   asyncio.Event set by SIGTERM/SIGINT handlers; runner.cleanup().
# --8<-- [start:serve]
async def serve(app: web.Application, host: str, port: int, ssl_context: Any = None,
                access_log: logging.Logger | None = None) -> None:
    """Listen until SIGTERM or SIGINT; print the address (port 0 picks a free one) once ready."""
    runner = web.AppRunner(app, access_log=access_log, access_log_class=_AccessLog,
                           handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024).start()
    scheme = "https" if ssl_context else "http"
    print(f"listening on {scheme}://{host}:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
# --8<-- [end:serve]


@dataclass
class Running:
    """A registry server in a subprocess (see :func:`running`)."""

    url: str
    process: subprocess.Popen

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of image names (``127.0.0.1:PORT/busybox:latest``)."""
        return self.url.split("://", 1)[1]


@contextlib.contextmanager
def running(storage: str | Path, *options: str, addr: str = "127.0.0.1:0") -> Iterator[Running]:
    """Run ``python -m minidocker.registry serve`` until the block ends: tests, notebooks, demos."""
    command = [sys.executable, "-m", "minidocker.registry", "serve", "--addr", addr,
               "--storage", str(storage), *options]
    from minidocker.core import syscalls as _syscalls

    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,  # never outlives its caller
                               preexec_fn=lambda: _syscalls.prctl(_syscalls.PR_SET_PDEATHSIG, signal.SIGTERM))
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the registry server did not start (exit status {process.wait()})")
        yield Running(line.split()[-1], process)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


# --8<-- [start:seed]
def seed(storage: str | Path, name: str = "library/busybox:latest") -> str:
    """Write chapter 00's busybox into a registry's storage directly; return the manifest digest.

    How ``./setup.sh demo`` fills the mirror it gives the daemon: the registry takes no anonymous
    push, so whoever may write its storage directory (root) seeds it through the filesystem,
    with the same store code a push goes through, blobs first and the manifest last.

    Example::

        >>> seed("/var/lib/minidocker/registry")
        'sha256:4b3e8411…'
    """
    from minidocker.core.digests import digest_of
    from minidocker.images.push import busybox_image
    from minidocker.registry.store import OCI_MANIFEST

    repository, _, tag = name.partition(":")
    store = BlobStore(storage)
    repos = Repositories(store)
    blobs, raw = busybox_image()
    for blob in blobs:
        repos.link_blob(repository, store.put(blob, digest_of(blob)))
    return repos.put_manifest(repository, tag or "latest", raw, OCI_MANIFEST)[0]
# --8<-- [end:seed]


def _parser(prog: str) -> argparse.ArgumentParser:
    from minidocker.core.stage import _Parser  # usage errors: one line, exit 125

    parser = _Parser(prog=prog, description=__doc__.splitlines()[0].removeprefix("Chapter 09: "))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the registry API")
    run.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT (port 0: any free port)")
    run.add_argument("--storage", help="storage directory (default: $MINIDOCKER_STATE/registry)")
    run.add_argument("--htpasswd", help="users and bcrypt hashes: Basic auth, or the token endpoint's users")
    run.add_argument("--token-key", help="PEM key signing Bearer tokens (created if missing): token auth")
    run.add_argument("--token-service", default="minidocker-registry", help="the tokens' audience")
    run.add_argument("--token-realm", help="token endpoint URL to advertise (default: this server's /token)")
    run.add_argument("--acl", help="per-repository rules: USER REPO-GLOB ACTIONS per line")
    run.add_argument("--anonymous-read", action="store_true", help="let anyone pull without logging in")
    run.add_argument("--read-only", action="store_true", help="refuse every push and delete")
    run.add_argument("--allow-anonymous-push", action="store_true",
                     help="without --htpasswd or --token-key, let anyone push (default: nobody may)")
    run.add_argument("--delete-enabled", action="store_true",
                     help="accept DELETE of manifests and blobs (default: 405, as distribution)")
    run.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    run.add_argument("--tls-key", help="the certificate's private key (PEM)")
    run.add_argument("--access-log", help="log every request to FILE ('-': stderr)")
    run.add_argument("--max-manifest-size", type=int, default=MAX_MANIFEST, help="bytes (default 4 MiB)")
    collect = commands.add_parser("gc", help="delete blobs that no manifest references")
    collect.add_argument("--storage", help="storage directory (default: $MINIDOCKER_STATE/registry)")
    collect.add_argument("--grace", type=float, default=3600, help="spare blobs younger than this (seconds)")
    collect.add_argument("--delete-untagged", action="store_true", help="delete manifests no tag reaches")
    collect.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    seed = commands.add_parser("seed", help="write chapter 00's busybox into the storage (no HTTP, no push)")
    seed.add_argument("--storage", help="storage directory (default: $MINIDOCKER_STATE/registry)")
    seed.add_argument("name", nargs="?", default="library/busybox:latest")
    users = commands.add_parser("htpasswd", help="add or replace a user in an htpasswd file (bcrypt)")
    users.add_argument("file")
    users.add_argument("user")
    users.add_argument("--password", help="the password (default: read one line from stdin)")
    return parser


def _storage(args: argparse.Namespace) -> str:
    from minidocker.core.paths import state_dir

    return args.storage or str(state_dir() / "registry")


def _serve(args: argparse.Namespace) -> int:
    from minidocker.core.process import EngineError
    from minidocker.registry.access import Authorizer
    from minidocker.registry.auth import Acl, Htpasswd, TokenAuthority

    host, _, port = args.addr.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"--addr {args.addr!r}: expected HOST:PORT, e.g. 127.0.0.1:5000")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise EngineError("--tls-cert and --tls-key go together: give both files")
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.allow_anonymous_push and (args.htpasswd or args.token_key):
        raise EngineError("--allow-anonymous-push is for a registry without users: with --htpasswd or "
                          "--token-key, an ACL rule 'anonymous REPO-GLOB push' says who may")
    try:
        acl = Acl.load(args.acl, args.anonymous_read)
    except ValueError as e:
        raise EngineError(str(e)) from None
    authorizer = Authorizer(Htpasswd(args.htpasswd) if args.htpasswd else None, acl,
                            TokenAuthority(args.token_key, args.token_service) if args.token_key else None,
                            args.token_realm, anonymous_push=args.allow_anonymous_push)
    registry = Registry(_storage(args), authorizer, args.read_only, args.max_manifest_size,
                        delete_enabled=args.delete_enabled)
    log = None
    if args.access_log:
        log = logging.getLogger("minidocker.images.distribution.access")
        log.setLevel(logging.INFO)
        handler = logging.StreamHandler() if args.access_log == "-" else logging.FileHandler(args.access_log)
        log.addHandler(handler)
    asyncio.run(serve(make_app(registry), host.strip("[]"), int(port), ssl_context, log))
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m minidocker.registry") -> int:
    """``python -m minidocker.registry serve|gc|seed|htpasswd …``; ``minidocker registry …`` calls
    ``main(rest, prog="minidocker registry")``."""
    from minidocker.core import stage as _stage

    def body() -> int:
        args = _parser(prog).parse_args(argv)
        if args.command == "serve":
            return _serve(args)
        if args.command == "gc":
            from minidocker.registry.gc import collect_garbage

            print(collect_garbage(_storage(args), grace=args.grace, delete_untagged=args.delete_untagged,
                                  dry_run=args.dry_run))
            return 0
        if args.command == "seed":
            print(seed(_storage(args), args.name))
            return 0
        from minidocker.core.atomic import atomic_write
        from minidocker.registry.auth import Htpasswd

        password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
        path = Path(args.file)
        lines = [x for x in (path.read_text().splitlines() if path.exists() else [])
                 if x.partition(":")[0] != args.user]
        try:
            line = Htpasswd.line(args.user, password)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, "\n".join([*lines, line]) + "\n")
        return 0

    return _stage.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
