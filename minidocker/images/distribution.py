"""Chapter 07: a client of the OCI distribution protocol, the HTTP API every image registry speaks.

Docker Hub, GitHub's and Google's registries, Harbor, Debian's ``docker-registry``: all answer the
same few requests under ``/v2/``::

    GET  /v2/                              are you a registry? (200, or 401 + how to authenticate)
    GET  /v2/NAME/manifests/TAG|DIGEST     a manifest or index (HEAD: just its digest)
    GET  /v2/NAME/blobs/DIGEST             a config or layer (often a 307 to a CDN)
    HEAD /v2/NAME/blobs/DIGEST             does the registry have it? (push)
    POST /v2/NAME/blobs/uploads/           start an upload (or ?mount=DIGEST&from=OTHER)
    PUT  UPLOAD_URL?digest=DIGEST          finish it with the bytes
    PUT  /v2/NAME/manifests/TAG            publish a manifest under a tag

Every answer is checked against the digest that named it before anything is kept.

Example::

    >>> reg = connect("127.0.0.1:5000")
    >>> manifest = reg.get_manifest("library/busybox", "latest")
    >>> manifest.media_type, manifest.digest
    ('application/vnd.oci.image.manifest.v1+json', 'sha256:…')
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import http.client
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin

from minidocker.core import digests
from minidocker.core import dockerconfig as _dockerconfig
from minidocker.core.process import EngineError
from minidocker.images import manifest
from minidocker.images.auth import Authenticator, AuthError
from minidocker.images.http import Client, HTTPFailure, Response, is_loopback

__all__ = ["Manifest", "Registry", "RegistryError", "connect", "endpoints", "given_credentials"]

DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
CHUNK = 1 << 20  # 1 MiB: blobs stream through memory in pieces of this size
# (registry, auth) set by given_credentials: what the client of the daemon sent for this pull or push
_GIVEN: contextvars.ContextVar[tuple[str, _dockerconfig.RegistryAuth] | None] = \
    contextvars.ContextVar("given_credentials", default=None)


class RegistryError(EngineError):
    """The registry said no; ``status`` is its HTTP status and ``code`` its error code, if any."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as received: the raw bytes (what the digest covers) and their meaning."""

    raw: bytes
    media_type: str
    digest: str
    document: dict[str, Any]

    @property
    def is_index(self) -> bool:
        """True for an index (OCI) or a manifest list (Docker): one manifest per platform."""
        return self.media_type in manifest.INDEX_TYPES


def endpoints(registry: str) -> list[str]:
    """Base URLs to try for a registry, in order: Docker Hub's mirrors first, then the registry.

    Loopback registries use plain HTTP, as Docker does; any other needs HTTPS (an insecure one is
    tried over HTTPS without verification, then over HTTP, by :func:`connect`).
    """
    if registry == "docker.io":
        return [*_dockerconfig.mirrors(), DOCKER_HUB_ENDPOINT]
    return [f"{'http' if is_loopback(registry) else 'https'}://{registry}"]


def connect(registry_or_url: str, credentials: tuple[str, str] | None = None) -> Registry:
    """A session with a registry (``host[:port]``) or endpoint URL, probed with ``GET /v2/``.

    Credentials default to those given for the host by :func:`given_credentials`, else to those
    ``login`` stored for it. Insecure registries (in the config file) are tried over HTTPS with any
    certificate, then over plain HTTP.
    """
    url = registry_or_url if "://" in registry_or_url else endpoints(registry_or_url)[-1]
    host = url.split("://", 1)[1]
    name, given, token = "docker.io" if url == DOCKER_HUB_ENDPOINT else host, _GIVEN.get(), ""
    if credentials is None and given and given[0] == name:  # never sent to another host (a mirror)
        credentials, token = given[1]
    elif credentials is None:
        credentials = _dockerconfig.credentials_for(name)
    insecure = host in _dockerconfig.insecure_registries()
    registry = Registry(url, credentials, verify=not insecure, identity_token=token)
    try:
        registry.ping()
    except RegistryError:
        if not (insecure and url.startswith("https://")):
            raise
        registry = Registry(f"http://{host}", credentials, identity_token=token)
        registry.ping()
    return registry


@contextlib.contextmanager
def given_credentials(registry: str, auth: _dockerconfig.RegistryAuth | None) -> Iterator[None]:
    """Within the block (in this thread), :func:`connect` to ``registry`` uses ``auth``, not the config file.

    The daemon's pull and push: the credentials are the client's, sent with the request
    (``X-Registry-Auth``), as ``docker login`` stored them on the client's side. ``None``: no change.
    """
    reset = _GIVEN.set((registry, auth)) if auth else None
    try:
        yield
    finally:
        if reset is not None:
            _GIVEN.reset(reset)


class Registry:
    """A conversation with one registry endpoint: authentication state, kept-alive connections.

    Safe to share between threads (concurrent blob downloads).
    """

    def __init__(self, url: str, credentials: tuple[str, str] | None = None, *, verify: bool = True,
                 client: Client | None = None, identity_token: str = "") -> None:
        self.url = url.rstrip("/")
        self.host = self.url.split("://", 1)[1]
        self.client = client or Client(verify=verify)
        self.auth = Authenticator(self.client, credentials, identity_token, self.host)

    # --8<-- [start:request]
    def request(self, method: str, path: str, scope: str = "", headers: dict[str, str] | None = None,
                body: bytes | BinaryIO | None = None, retry: bool | None = None) -> Response:
        """Send a request with the right ``Authorization``; after a first 401, authenticate and retry.

        A 401 although we sent credentials or a token means "not allowed": it goes back to the caller.
        """
        url = urljoin(self.url + "/", path.lstrip("/")) if "://" not in path else path
        try:
            sent = self.auth.header(scope)
            response = self.client.request(method, url, {**(headers or {}), **sent}, body, retry=retry)
            if response.status == 401 and not sent:
                challenge = response.header("WWW-Authenticate")
                response.close()
                retry_headers = self.auth.answer(challenge, scope)
                response = self.client.request(method, url, {**(headers or {}), **retry_headers}, body,
                                               retry=retry)
        except AuthError as e:
            raise RegistryError(f"{self.host}: {e}", 401, "UNAUTHORIZED") from None
        except HTTPFailure as e:
            raise RegistryError(str(e), 0, "UNREACHABLE") from None
        return response
    # --8<-- [end:request]

    def ping(self) -> None:
        """``GET /v2/``: is this a registry, and how does it want us to authenticate?"""
        try:  # one attempt: an endpoint that is down now is skipped (mirrors) or reported at once
            with self.client.request("GET", f"{self.url}/v2/", retry=False) as response:
                if response.status == 401:
                    self.auth.learn(response.header("WWW-Authenticate"))
                elif response.status != 200:
                    raise RegistryError(f"{self.host} is not a registry: GET /v2/ answered "
                                        f"{response.status} {response.reason}", response.status)
        except HTTPFailure as e:
            raise RegistryError(str(e), 0, "UNREACHABLE") from None

    def check_login(self) -> None:
        """Raise :class:`RegistryError` unless our credentials are accepted (what ``login`` checks)."""
        self.ping()
        if self.auth.scheme == "bearer":
            try:
                self.auth.fetch_token({k: v for k, v in self.auth.challenge.items() if k != "scope"}, "")
            except AuthError as e:
                raise RegistryError(f"{self.host}: {e}", 401, "UNAUTHORIZED") from None
        elif self.auth.scheme == "basic":
            with self.request("GET", "/v2/") as response:
                if response.status != 200:
                    raise error(response, f"login to {self.host}")

    # --8<-- [start:get_manifest]
    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest or index by tag or digest, offering all four media types; verify its digest.

        The digest covers the *raw bytes* as sent: never hash re-serialized JSON. When we asked by
        digest, that is what they must hash to; by tag, the registry's ``Docker-Content-Digest``.
        """
        what = f"manifest for {self.host}/{repository}:{reference}".replace(":sha256", "@sha256")
        with self.request("GET", f"/v2/{repository}/manifests/{reference}", f"repository:{repository}:pull",
                          {"Accept": manifest.ACCEPT}) as response:
            if response.status != 200:
                raise error(response, what)
            try:  # read whole, so bounded: Docker's 4 MiB
                raw = response.read(manifest.MAX_MANIFEST)
            except HTTPFailure:
                raise RegistryError(f"{what}: larger than {manifest.MAX_MANIFEST} bytes: refused") from None
            content_type, claimed = response.header("Content-Type"), response.header("Docker-Content-Digest")
        expected = reference if ":" in reference else claimed  # a tag has no colon (sha256-HEX.sig)
        if expected:
            digests.verify_digest(raw, expected, what)
        media_type, document = manifest.parse_manifest(raw, content_type, what)
        return Manifest(raw, media_type, expected or digests.digest_of(raw), document)
    # --8<-- [end:get_manifest]

    def resolve(self, repository: str, tag: str) -> str | None:
        """``HEAD`` a manifest: its digest without downloading it (None if the registry won't say).

        A HEAD answer has no body, so no error message either: errors are left to the ``GET``.
        """
        with self.request("HEAD", f"/v2/{repository}/manifests/{tag}", f"repository:{repository}:pull",
                          {"Accept": manifest.ACCEPT}) as response:
            return response.header("Docker-Content-Digest") if response.status == 200 else None

    # --8<-- [start:fetch_blob]
    # --8<-- [start:fetch_blob_part1]
    def fetch_blob(self, repository: str, descriptor: dict[str, Any], dest: BinaryIO,
                   progress: Callable[[int], None] | None = None) -> None:
    # --8<-- [end:fetch_blob_part1]
        """Stream a blob into ``dest``, hashing as it goes; raise unless size and digest match.

        The descriptor must give the size: no byte past it is accepted, so a download is bounded.

        A connection cut mid-blob is resumed where it stopped with a ``Range`` request (or started
        over if the server ignores it), a few times, before giving up.
        """
        # --8<-- [start:fetch_blob_part2]
        digest = descriptor["digest"]
        what = f"blob {digest[:19]} of {self.host}/{repository}"
        size = manifest.checked_size(descriptor, what)  # the bound of the download
        algorithm, _ = digests.check_digest(digest)  # before it goes into a URL: a well-formed digest
        hasher, done = hashlib.new(algorithm), 0
        for attempt in range(1, self.client.attempts + 1):
            headers = {"Range": f"bytes={done}-"} if done else {}
            response = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                                    f"repository:{repository}:pull", headers)
            with response:
                if response.status not in (200, 206):
                    raise error(response, what)
                if done and response.status == 200:  # no resume: start again from zero
                    dest.seek(0), dest.truncate()
                    hasher, done = hashlib.new(algorithm), 0
                try:
                    for chunk in response.iter_chunks(CHUNK):
                        done += len(chunk)
                        if 0 <= size < done:
                            raise digests.DigestError(f"{what}: larger than the {size} bytes announced")
                        hasher.update(chunk)
                        dest.write(chunk)
                        if progress:
                            progress(done)
                    cut = "the connection was closed early" if 0 <= done < size else ""
                except (OSError, ValueError, http.client.HTTPException) as e:  # cut mid-stream
                    cut = str(e) or type(e).__name__
            if not cut:
                break
            if attempt == self.client.attempts:
                raise RegistryError(f"{what}: download failed after {attempt} attempts: {cut}")
        if 0 <= size != done:
            raise digests.DigestError(f"{what}: got {done} bytes, the manifest says {size}")
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest:
            raise digests.DigestError(f"{what}: digest mismatch: got {actual} (corrupted or tampered "
                                      "with: nothing was stored)")
        # --8<-- [end:fetch_blob_part2]
    # --8<-- [end:fetch_blob]

    def has_blob(self, repository: str, digest: str, scope: str = "") -> bool:
        """``HEAD`` a blob: True if the registry has it in ``repository`` (so a push can skip it)."""
        scope = scope or f"repository:{repository}:pull,push"
        with self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope) as response:
            if response.status in (200, 404):
                return response.status == 200
            raise error(response, f"checking blob {digest[:19]} in {self.host}/{repository}")

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob it has in ``source`` into ``repository``: no bytes sent."""
        scope = f"repository:{repository}:pull,push repository:{source}:pull"
        query = urlencode({"mount": digest, "from": source})
        with self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", scope, retry=True) as response:
            location = response.header("Location")
            if response.status == 202 and location:  # no mount: cancel the upload it opened
                self.request("DELETE", location, scope).close()
            return response.status == 201

    # --8<-- [start:upload_blob]
    def upload_blob(self, repository: str, digest: str, size: int, source: BinaryIO,
                    progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob in one piece: ``POST`` opens an upload, ``PUT …?digest=`` sends and seals it."""
        scope, what = f"repository:{repository}:pull,push", f"pushing blob {digest[:19]} to {self.host}"
        for attempt in range(1, self.client.attempts + 1):
            with self.request("POST", f"/v2/{repository}/blobs/uploads/", scope, retry=True) as response:
                if response.status != 202 or not response.header("Location"):
                    raise error(response, what)
                location = urljoin(self.url + "/", response.header("Location") or "")
            location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            try:  # an upload URL is good for one PUT: if that fails, start a new upload
                with self.request("PUT", location, scope, headers, _Counting(source, progress),
                                  retry=False) as response:
                    if response.status != 201:
                        raise error(response, what)
                return
            except RegistryError as e:
                if e.status or attempt == self.client.attempts:
                    raise
    # --8<-- [end:upload_blob]

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Publish a manifest under a tag (or its digest); return the digest the registry computed."""
        what = f"pushing manifest to {self.host}/{repository}:{reference}"
        scope = f"repository:{repository}:pull,push"
        with self.request("PUT", f"/v2/{repository}/manifests/{reference}", scope,
                          {"Content-Type": media_type}, raw) as response:
            if response.status != 201:
                raise error(response, what)
            digest = response.header("Docker-Content-Digest") or digests.digest_of(raw)
        digests.verify_digest(raw, digest, what)
        return digest

    def tags(self, repository: str) -> list[str]:
        """The tags of a repository (``GET /v2/NAME/tags/list``)."""
        with self.request("GET", f"/v2/{repository}/tags/list", f"repository:{repository}:pull") as response:
            if response.status != 200:
                raise error(response, f"tags of {self.host}/{repository}")
            return response.json().get("tags") or []


class _Counting:
    """A file wrapper that reports how much of it was read (upload progress)."""

    def __init__(self, source: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.source, self.progress, self.done = source, progress, 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.done += len(data)
        if self.progress and data:
            self.progress(self.done)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.done = 0
        return self.source.seek(offset, whence)


# exercise 07.3: A registry's error answer as one line
# hint: take code and message from response.json()['errors'][0] if it parses (else the reason); close the
#   response; 404 not found, 401 unauthorized (log in first), 403 denied, 429 toomanyrequests, else the
#   status: return a RegistryError(message, status, code or the default code); never raise it.
# --8<-- [start:error]
def error(response: Response, what: str) -> RegistryError:
    """Turn an error answer into one line: the registry's own error code and message, and what to do."""
    status, code, message = response.status, "", response.reason
    try:
        errors = response.json().get("errors") or []
        if errors:
            code, message = errors[0].get("code", ""), errors[0].get("message", message)
    except (ValueError, AttributeError, OSError):
        pass
    response.close()
    if status == 404:
        return RegistryError(f"{what} not found: {message or code.lower()}", status, code or "NOT_FOUND")
    if status == 401:
        return RegistryError(f"{what}: unauthorized: {message} (log in first: "
                             "python -m minidocker.images login REGISTRY)", status, code or "UNAUTHORIZED")
    if status == 403:
        return RegistryError(f"{what}: denied: {message}", status, code or "DENIED")
    if status == 429:
        return RegistryError(f"{what}: toomanyrequests: {message} (the registry's rate limit: wait, or log "
                             "in for a higher one)", status, code or "TOOMANYREQUESTS")
    return RegistryError(f"{what}: the registry answered {status} {response.reason}: {message}", status, code)
# --8<-- [end:error]
