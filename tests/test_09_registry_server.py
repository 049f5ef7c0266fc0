"""Chapter 09: the registry server's API and its storage (two server processes on one storage
directory: test_09_registry_shared_storage.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from minidocker.registry.gc import collect_garbage
from minidocker.registry.server import running
from tests.helpers_09_registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    WRITABLE,
    call,
    manifest_for,
    push_blob,
    push_image,
    sha256,
    stored_files,
)


@pytest.fixture
def registry(tmp_path):
    with running(tmp_path / "storage", *WRITABLE) as server:
        yield server


def test_api_version_check(registry):
    reply = call(registry.url, "GET", "/v2/")
    assert reply.status == 200 and reply.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_blob_get_head_and_range(registry):
    data = os.urandom(100_000)
    digest = push_blob(registry.url, "r/blobs", data)
    head = call(registry.url, "HEAD", f"/v2/r/blobs/blobs/{digest}")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == "100000" and head.headers["Docker-Content-Digest"] == digest
    assert call(registry.url, "GET", f"/v2/r/blobs/blobs/{digest}").body == data
    part = call(registry.url, "GET", f"/v2/r/blobs/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["Content-Range"] == "bytes 10-19/100000"
    beyond = call(registry.url, "GET", f"/v2/r/blobs/blobs/{digest}", headers={"Range": "bytes=200000-"})
    assert beyond.status == 416
    missing = call(registry.url, "GET", f"/v2/r/blobs/blobs/{sha256(b'nope')}")
    assert missing.status == 404 and missing.codes == ["BLOB_UNKNOWN"]


def test_chunked_upload(registry):
    data = os.urandom(3 * 65536 + 17)
    chunks = [data[:65536], data[65536:2 * 65536], data[2 * 65536:]]
    location = call(registry.url, "POST", "/v2/r/chunked/blobs/uploads/").headers["Location"]
    reply = call(registry.url, "PATCH", location, chunks[0], {"Content-Range": "0-65535"})
    assert reply.status == 202 and reply.headers["Range"] == "0-65535"
    status = call(registry.url, "GET", reply.headers["Location"])
    assert status.status == 204 and status.headers["Range"] == "0-65535"
    short = call(registry.url, "PATCH", location, chunks[1][:100], {"Content-Range": "65536-131071"})
    assert short.status == 400 and short.codes == ["SIZE_INVALID"]  # the body is not what the range says
    wrong = call(registry.url, "PATCH", location, chunks[1], {"Content-Range": "70000-135535"})
    assert wrong.status == 416 and wrong.headers["Range"] == "0-65535"  # chunks come in order
    reply = call(registry.url, "PATCH", location, chunks[1], {"Content-Range": "65536-131071"})
    assert reply.status == 202 and reply.headers["Range"] == "0-131071"
    last = f"{2 * 65536}-{len(data) - 1}"  # the last chunk rides on the closing PUT
    done = call(registry.url, "PUT", f"{location}?digest={sha256(data)}", chunks[2], {"Content-Range": last})
    assert done.status == 201 and done.headers["Location"] == f"/v2/r/chunked/blobs/{sha256(data)}"
    assert call(registry.url, "GET", done.headers["Location"]).body == data
    assert call(registry.url, "GET", location).codes == ["BLOB_UPLOAD_UNKNOWN"]  # the session is over


def test_monolithic_uploads_and_cancel(registry):
    data = b"one request"
    single = call(registry.url, "POST", f"/v2/r/mono/blobs/uploads/?digest={sha256(data)}", data)
    assert single.status == 201 and single.headers["Docker-Content-Digest"] == sha256(data)
    assert push_blob(registry.url, "r/mono", b"post then put") == sha256(b"post then put")
    location = call(registry.url, "POST", "/v2/r/mono/blobs/uploads/").headers["Location"]
    assert call(registry.url, "DELETE", location).status == 204
    assert call(registry.url, "PATCH", location, b"x").codes == ["BLOB_UPLOAD_UNKNOWN"]
    other_repo = location.replace("/r/mono/", "/r/other/")  # a session belongs to its repository
    assert call(registry.url, "GET", other_repo).status == 404


def test_cross_repository_mount(registry):
    digest = push_blob(registry.url, "team/a", b"shared layer")
    mounted = call(registry.url, "POST", f"/v2/team/b/blobs/uploads/?mount={digest}&from=team/a")
    assert mounted.status == 201 and mounted.headers["Location"] == f"/v2/team/b/blobs/{digest}"
    assert call(registry.url, "GET", f"/v2/team/b/blobs/{digest}").body == b"shared layer"
    # Not in the source repository: the registry opens an ordinary upload session instead.
    fallback = call(registry.url, "POST", f"/v2/team/c/blobs/uploads/?mount={sha256(b'x')}&from=team/a")
    assert fallback.status == 202 and "/blobs/uploads/" in fallback.headers["Location"]
    # A blob stored once is not in every repository: a repository only serves what it was given.
    assert call(registry.url, "HEAD", f"/v2/team/c/blobs/{digest}").status == 404


def test_manifests_by_tag_and_digest_keep_their_media_type(registry):
    digest, manifest = push_image(registry.url, "r/img", "v1", [b"layer one"])
    for reference in ("v1", digest):
        got = call(registry.url, "GET", f"/v2/r/img/manifests/{reference}")
        assert got.status == 200 and got.body == manifest and sha256(got.body) == digest
        assert got.headers["Content-Type"] == OCI_MANIFEST and got.headers["Docker-Content-Digest"] == digest
    head = call(registry.url, "HEAD", "/v2/r/img/manifests/v1")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(manifest))
    docker_type = "application/vnd.docker.distribution.manifest.v2+json"
    docker_manifest = json.loads(manifest) | {"mediaType": docker_type}
    body = json.dumps(docker_manifest, indent=3).encode()  # any bytes: stored exactly as pushed
    put = call(registry.url, "PUT", "/v2/r/img/manifests/docker", body, {"Content-Type": docker_type})
    assert put.status == 201
    got = call(registry.url, "GET", "/v2/r/img/manifests/docker")
    assert got.headers["Content-Type"] == docker_type and got.body == body
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    put = call(registry.url, "PUT", "/v2/r/img/manifests/multi", index, {"Content-Type": OCI_INDEX})
    assert put.status == 201
    assert call(registry.url, "GET", "/v2/r/img/manifests/multi").headers["Content-Type"] == OCI_INDEX


def test_tag_and_catalog_pagination(registry):
    _, manifest = push_image(registry.url, "r/tags", "a", [b"l"])
    for tag in ("e", "c", "B", "d", "b"):
        call(registry.url, "PUT", f"/v2/r/tags/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
    assert call(registry.url, "GET", "/v2/r/tags/tags/list").json() == {
        "name": "r/tags", "tags": ["B", "a", "b", "c", "d", "e"]}
    page = call(registry.url, "GET", "/v2/r/tags/tags/list?n=4")
    assert page.json()["tags"] == ["B", "a", "b", "c"]
    assert page.headers["Link"] == '</v2/r/tags/tags/list?n=4&last=c>; rel="next"'
    rest = call(registry.url, "GET", "/v2/r/tags/tags/list?n=4&last=c")
    assert rest.json()["tags"] == ["d", "e"] and "Link" not in rest.headers
    empty = call(registry.url, "GET", "/v2/r/tags/tags/list?n=0")
    assert empty.json()["tags"] == [] and "Link" not in empty.headers
    push_blob(registry.url, "r/zz", b"x")
    assert call(registry.url, "GET", "/v2/_catalog").json() == {"repositories": ["r/tags", "r/zz"]}
    first = call(registry.url, "GET", "/v2/_catalog?n=1")
    assert first.json() == {"repositories": ["r/tags"]} and "last=r/tags" in first.headers["Link"]
    assert call(registry.url, "GET", "/v2/nothere/tags/list").codes == ["NAME_UNKNOWN"]


def test_deletes(registry, tmp_path):
    digest, _ = push_image(registry.url, "r/del", "v1", [b"only here"])
    call(registry.url, "PUT", "/v2/r/del/manifests/v2",
         call(registry.url, "GET", "/v2/r/del/manifests/v1").body, {"Content-Type": OCI_MANIFEST})
    assert call(registry.url, "DELETE", "/v2/r/del/manifests/v1").status == 202  # a tag
    assert call(registry.url, "GET", "/v2/r/del/manifests/v1").codes == ["MANIFEST_UNKNOWN"]
    assert call(registry.url, "GET", f"/v2/r/del/manifests/{digest}").status == 200
    assert call(registry.url, "DELETE", f"/v2/r/del/manifests/{digest}").status == 202  # and its tags
    assert call(registry.url, "GET", "/v2/r/del/manifests/v2").codes == ["MANIFEST_UNKNOWN"]
    assert call(registry.url, "GET", "/v2/r/del/tags/list").json()["tags"] == []
    layer = sha256(b"only here")
    assert call(registry.url, "DELETE", f"/v2/r/del/blobs/{layer}").status == 202
    assert call(registry.url, "HEAD", f"/v2/r/del/blobs/{layer}").status == 404
    assert call(registry.url, "DELETE", f"/v2/r/del/blobs/{layer}").codes == ["BLOB_UNKNOWN"]
    assert (tmp_path / "storage" / "blobs" / "sha256" / layer[7:9] / layer[7:]).exists()  # until gc


def test_bad_input_is_refused_and_nothing_is_stored(registry, tmp_path):
    storage = tmp_path / "storage"
    push_blob(registry.url, "r/bad", b"config")
    before = stored_files(storage)
    location = call(registry.url, "POST", "/v2/r/bad/blobs/uploads/").headers["Location"]
    wrong = call(registry.url, "PUT", f"{location}?digest={sha256(b'something else')}", b"content")
    assert wrong.status == 400 and wrong.codes == ["DIGEST_INVALID"]
    assert not list((storage / "uploads").iterdir())  # the rejected bytes are gone too
    missing = manifest_for(b"config", [b"never pushed"])
    reply = call(registry.url, "PUT", "/v2/r/bad/manifests/v1", missing, {"Content-Type": OCI_MANIFEST})
    assert reply.status == 400 and reply.codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert reply.json()["errors"][0]["detail"] == {"digest": sha256(b"never pushed")}
    for body, content_type in ((b"{not json", OCI_MANIFEST), (b'{"schemaVersion": 1}', OCI_MANIFEST),
                               (manifest_for(b"config", []), OCI_INDEX),
                               (b'{"schemaVersion": 2, "config": 3, "layers": []}', OCI_MANIFEST),
                               (b'{"schemaVersion": 2, "manifests": [{"digest": "x"}]}', OCI_INDEX),
                               (manifest_for(b"config", []), "application/vnd.example+json")):
        reply = call(registry.url, "PUT", "/v2/r/bad/manifests/v1", body, {"Content-Type": content_type})
        assert reply.status == 400 and reply.codes == ["MANIFEST_INVALID"], body
    orphan_index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(b"no such manifest"), "size": 16}]}).encode()
    reply = call(registry.url, "PUT", "/v2/r/bad/manifests/v1", orphan_index, {"Content-Type": OCI_INDEX})
    assert reply.codes == ["MANIFEST_BLOB_UNKNOWN"]
    big = manifest_for(b"config", []).replace(b'"layers"', b'"x": "' + b"x" * (4 << 20) + b'", "layers"')
    reply = call(registry.url, "PUT", "/v2/r/bad/manifests/v1", big, {"Content-Type": OCI_MANIFEST})
    assert reply.status == 413
    body = manifest_for(b"config", [])
    reply = call(registry.url, "PUT", f"/v2/r/bad/manifests/{sha256(b'other')}", body,
                 {"Content-Type": OCI_MANIFEST})
    assert reply.codes == ["DIGEST_INVALID"]
    assert call(registry.url, "GET", "/v2/Bad_Name/tags/list").codes == ["NAME_INVALID"]
    assert call(registry.url, "GET", "/v2/r/bad/blobs/sha256:1234").codes == ["DIGEST_INVALID"]
    assert call(registry.url, "GET", "/v2/r/bad/blobs/../../../etc/passwd").status in (400, 404)
    assert call(registry.url, "GET", "/v2/r/bad/manifests/v1").codes == ["MANIFEST_UNKNOWN"]
    assert call(registry.url, "GET", "/v2/r/none/manifests/v1").codes == ["NAME_UNKNOWN"]
    assert call(registry.url, "PUT", "/v2/r/bad/tags/list").status == 405
    assert stored_files(storage) == before  # nothing of the above was stored


def test_referrers(registry):
    digest, manifest = push_image(registry.url, "r/ref", "v1", [b"image layer"])
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}
    empty = b"{}"
    push_blob(registry.url, "r/ref", empty)
    signature = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
        "layers": [], "subject": subject, "annotations": {"signed-by": "alice"}}).encode()
    put = call(registry.url, "PUT", f"/v2/r/ref/manifests/{sha256(signature)}", signature,
               {"Content-Type": OCI_MANIFEST})
    assert put.status == 201 and put.headers["OCI-Subject"] == digest
    found = call(registry.url, "GET", f"/v2/r/ref/referrers/{digest}")
    assert found.status == 200 and found.headers["Content-Type"] == OCI_INDEX
    assert found.json()["manifests"] == [{
        "mediaType": OCI_MANIFEST, "digest": sha256(signature), "size": len(signature),
        "artifactType": "application/vnd.example.sig", "annotations": {"signed-by": "alice"}}]
    filtered = call(registry.url, "GET", f"/v2/r/ref/referrers/{digest}?artifactType=application/x-sbom")
    assert filtered.json()["manifests"] == [] and filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert call(registry.url, "GET", f"/v2/r/ref/referrers/{sha256(b'z')}").json()["manifests"] == []
    assert call(registry.url, "DELETE", f"/v2/r/ref/manifests/{sha256(signature)}").status == 202
    assert call(registry.url, "GET", f"/v2/r/ref/referrers/{digest}").json()["manifests"] == []


def test_read_only_mode(tmp_path):
    with running(tmp_path / "s", *WRITABLE) as writable:
        push_image(writable.url, "r/ro", "v1", [b"layer"])
    with running(tmp_path / "s", "--read-only") as server:
        assert call(server.url, "GET", "/v2/r/ro/manifests/v1").status == 200
        refused = call(server.url, "POST", "/v2/r/ro/blobs/uploads/")
        assert refused.status == 405 and refused.codes == ["UNSUPPORTED"]
        assert call(server.url, "DELETE", "/v2/r/ro/manifests/v1").status == 405


def test_garbage_collection(registry, tmp_path):
    storage = tmp_path / "storage"
    keep, _ = push_image(registry.url, "r/gc", "keep", [b"shared", b"kept only"])
    drop, dropped = push_image(registry.url, "r/gc", "drop", [b"shared", b"dropped only"])
    push_blob(registry.url, "r/gc", b"uploaded, never referenced")
    assert collect_garbage(storage).deleted == []  # everything is younger than the grace period
    call(registry.url, "DELETE", f"/v2/r/gc/manifests/{drop}")
    result = collect_garbage(storage, grace=0)
    config = json.loads(dropped)["config"]["digest"]
    unreferenced = sha256(b"uploaded, never referenced")
    assert set(result.deleted) == {sha256(b"dropped only"), unreferenced, drop, config}
    for layer in (b"shared", b"kept only"):
        assert call(registry.url, "GET", f"/v2/r/gc/blobs/{sha256(layer)}").body == layer
    assert call(registry.url, "HEAD", f"/v2/r/gc/blobs/{sha256(b'dropped only')}").status == 404
    # Moving a tag leaves the old manifest untagged: --delete-untagged collects it and its layers.
    call(registry.url, "PUT", "/v2/r/gc/manifests/keep",
         call(registry.url, "GET", f"/v2/r/gc/manifests/{keep}").body.replace(b'"layers"', b'"x":1,"layers"'),
         {"Content-Type": OCI_MANIFEST})
    assert collect_garbage(storage, grace=0).deleted == []
    untagged = collect_garbage(storage, grace=0, delete_untagged=True)
    assert untagged.untagged == [f"r/gc@{keep}"] and untagged.deleted == [keep]
    assert call(registry.url, "GET", "/v2/r/gc/manifests/keep").status == 200
    cli = subprocess.run([sys.executable, "-m", "minidocker.registry", "gc", "--storage", str(storage),
                          "--grace", "0"], capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.startswith("kept 4 blobs, deleted 0")


def test_collection_spares_what_a_push_in_flight_needs(registry, tmp_path):
    """A blob a pusher found with HEAD is spared; a manifest push waits for a running collection."""
    import threading

    from minidocker.registry.blobstore import BlobStore

    storage = tmp_path / "storage"
    store = BlobStore(storage)
    config, layer = b'{"config": true}', b"an old layer"
    for blob in (config, layer, b"old and forgotten"):
        push_blob(registry.url, "r/flight", blob)
        os.utime(store.path(sha256(blob)), (time.time() - 7200,) * 2)  # two hours old
    for blob in (config, layer):  # the client checks: "do you have these?" (then skips them)
        assert call(registry.url, "HEAD", f"/v2/r/flight/blobs/{sha256(blob)}").status == 200
    assert collect_garbage(storage).deleted == [sha256(b"old and forgotten")]
    replies = []
    with store.lock("gc", shared=False):  # as if a collection were running now
        pusher = threading.Thread(target=lambda: replies.append(call(
            registry.url, "PUT", "/v2/r/flight/manifests/v1", manifest_for(config, [layer]),
            {"Content-Type": OCI_MANIFEST})))
        pusher.start()
        pusher.join(0.5)
        assert pusher.is_alive() and not replies  # waits until the collection is over
    pusher.join(10)
    assert replies[0].status == 201


def test_cli_errors_are_one_line(tmp_path):
    run = [sys.executable, "-m", "minidocker.registry", "serve", "--storage", str(tmp_path)]
    for args, message in ((["--addr", "nonsense"], "--addr 'nonsense': expected HOST:PORT"),
                          (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together")):
        result = subprocess.run([*run, *args], capture_output=True, text=True)
        assert result.returncode == 125 and result.stderr.startswith(f"minidocker: {message}"), result.stderr


def test_a_chunk_longer_than_announced_is_cut_back(tmp_path):
    from minidocker.registry.blobstore import BlobStore, UploadError

    store = BlobStore(tmp_path)
    upload = store.start_upload("r/x")
    with store.append(upload, 0) as writer:
        writer.write(b"12345")
    with pytest.raises(UploadError) as failed, store.append(upload, 5, length=3) as writer:
        writer.write(b"678")
        writer.write(b"9")  # one byte more than the Content-Range said
    assert failed.value.kind == "size" and store.upload_size(upload, "r/x") == 5
    with pytest.raises(UploadError) as failed, store.append(upload, 3):
        pass
    assert failed.value.kind == "offset" and failed.value.size == 5
    assert store.finish_upload(upload, sha256(b"12345")) == 5


def test_acl_and_scopes():
    from minidocker.registry.auth import Acl, Scope, parse_scope

    assert parse_scope("repository:team/app:pull,push") == [Scope("repository", "team/app", "pull"),
                                                            Scope("repository", "team/app", "push")]
    assert parse_scope("nonsense") == []
    acl = Acl([("alice", "alice/*", frozenset({"pull", "push"})), ("*", "library/*", frozenset({"pull"})),
               ("anonymous", "public/*", frozenset({"pull"}))])
    assert acl.allowed("alice", Scope("repository", "alice/app", "push"))
    assert not acl.allowed("bob", Scope("repository", "alice/app", "pull"))
    assert acl.allowed("bob", Scope("repository", "library/busybox", "pull"))
    assert not acl.allowed(None, Scope("repository", "library/busybox", "pull"))
    assert acl.allowed(None, Scope("repository", "public/x", "pull"))
    assert not acl.allowed(None, Scope("registry", "catalog", "*"))
    assert Acl(anonymous_read=True).allowed(None, Scope("repository", "any", "pull"))


def test_a_published_upload_is_never_appended_to(tmp_path):
    """A slow request that opened the upload's file before it was published must not write the blob."""
    from minidocker.registry.blobstore import BlobStore, UploadError

    store = BlobStore(tmp_path)
    upload = store.start_upload("r/x")
    with store.append(upload, 0) as writer:
        writer.write(b"abc")
    data = tmp_path / "uploads" / upload / "data"
    with open(data, "r+b") as late:  # opened, not yet locked, when the PUT publishes the blob
        store.finish_upload(upload, sha256(b"abc"))
        with pytest.raises(UploadError) as failed:
            store._lock_upload(late, data, upload)
    assert failed.value.kind == "unknown" and store.read(sha256(b"abc")) == b"abc"
