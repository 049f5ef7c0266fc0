"""Chapter 09: clients we did not write push to our registry and pull from it: skopeo, dockerd, and
chapter 07's client; with Basic auth, Bearer tokens with per-repository scopes, and TLS."""

from __future__ import annotations

import datetime
import gzip
import io
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from minidocker import rootfs
from minidocker.registry.server import running
from minidocker.testing import ocilayout as _ocilayout
from tests.helpers_09_registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    WRITABLE,
    Dockerd,
    call,
    sha256,
    skopeo,
)

SERVER = (sys.executable, "-m", "minidocker.registry")
NO_TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")
ACL = """\
alice      alice/*     pull,push,delete
*          library/*   pull
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """An OCI layout with busybox (tag ``busybox``) and a two-platform index (tag ``multi``)."""
    path = tmp_path_factory.mktemp("layout")
    _ocilayout.write_image(path, "busybox", [rootfs.busybox_tar().read_bytes()], cmd=["/bin/sh"])
    amd64 = _ocilayout.write_image(path, None, [b"amd64 layer" * 1000], architecture="amd64")
    arm64 = _ocilayout.write_image(path, None, [b"arm64 layer" * 1000], architecture="arm64")
    _ocilayout.write_index(path, "multi", [amd64, arm64])
    return path


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Path:
    """An htpasswd file (made with our own 'htpasswd' command) and an ACL next to it."""
    path = tmp_path_factory.mktemp("auth")
    for user, password in (("alice", "alice-pw"), ("bob", "bob-pw")):
        subprocess.run([*SERVER, "htpasswd", str(path / "htpasswd"), user], input=f"{password}\n", text=True,
                       check=True)
    (path / "acl").write_text(ACL)
    return path


def inspect(reference: str, *flags: str) -> bytes:
    return skopeo("inspect", "--raw", "--tls-verify=false", *flags, reference).stdout.encode()


@pytest.mark.parametrize("fmt, media_type", [
    ("oci", OCI_MANIFEST), ("v2s2", "application/vnd.docker.distribution.manifest.v2+json")])
def test_skopeo_pushes_and_pulls(layout, tmp_path, fmt, media_type):
    with running(tmp_path / "storage", *WRITABLE) as registry:
        target = f"docker://{registry.host}/library/busybox:{fmt}"
        skopeo("copy", *NO_TLS, "--format", fmt, f"oci:{layout}:busybox", target)
        head = call(registry.url, "HEAD", f"/v2/library/busybox/manifests/{fmt}")
        assert head.headers["Content-Type"] == media_type  # kept exactly as pushed
        pushed = json.loads(inspect(target))
        skopeo("copy", *NO_TLS, target, f"oci:{tmp_path}/pulled:{fmt}")
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    manifest = json.loads((tmp_path / "pulled" / "blobs" / "sha256" / index["manifests"][0]["digest"][7:])
                          .read_bytes())
    assert [x["digest"] for x in manifest["layers"]] == [x["digest"] for x in pushed["layers"]]
    for descriptor in (manifest["config"], *manifest["layers"]):  # every pulled blob is what it claims
        blob = (tmp_path / "pulled" / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes()
        assert sha256(blob) == descriptor["digest"]


@pytest.mark.parametrize("fmt, list_type, child_type", [
    ("oci", OCI_INDEX, OCI_MANIFEST), ("v2s2", DOCKER_LIST, DOCKER_MANIFEST)])
def test_skopeo_copies_a_multi_platform_index(layout, tmp_path, fmt, list_type, child_type):
    """skopeo pushes the two-platform image as it is (an OCI index) or, with ``--format v2s2``, as a
    Docker manifest list; the registry keeps the list and each platform's manifest byte for byte, with
    their media types, and ``copy --all`` pulls all of it back unchanged."""
    source = json.loads((layout / "index.json").read_text())
    multi = next(m for m in source["manifests"] if m["annotations"][_ocilayout.REF_NAME] == "multi")
    convert = ("--format", "v2s2") if fmt == "v2s2" else ()
    expected = tmp_path / "expected"  # what skopeo sends, written to a directory instead
    skopeo("copy", "--all", *convert, f"oci:{layout}:multi", f"dir:{expected}")
    with running(tmp_path / "storage", *WRITABLE) as registry:
        target = f"docker://{registry.host}/library/multi:{fmt}"
        skopeo("copy", "--all", *convert, *NO_TLS, f"oci:{layout}:multi", target)
        raw = inspect(target)
        assert raw == (expected / "manifest.json").read_bytes()  # the list, byte for byte
        if fmt == "oci":
            assert sha256(raw) == multi["digest"]  # our layout's own index, not rewritten
        head = call(registry.url, "HEAD", f"/v2/library/multi/manifests/{fmt}")
        assert head.headers["Content-Type"] == list_type == json.loads(raw)["mediaType"]
        assert head.headers["Docker-Content-Digest"] == sha256(raw)
        children = json.loads(raw)["manifests"]
        assert [(c["mediaType"], c["platform"]["architecture"]) for c in children] == [
            (child_type, "amd64"), (child_type, "arm64")]
        for child in children:  # each platform's manifest, by digest, as skopeo made it
            got = call(registry.url, "GET", f"/v2/library/multi/manifests/{child['digest']}")
            assert got.headers["Content-Type"] == child_type
            assert got.body == (expected / f"{child['digest'][7:]}.manifest.json").read_bytes()
        arm = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", target).stdout)
        assert arm["Architecture"] == "arm64"  # skopeo picked the arm64 entry of our list
        assert arm["Layers"] == [sha256(gzip.compress(b"arm64 layer" * 1000, compresslevel=6, mtime=0))]
        skopeo("copy", "--all", *NO_TLS, target, f"dir:{tmp_path}/pulled")  # a dir: keeps what it gets
    pulled = tmp_path / "pulled"
    assert (pulled / "manifest.json").read_bytes() == raw
    for child in children:
        body = (pulled / f"{child['digest'][7:]}.manifest.json").read_bytes()
        assert sha256(body) == child["digest"] and json.loads(body)["mediaType"] == child_type
        manifest = json.loads(body)
        for descriptor in (manifest["config"], *manifest["layers"]):  # every blob is what it claims
            assert sha256((pulled / descriptor["digest"][7:]).read_bytes()) == descriptor["digest"]


def test_basic_auth_and_anonymous_read(layout, users, tmp_path):
    with running(tmp_path / "s", "--htpasswd", str(users / "htpasswd"), "--anonymous-read") as registry:
        target = f"docker://{registry.host}/library/busybox:latest"
        image = f"oci:{layout}:busybox"
        refused = skopeo("copy", *NO_TLS, image, target, check=False)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr
        wrong = skopeo("copy", *NO_TLS, "--dest-creds", "alice:nope", image, target, check=False)
        assert wrong.returncode != 0
        skopeo("copy", *NO_TLS, "--dest-creds", "alice:alice-pw", image, target)
        skopeo("copy", *NO_TLS, target, f"oci:{tmp_path}/pulled:latest")  # anonymous pull
        challenge = call(registry.url, "GET", "/v2/").headers["WWW-Authenticate"]
        assert challenge == 'Basic realm="minidocker-registry"'


def test_tokens_carry_per_repository_scopes(layout, users, tmp_path):
    options = ("--htpasswd", str(users / "htpasswd"), "--token-key", str(tmp_path / "key.pem"),
               "--acl", str(users / "acl"))
    with running(tmp_path / "s", *options) as registry:
        challenge = call(registry.url, "GET", "/v2/alice/app/tags/list").headers["WWW-Authenticate"]
        assert challenge == (f'Bearer realm="{registry.url}/token",service="minidocker-registry",'
                             'scope="repository:alice/app:pull"')
        image = f"oci:{layout}:busybox"
        skopeo("copy", *NO_TLS, "--dest-creds", "alice:alice-pw", image, f"docker://{registry.host}/alice/app:1")
        denied = skopeo("copy", *NO_TLS, "--dest-creds", "bob:bob-pw", image,
                        f"docker://{registry.host}/alice/app:2", check=False)
        assert denied.returncode != 0 and "denied" in denied.stderr
        assert skopeo("copy", *NO_TLS, "--src-creds", "bob:bob-pw", f"docker://{registry.host}/alice/app:1",
                      f"oci:{tmp_path}/bob:1", check=False).returncode != 0  # bob may not read alice/*
        skopeo("copy", *NO_TLS, "--dest-creds", "alice:alice-pw", image, f"docker://{registry.host}/library/x:1",
               check=False)  # alice may not push to library/* either
        assert call(registry.url, "GET", "/v2/library/x/tags/list").status == 401
        token = json.loads(call(registry.url, "GET", "/token?service=minidocker-registry&scope="
                                "repository:alice/app:pull,push,delete&scope=repository:library/x:push",
                                headers={"Authorization": "Basic Ym9iOmJvYi1wdw=="}).body)["token"]
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "bob" and claims["access"] == []  # asked for much, granted nothing
        bad = call(registry.url, "GET", "/token?scope=repository:alice/app:pull",
                   headers={"Authorization": "Basic Ym9iOndyb25n"})
        assert bad.status == 401 and bad.codes == ["UNAUTHORIZED"]
        forged = call(registry.url, "GET", "/v2/", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert forged.status == 401


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, and its key (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "ca.crt", directory / "key.pem"


def test_tls(layout, tmp_path):
    cert, key = self_signed(tmp_path / "certs")
    with running(tmp_path / "s", "--tls-cert", str(cert), "--tls-key", str(key), *WRITABLE) as registry:
        assert registry.url.startswith("https://")
        target = f"docker://{registry.host}/library/busybox:tls"
        skopeo("copy", "--dest-cert-dir", str(tmp_path / "certs"), f"oci:{layout}:busybox", target)
        untrusted = skopeo("inspect", "--raw", target, check=False)  # our CA is not the system's
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
        assert json.loads(inspect(target, "--cert-dir", str(tmp_path / "certs")))["mediaType"] == OCI_MANIFEST


def test_dockerd_pushes_and_pulls(layout, users, tmp_path):
    dockerd = Dockerd(tmp_path)
    reason = dockerd.unavailable()
    if reason:
        pytest.skip(reason)
    options = ("--htpasswd", str(users / "htpasswd"), "--token-key", str(tmp_path / "key.pem"),
               "--acl", str(users / "acl"))
    with running(tmp_path / "open", *WRITABLE) as open_registry, \
            running(tmp_path / "auth", *options) as auth_registry, dockerd:
        for registry, name in ((open_registry, "library/busybox"), (auth_registry, "alice/busybox")):
            image = f"{registry.host}/{name}:1"
            skopeo("copy", f"oci:{layout}:busybox", f"docker-archive:{tmp_path}/image.tar:{image}")
            dockerd.docker("load", "-i", str(tmp_path / "image.tar"))
            (tmp_path / "image.tar").unlink()
            if registry is auth_registry:
                login = dockerd.docker("login", "-u", "alice", "--password-stdin", registry.host,
                                       input="alice-pw")
                assert "Login Succeeded" in login.stdout
            pushed = dockerd.docker("push", image).stdout
            digest = pushed.split("digest: ")[1].split()[0]
            head = call(registry.url, "HEAD", f"/v2/{name}/manifests/1")
            if registry is open_registry:
                assert head.headers["Docker-Content-Digest"] == digest
            else:
                assert head.status == 401  # no token: the auth registry lets nobody in
            image_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip()
            dockerd.docker("rmi", image)
            dockerd.docker("pull", image)
            assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip() == image_id
            repo_digests = dockerd.docker("image", "inspect", "-f", "{{json .RepoDigests}}", image).stdout
            assert f"{registry.host}/{name}@{digest}" in json.loads(repo_digests)
            dockerd.docker("rmi", image)


def test_our_own_client_pulls_what_skopeo_pushed(layout, users, tmp_path):
    """Chapter 07's client, through token auth: manifest by tag, its digest, the blobs, the tags."""
    from minidocker.images.distribution import Registry

    options = ("--htpasswd", str(users / "htpasswd"), "--token-key", str(tmp_path / "key.pem"),
               "--acl", str(users / "acl"))
    with running(tmp_path / "s", *options) as registry:
        skopeo("copy", *NO_TLS, "--dest-creds", "alice:alice-pw", f"oci:{layout}:busybox",
               f"docker://{registry.host}/alice/busybox:latest")
        client = Registry(registry.url, ("alice", "alice-pw"))
        got = client.get_manifest("alice/busybox", "latest")
        assert got.media_type == OCI_MANIFEST and got.digest == sha256(got.raw)
        for descriptor in (got.document["config"], *got.document["layers"]):
            out = io.BytesIO()
            client.fetch_blob("alice/busybox", descriptor, out)  # verifies size and digest
            assert sha256(out.getvalue()) == descriptor["digest"]
        assert client.tags("alice/busybox") == ["latest"]


def test_our_own_client_round_trip(users, tmp_path):
    """Chapter 07's client pushes (blobs, a mount, a manifest) and pulls back, with token auth."""
    from minidocker.images.distribution import Registry

    options = ("--htpasswd", str(users / "htpasswd"), "--token-key", str(tmp_path / "key.pem"),
               "--acl", str(users / "acl"))
    layer, config = rootfs.busybox_tar().read_bytes(), b'{"architecture":"amd64","os":"linux"}'
    with running(tmp_path / "s", *options) as registry:
        client = Registry(registry.url, ("alice", "alice-pw"))
        for blob in (layer, config):
            assert not client.has_blob("alice/one", sha256(blob))
            client.upload_blob("alice/one", sha256(blob), len(blob), io.BytesIO(blob))
        assert client.mount_blob("alice/two", sha256(layer), "alice/one")
        client.upload_blob("alice/two", sha256(config), len(config), io.BytesIO(config))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": sha256(config), "size": len(config)},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                           "digest": sha256(layer), "size": len(layer)}]}).encode()
        digest = client.put_manifest("alice/two", "latest", manifest, OCI_MANIFEST)
        assert digest == sha256(manifest) and client.tags("alice/two") == ["latest"]
        got = client.get_manifest("alice/two", "latest")
        assert got.raw == manifest and got.media_type == OCI_MANIFEST
        out = io.BytesIO()
        client.fetch_blob("alice/two", got.document["layers"][0], out)
        assert out.getvalue() == layer
