"""Chapter 07's test tooling: images built here, pushed by skopeo into real registries; a token server.

Nothing here uses minidocker's own registry client, so the tests check it against clients and
servers we did not write: images are written as OCI layouts by :class:`ImageBuilder`, copied into
Debian's ``docker-registry`` by ``skopeo`` (in OCI or Docker v2 format), and pulled back by us.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


# ---- layers and images --------------------------------------------------------------------------

def entry(name: str, data: bytes | str | None = None, *, mode: int | None = None, kind: str = "file",
          target: str = "", uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes | None]:
    """One tar member: a file (``data``), a ``dir``, a ``symlink`` or ``link`` (``target``)."""
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.mtime = uid, gid, 1_700_000_000
    payload = data.encode() if isinstance(data, str) else data
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
        return info, None
    if kind in ("symlink", "link"):
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname, info.mode = target, 0o777 if mode is None else mode
        return info, None
    info.size, info.mode = len(payload or b""), 0o644 if mode is None else mode
    return info, payload or b""


def whiteout(path: str) -> tuple[tarfile.TarInfo, bytes | None]:
    """A deletion of ``path`` from the layers below (``dir/.wh.NAME``)."""
    parent, _, name = path.rpartition("/")
    return entry(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")


def opaque(directory: str) -> tuple[tarfile.TarInfo, bytes | None]:
    """Hide everything the layers below have in ``directory`` (``dir/.wh..wh..opq``)."""
    return entry(f"{directory}/.wh..wh..opq", b"")


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A tar archive of ``entries``, in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def compress(raw: bytes, compression: str | None) -> bytes:
    """The layer blob: the tar as is, gzip'ed (level 1: tests are about bytes, not ratios) or zstd'ed."""
    if compression == "gzip":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=1).compress(raw)
    return raw


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    """A layer to build: its tar members and how to compress it."""

    entries: list[tuple[tarfile.TarInfo, bytes | None]]
    compression: str | None = "gzip"
    raw: bytes | None = None  # a ready-made tar instead of entries (e.g. the busybox rootfs)


@dataclass
class ImageBuilder:
    """Writes images into an OCI image layout directory (what ``skopeo copy oci:DIR:TAG`` reads)."""

    root: Path
    manifests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self._write_index()

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return digest

    def descriptor(self, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.blob(data), "size": len(data), **extra}

    def image(self, tag: str | None, layers: list[Layer], config: dict[str, Any] | None = None,
              architecture: str = "amd64", variant: str = "") -> dict[str, Any]:
        """Build one image; tag it in the layout if ``tag``; return its manifest's descriptor."""
        layer_descriptors, diff_ids = [], []
        for layer in layers:
            raw = layer.raw if layer.raw is not None else make_tar(layer.entries)
            diff_ids.append(sha256(raw))
            media_type = OCI_LAYER + (f"+{layer.compression}" if layer.compression else "")
            layer_descriptors.append(self.descriptor(media_type, compress(raw, layer.compression)))
        document = {"architecture": architecture, "os": "linux", "config": config or {},
                    "created": "2024-01-01T00:00:00Z",
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                    "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
        if variant:
            document["variant"] = variant
        config_raw = json.dumps(document).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": self.descriptor(OCI_CONFIG, config_raw), "layers": layer_descriptors}
        platform = {"os": "linux", "architecture": architecture, **({"variant": variant} if variant else {})}
        return self.add_manifest(manifest, tag, platform=platform)

    def add_manifest(self, manifest: dict[str, Any], tag: str | None, **extra: Any) -> dict[str, Any]:
        raw = json.dumps(manifest).encode()
        descriptor = self.descriptor(manifest.get("mediaType", OCI_MANIFEST), raw, **extra)
        if tag:
            self.manifests.append({**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}})
            self._write_index()
        return descriptor

    def _write_index(self) -> None:
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.manifests}))


def skopeo_copy(source: str, dest: str, *extra: str) -> None:
    """``skopeo copy`` without TLS checks (loopback registries are plain HTTP)."""
    command = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", *extra,
               source, dest]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def push(layout: Path, tag: str, registry: str, name: str, fmt: str = "oci",
         creds: str | None = None) -> None:
    """Copy ``layout:tag`` to ``registry/name`` with skopeo, as an OCI or Docker v2 (``v2s2``) image.

    OCI copies keep every byte (``--preserve-digests``: no recompression of plain layers).
    """
    extra = ["--format", fmt] + (["--dest-creds", creds] if creds else [])
    extra += ["--preserve-digests"] if fmt == "oci" else []
    skopeo_copy(f"oci:{layout}:{tag}", f"docker://{registry}/{name}", *extra)


# ---- a token server (Docker's token authentication, for the registry's ``auth: token``) ---------

@dataclass
class TokenServer:
    """A tiny token server: checks Basic credentials, grants what the ACL allows, signs ES256 JWTs.

    ``acl`` maps a user (``""`` for anonymous) to ``{repository prefix: actions}``. Every request's
    query is recorded in ``requests`` (the scopes asked for).
    """

    directory: Path
    users: dict[str, str]
    acl: dict[str, dict[str, list[str]]]
    service: str = "minidocker-test-registry"
    issuer: str = "minidocker-test-issuer"
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minidocker test token issuer")])
        now = time.time()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_utc(now - 3600)).not_valid_after(_utc(now + 86400))
                .sign(self.key, hashes.SHA256()))
        self.certificate = self.directory / "token-cert.pem"
        self.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append(query)
                user = server.check(self.headers.get("Authorization", ""))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = server.token(user, query.get("scope", []))
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def registry_config(self) -> dict[str, Any]:
        """The ``auth`` section that makes the registry trust this server's tokens."""
        return {"auth": {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                                   "rootcertbundle": str(self.certificate)}}}

    def check(self, header: str) -> str | None:
        """The user a Basic header proves (``""`` without one); None for wrong credentials."""
        if not header:
            return ""
        user, _, password = base64.b64decode(header.split()[-1]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def token(self, user: str, scopes: list[str]) -> str:
        import jwt

        access = []
        for scope in " ".join(scopes).split():
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), scope.split(":")[-1]
            allowed = next((a for prefix, a in self.acl.get(user, {}).items() if name.startswith(prefix)), [])
            granted = [a for a in actions.split(",") if a in allowed]
            if kind == "repository" and granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.service, "sub": user, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self.x5c]})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _utc(seconds: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def htpasswd(path: Path, users: dict[str, str]) -> dict[str, Any]:
    """Write an htpasswd file (bcrypt, the only kind the registry takes); return its ``auth`` config."""
    import bcrypt

    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return {"auth": {"htpasswd": {"realm": "minidocker-test", "path": str(path)}}}


class RecordingServer:
    """A plain file server on another port (a "CDN"), recording each request's headers.

    ``delay`` slows each answer down, so that concurrent downloads overlap and can be counted.
    """

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        self.requests: list[dict[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        recorder, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    recorder.requests.append({"path": self.path, **dict(self.headers)})
                    recorder.in_flight += 1
                    recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
                try:
                    time.sleep(delay)
                    path = root / urllib.parse.urlsplit(self.path).path.lstrip("/")
                    data = path.read_bytes() if path.is_file() else None
                    self.send_response(200 if data is not None else 404)
                    self.send_header("Content-Length", str(len(data or b"")))
                    self.end_headers()
                    self.wfile.write(data or b"")
                finally:
                    with lock:
                        recorder.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- what a stack of layers should look like, computed independently of minidocker --------------

def expected_tree(layers: list[Layer]) -> dict[str, str]:
    """Apply layers the way the image spec describes, on a dict ``path -> description``."""
    tree: dict[str, str] = {}
    for layer in layers:
        names = [info.name.strip("/") for info, _ in layer.entries]
        for name in names:  # opaque directories first: they hide the layers below, not this one
            if name.endswith("/.wh..wh..opq"):
                directory = name.rsplit("/", 1)[0]
                for path in [p for p in tree if p.startswith(directory + "/")]:
                    del tree[path]
        for info, data in layer.entries:
            name = info.name.strip("/")
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                continue
            if base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}" if parent else base[4:]
                for path in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                    del tree[path]
                continue
            tree[name] = describe_member(info, data, tree)
    return tree


def describe_member(info: tarfile.TarInfo, data: bytes | None, tree: dict[str, str]) -> str:
    owner = f"{info.uid}:{info.gid}"
    if info.isdir():
        return f"dir {info.mode & 0o7777:o} {owner}"
    if info.issym():
        return f"-> {info.linkname}"
    if info.islnk():
        return tree[info.linkname.strip("/")]
    return f"file {info.mode & 0o7777:o} {owner} {hashlib.sha256(data or b'').hexdigest()[:16]}"


def tree_of(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The same description of a real directory tree (e.g. a mounted container root)."""
    import os

    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            if rel in skip or rel.startswith(tuple(f"{s}/" for s in skip)):
                continue
            st = os.lstat(path)
            owner = f"{st.st_uid}:{st.st_gid}"
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = f"dir {st.st_mode & 0o7777:o} {owner}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                found[rel] = f"file {st.st_mode & 0o7777:o} {owner} {digest}"
    return found


# ---- raw registry requests, for what skopeo cannot push (an index with an attestation) -----------

def raw_request(host: str, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    import http.client

    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def raw_push_blob(host: str, repository: str, data: bytes) -> str:
    digest = sha256(data)
    status, headers, _ = raw_request(host, "POST", f"/v2/{repository}/blobs/uploads/")
    assert status == 202, status
    location = urllib.parse.urlsplit(headers["Location"])
    status, _, body = raw_request(host, "PUT", f"{location.path}?{location.query}&digest={digest}", data,
                                  {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digest


def raw_put_manifest(host: str, repository: str, reference: str, document: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(document).encode()
    status, _, body = raw_request(host, "PUT", f"/v2/{repository}/manifests/{reference}", raw,
                                  {"Content-Type": document["mediaType"]})
    assert status == 201, body
    return {"mediaType": document["mediaType"], "digest": sha256(raw), "size": len(raw)}


def manifest_descriptor(host: str, repository: str, tag: str) -> dict[str, Any]:
    """The descriptor of what ``repository:tag`` points at, as the registry has it."""
    accept = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json, {OCI_INDEX}"
    status, headers, body = raw_request(host, "GET", f"/v2/{repository}/manifests/{tag}", headers={
        "Accept": accept})
    assert status == 200, body
    return {"mediaType": headers["Content-Type"], "digest": sha256(body), "size": len(body)}
