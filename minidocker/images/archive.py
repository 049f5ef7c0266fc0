"""Chapter 07: ``docker save`` and ``docker load``: images as one tarball, no registry needed.

The OCI *image layout* is a registry in a directory: ``blobs/sha256/HEX`` holds every blob by
digest, ``index.json`` names the manifests (with their tags as annotations), ``oci-layout`` says
which version of the format this is. ``save`` writes exactly that, plus Docker's ``manifest.json``
(config and layer paths per image), so the same tarball loads into minidocker, ``docker load``,
podman, or ``skopeo copy oci-archive:FILE``. ``load`` reads it back, and also reads what any
``docker save`` ever wrote (``manifest.json`` with ``<id>/layer.tar`` files). Every digest is checked
on the way in, as for a pull: a tarball is no more trusted than a registry.

Example::

    >>> save(["busybox"], "/tmp/busybox.tar")
    >>> load("/tmp/busybox.tar", store=ImageStore(Path("/tmp/other")))
    ['Loaded image: busybox:latest']
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from minidocker.core import digests
from minidocker.core.process import EngineError
from minidocker.images import manifest, reference
from minidocker.images.store import ImageStore

__all__ = ["load", "save"]

CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode, info.uname, info.gname = 0, 0o644, "root", "root"
    if data is None and path is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.size = len(data) if data is not None else path.stat().st_size  # type: ignore[union-attr]
    with (io.BytesIO(data) if data is not None else open(path, "rb")) as f:  # type: ignore[arg-type]
        tar.addfile(info, f)


# exercise 07.10: docker save: images as one OCI layout tarball
# hint: per name: store.get; every blob once, in order (manifest, config, layers); an index.json entry
#   (mediaType, digest, size; CONTAINERD_NAME and REF_NAME annotations when named by tag) and a
#   manifest.json entry per image id (Config, RepoTags, Layers); a streamed PAX tar (_add): oci-layout,
#   index.json, manifest.json, blobs/, blobs/sha256/, the blobs; write OUTPUT.PID.tmp, then os.replace
#   ('-': a dup of stdout); a blob not in the store: EngineError.
# --8<-- [start:save]
def save(names: list[str], output: str, *, store: ImageStore | None = None) -> None:
    """Write the images ``names`` to ``output`` (``-``: standard output) as an OCI layout tarball."""
    store = store or ImageStore()
    blobs: dict[str, None] = {}  # every blob once, in order
    index, docker = [], {}
    for name in names:
        image = store.get(name)
        blobs.update(dict.fromkeys([image.manifest_digest, image.id,
                                    *(layer["digest"] for layer in image.manifest["layers"])]))
        by_id = image.id[7:].startswith(name.removeprefix("sha256:"))
        ref = None if by_id else reference.parse(name)
        annotations = {CONTAINERD_NAME: str(ref), REF_NAME: ref.tag} if ref and ref.tag else {}
        raw = store.read_blob(image.manifest_digest)
        index.append({"mediaType": image.manifest.get("mediaType") or manifest.OCI_MANIFEST,
                      "digest": image.manifest_digest, "size": len(raw),
                      **({"annotations": annotations} if annotations else {})})
        entry = docker.setdefault(image.id, {"Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": [],
                                             "Layers": [f"blobs/sha256/{layer['digest'][7:]}"
                                                        for layer in image.manifest["layers"]]})
        if ref and ref.tag:
            entry["RepoTags"].append(ref.familiar)
    tmp = None if output == "-" else f"{output}.{os.getpid()}.tmp"
    out = os.fdopen(os.dup(1), "wb") if tmp is None else open(tmp, "wb")  # noqa: SIM115
    try:
        with out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _add(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": manifest.OCI_INDEX,
                                                "manifests": index}).encode())
            _add(tar, "manifest.json", json.dumps(list(docker.values())).encode())
            _add(tar, "blobs"), _add(tar, "blobs/sha256")
            for digest in blobs:
                if not store.has_blob(digest):
                    raise EngineError(f"cannot save {digest[:19]}: the blob is not in the content store")
                _add(tar, f"blobs/sha256/{digest[7:]}", path=store.blob_path(digest))
        if tmp:
            os.replace(tmp, output)  # a failed save never leaves a truncated file under the name
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
# --8<-- [end:save]


def _safe_name(name: str) -> str:
    normal = posixpath.normpath(name.lstrip("./") or ".")
    if normal.startswith(("/", "../")) or normal == ".." or "\0" in normal:
        raise EngineError(f"refusing archive member {name!r}: it points outside the archive")
    return normal


def _blob_file(root: Path, digest: object, what: str) -> Path:
    """Where the archive keeps the blob ``digest``: checked *before* it names a file.

    A digest comes from the archive: ``sha256:../../../../dev/zero`` must not become a path.
    """
    if not isinstance(digest, str):
        raise digests.DigestError(f"{what}: invalid digest {digest!r}")
    try:
        algorithm, hexdigits = digests.check_digest(digest)
    except digests.DigestError as e:
        raise digests.DigestError(f"{what}: {e}") from None
    if algorithm != "sha256":
        raise digests.DigestError(f"{what}: unsupported digest algorithm {algorithm}")
    return root / "blobs" / "sha256" / hexdigits


def _read_small(path: Path, what: str, limit: int) -> bytes:
    """A JSON file of the archive, read whole: so it must be a regular file of at most ``limit`` bytes."""
    try:
        size = path.stat().st_size
    except OSError:
        raise EngineError(f"{what}: missing from the archive") from None
    if not path.is_file() or size > limit:
        raise EngineError(f"{what}: {size} bytes, more than the {limit} accepted (or not a file)")
    return path.read_bytes()


def _unpack_archive(source: str, into: Path) -> None:
    """Extract the regular files of an image tarball; symlinks between members become copies."""
    links = {}
    with tarfile.open(source, "r:*") if source != "-" else tarfile.open(fileobj=os.fdopen(
            os.dup(0), "rb"), mode="r|*") as tar:
        for member in tar:
            name = _safe_name(member.name)
            if member.isfile():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(into / name, "wb") as dst:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, dst, 1 << 20)
            elif member.issym() or member.islnk():
                base = posixpath.dirname(name) if member.issym() else ""
                links[name] = _safe_name(posixpath.join(base, member.linkname))
    for name, target in links.items():  # docker save shares a layer between images by symlink
        if (into / target).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(into / target, into / name)


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


class _Loader:
    """Imports the images of an unpacked archive into the store, all or nothing."""

    def __init__(self, root: Path, store: ImageStore) -> None:
        self.root, self.store = root, store
        self.holder = f"load:{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.added: list[str] = []
        self.diff_ids: list[str] = []
        self.pending: list[tuple[str, str, list[str], dict[str, int]]] = []  # recorded when all is in

    def blob(self, path: Path, digest: str | None = None) -> str:
        """Check a file against ``digest`` (or name it by its own) and move it to the content store."""
        actual = _file_digest(path)
        if digest and actual != digest:
            raise digests.DigestError(f"{path.name}: digest mismatch: expected {digest}, got {actual}")
        self.store.lease(self.holder, [actual])  # before we look: kept until the images are recorded
        if not self.store.has_blob(actual):
            tmp = self.store.root / "tmp" / f"{os.getpid()}-{uuid.uuid4().hex}"
            os.link(path, tmp)  # the archive was unpacked on the store's filesystem: no copy
            self.store.commit_blob(tmp, actual)
            self.added.append(actual)
        return actual

    def image(self, manifest_raw: bytes, manifest_digest: str, tags: list[str]) -> str:
        """Store one image's manifest, config and layers (unpacked by chapter 04, diff IDs checked)."""
        document = json.loads(manifest_raw)
        config_digest = document["config"]["digest"]
        config_path = _blob_file(self.root, config_digest, "the image's config")
        _read_small(config_path, f"config {config_digest[:19]}", manifest.MAX_CONFIG)
        self.blob(config_path, config_digest)
        diff_ids = json.loads(self.store.read_blob(config_digest)).get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(document.get("layers", [])):
            raise EngineError("the image's manifest and config disagree on the number of layers")
        for layer, diff_id in zip(document.get("layers", []), diff_ids, strict=True):
            path = _blob_file(self.root, layer["digest"], "a layer of the image")
            digest = self.blob(path, layer["digest"])
            self.diff_ids.append(diff_id)
            self.store.add_layer(self.store.blob_path(digest), digest, diff_id, holder=self.holder)
        self.store.lease(self.holder, [manifest_digest])
        if not self.store.has_blob(manifest_digest):
            self.store.put_blob(manifest_raw, manifest_digest)
            self.added.append(manifest_digest)
        self.pending.append((config_digest, manifest_digest, tags,
                             {d: self.store.layers.size(d) for d in diff_ids}))
        return config_digest

    def record(self) -> None:
        """Record the images, once every one of them is complete: a bad archive loads nothing."""
        for config_digest, manifest_digest, tags, sizes in self.pending:
            self.store.add_image(config_digest, manifest_digest, tags=tags, sizes=sizes)


# --8<-- [start:load]
def load(source: str, *, store: ImageStore | None = None) -> list[str]:
    """Import the images of an OCI layout or ``docker save`` tarball; return Docker's report lines."""
    store = store or ImageStore()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(dir=store.root / "tmp", prefix=f"{os.getpid()}-load-") as tmp:
        root = Path(tmp)
        try:
            _unpack_archive(source, root)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise EngineError(f"{source}: not a readable tar archive: {e}") from None
        loader = _Loader(root, store)
        try:
            try:  # every name and size is checked before use: an archive is no more trusted than a registry
                if (root / "index.json").is_file():
                    index = json.loads(_read_small(root / "index.json", "index.json", manifest.MAX_MANIFEST))
                    for entry in index.get("manifests", []):
                        lines += _load_entry(root, entry, loader)
                elif (root / "manifest.json").is_file():
                    lines = _load_docker(root, loader)
                else:
                    raise EngineError(f"{source}: not an image archive (no index.json, no manifest.json)")
            except (KeyError, TypeError, AttributeError, ValueError) as e:  # a shape we cannot read
                raise EngineError(f"{source}: not a valid image archive ({type(e).__name__}: {e})") from None
            loader.record()
        except BaseException:
            store.roll_back(loader.added, loader.holder, loader.diff_ids)
            raise
        store.release(loader.holder, loader.diff_ids)
    return list(dict.fromkeys(lines))
# --8<-- [end:load]


def _load_entry(root: Path, entry: dict, loader: _Loader) -> list[str]:
    """One entry of an OCI layout's ``index.json``: a manifest (or an index: ours is chosen) and its tags."""
    path = _blob_file(root, entry["digest"], "a manifest in index.json")
    raw = _read_small(path, f"manifest {entry['digest'][:19]}", manifest.MAX_MANIFEST)
    digests.verify_digest(raw, entry["digest"], "manifest in index.json")
    media_type, document = manifest.parse_manifest(raw, entry.get("mediaType"), "archive")
    digest = entry["digest"]
    if media_type in manifest.INDEX_TYPES:
        digest = manifest.select_manifest(document, manifest.Platform.host())["digest"]
        path = _blob_file(root, digest, "a manifest in the archive's index")
        raw = _read_small(path, f"manifest {digest[:19]}", manifest.MAX_MANIFEST)
        digests.verify_digest(raw, digest, "manifest in the archive")
    name = (entry.get("annotations") or {}).get(CONTAINERD_NAME) or \
        (entry.get("annotations") or {}).get(REF_NAME, "")
    tags = [str(reference.parse(name))] if ":" in name or "/" in name else []
    return _report(tags, loader.image(raw, digest, tags))


def _load_docker(root: Path, loader: _Loader) -> list[str]:
    """``docker save``'s own format: per image a config file, layer tars and tags, no manifests."""
    lines = []
    for entry in json.loads(_read_small(root / "manifest.json", "manifest.json", manifest.MAX_MANIFEST)):
        config_path = root / _safe_name(entry["Config"])
        config_digest = _file_digest(config_path)
        layers = []
        for layer_name in entry.get("Layers", []):
            path = root / _safe_name(layer_name)
            with open(path, "rb") as f:
                compression = manifest.compression_of(manifest.OCI_LAYER, f.read(512))
            layers.append({"mediaType": manifest.OCI_LAYER + (f"+{compression}" if compression else ""),
                           "digest": _file_digest(path), "size": path.stat().st_size})
        # Lay the files out as an OCI layout would, so that one code path imports both formats.
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        for path, digest in [(config_path, config_digest)] + [
                (root / _safe_name(n), d["digest"]) for n, d in zip(entry["Layers"], layers, strict=True)]:
            if not (root / "blobs" / "sha256" / digest[7:]).exists():
                os.link(path, root / "blobs" / "sha256" / digest[7:])
        config_raw = config_path.read_bytes()
        document = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                    "config": {"mediaType": manifest.OCI_CONFIG, "digest": config_digest,
                               "size": len(config_raw)}, "layers": layers}
        raw = json.dumps(document, sort_keys=True).encode()
        tags = [str(reference.parse(t)) for t in entry.get("RepoTags") or []]
        image_id = loader.image(raw, digests.digest_of(raw), tags)
        lines += _report(tags, image_id)
    return lines


def _report(tags: list[str], image_id: str) -> list[str]:
    """What ``docker load`` prints for one image."""
    return [f"Loaded image: {reference.parse(t).familiar}" for t in tags] or [f"Loaded image ID: {image_id}"]

