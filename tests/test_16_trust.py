"""Chapter 16: signed images, in sigstore's format, and a policy that refuses unsigned ones.

Against Debian's ``docker-registry`` holding chapter 00's busybox under several names: keys in
cosign's file format (read back with the password, refused without), signatures stored as the
``sha256-HEX.sig`` manifests cosign and containers/image read (checked field by field), the
policy's scopes and identities, pulls refused in one line with nothing stored, and a daemon
started with ``--signature-policy`` that refuses an unsigned pull and an unsigned run. skopeo
(containers/image) is the peer: Debian builds it with sigstore disabled, which the interop tests
detect and skip on, saying so; a skopeo with sigstore runs them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minidocker.images import distribution, pull, push
from minidocker.images import reference as references
from minidocker.images.store import ImageStore
from minidocker.overlay.layers import LayerStore
from minidocker.testing.localregistry import LocalRegistry
from minidocker.trust import attachments, keys, pullcheck, signature
from minidocker.trust.policy import Policy, PolicyError, Refused, identity_matches
from tests.helpers_10_daemon import running_daemon

PASSWORD = b"correct horse"
SKOPEO_DISABLED = "Debian-local change: sigstore disabled"


@pytest.fixture(autouse=True)
def _isolated_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(tmp_path / "client"))
    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRRORS", "")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """Debian's registry with busybox under several names in trust/ (the same bytes: one digest)."""
    reg = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    try:
        for name in ("app", "unsigned", "late", "spare", "forged-digest", "forged-reference", "forged-key"):
            reg.digest = push.seed_busybox(reg.host, f"trust/{name}:v1")
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cosign key pair of ours (PREFIX.key under PASSWORD, PREFIX.pub)."""
    return keys.write_pair(str(tmp_path_factory.mktemp("keys") / "cosign"), PASSWORD)


@pytest.fixture(scope="module")
def signed(registry: LocalRegistry, keypair: tuple[Path, Path]) -> str:
    """trust/app:v1 signed with our key (by the CLI, as a user would); its digest."""
    out = subprocess.run([sys.executable, "-m", "minidocker", "trust", "sign", "--key", str(keypair[0]),
                          f"{registry.host}/trust/app:v1"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COSIGN_PASSWORD": PASSWORD.decode()})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"Signed {registry.host}/trust/app:v1 ({registry.digest}): "
                                  f"sha256-{registry.digest[7:]}.sig")
    return registry.digest


def write_policy(path: Path, scopes: dict[str, list[dict]], default: str = "insecureAcceptAnything") -> Path:
    path.write_text(json.dumps({"default": [{"type": default}], "transports": {"docker": scopes}}))
    return path


def signed_by(key: Path, identity: str = "matchRepoDigestOrExact") -> list[dict]:
    return [{"type": "sigstoreSigned", "keyPath": str(key), "signedIdentity": {"type": identity}}]


def store_of(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images", layer_store=LayerStore(tmp_path / "layers"))


def blobs(store: ImageStore) -> list[str]:
    return sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir())


# ---- keys ------------------------------------------------------------------------------------------


def test_a_key_we_generate_is_read_back_with_its_password_and_refused_without_it(
        keypair: tuple[Path, Path]) -> None:
    private, public = keypair
    pem = private.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert private.stat().st_mode & 0o777 == 0o600
    body = json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt" and body["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32 and body["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(body["cipher"]["nonce"])) == 24
    key = keys.decrypt_private_key(pem, PASSWORD)
    assert key.public_key().public_numbers() == keys.load_public_key(public.read_bytes()).public_numbers()
    with pytest.raises(keys.KeyError_, match=r"^decryption failed: wrong password"):
        keys.decrypt_private_key(pem, b"")
    with pytest.raises(keys.KeyError_, match="not a cosign private key"):
        keys.decrypt_private_key(public.read_bytes(), PASSWORD)


def test_trust_key_generate_writes_a_pair_and_never_over_one(tmp_path: Path) -> None:
    env = {**os.environ, "COSIGN_PASSWORD": "pw"}
    command = [sys.executable, "-m", "minidocker", "trust", "key", "generate", "--output",
               str(tmp_path / "k")]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Private key written to {tmp_path}/k.key\nPublic key written to {tmp_path}/k.pub\n"
    keys.load_private_key(tmp_path / "k.key", b"pw")
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert (again.returncode, again.stderr) == (125, f"minidocker: {tmp_path}/k.key exists: refusing to "
                                                     "overwrite a key\n")


def test_a_key_skopeo_generates_is_read(tmp_path: Path) -> None:
    help_text = subprocess.run(["skopeo", "--help"], capture_output=True, text=True).stdout
    if "generate-sigstore-key" not in help_text:
        pytest.skip("this skopeo has no generate-sigstore-key (it came with skopeo 1.10)")
    out = subprocess.run(["skopeo", "generate-sigstore-key", "--output-prefix", str(tmp_path / "s"),
                          "--passphrase-file", "/dev/stdin"], input="pw", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    keys.load_private_key(tmp_path / "s.private", b"pw")


# ---- the signature in the registry -----------------------------------------------------------------


def test_a_signature_is_stored_as_cosign_and_containers_image_store_it(registry: LocalRegistry,
                                                                        signed: str,
                                                                        keypair: tuple[Path, Path]) -> None:
    reg = distribution.connect(registry.host)
    tag = f"sha256-{signed[7:]}.sig"
    assert tag in reg.tags("trust/app")
    sigs = reg.get_manifest("trust/app", tag)
    assert sigs.media_type == "application/vnd.oci.image.manifest.v1+json"
    document = sigs.document
    assert document["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = document["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer["annotations"]) == {"dev.cosignproject.cosign/signature"}
    [stored] = attachments.fetch(reg, "trust/app", signed)
    assert json.loads(stored.payload) == {
        "critical": {"identity": {"docker-reference": f"{registry.host}/trust/app:v1"},
                     "image": {"docker-manifest-digest": signed},
                     "type": "cosign container image signature"},
        "optional": None}
    config = json.loads(reg_blob(reg, "trust/app", document["config"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
    public = keys.load_public_key(keypair[1].read_bytes())
    assert signature.verify(stored.payload, stored.signature, public).digest == signed
    # the CLI's inspect: the payload and whether it verifies with the key given
    out = subprocess.run([sys.executable, "-m", "minidocker", "trust", "inspect", "--key", str(keypair[1]),
                          f"{registry.host}/trust/app:v1"], capture_output=True, text=True, timeout=60)
    [shown] = json.loads(out.stdout)
    assert shown["Digest"] == signed and shown["SignatureTag"] == tag
    assert [s["Verified"] for s in shown["Signatures"]] == [True]


def reg_blob(reg: distribution.Registry, repository: str, descriptor: dict) -> bytes:
    import io

    body = io.BytesIO()
    reg.fetch_blob(repository, descriptor, body)
    return body.getvalue()


# ---- the policy ------------------------------------------------------------------------------------


def test_the_most_specific_scope_wins(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key = {"type": "sigstoreSigned", "keyPath": str(keypair[1])}
    policy = Policy.parse({"default": [{"type": "reject"}], "transports": {"docker": {
        "": [{"type": "insecureAcceptAnything"}],
        "reg.example.com:5000": [key],
        "reg.example.com:5000/team": [{"type": "reject"}],
        "reg.example.com:5000/team/app": [{"type": "insecureAcceptAnything"}],
        "reg.example.com:5000/team/app:v1": [key],
        "*.example.com": [{"type": "reject"}]},
        "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}})

    def scope(name: str) -> str:
        return policy.scope_for(references.parse(name))[0]

    assert scope("reg.example.com:5000/team/app:v1") == "reg.example.com:5000/team/app:v1"
    assert scope("reg.example.com:5000/team/app:v2") == "reg.example.com:5000/team/app"
    assert scope("reg.example.com:5000/team/other") == "reg.example.com:5000/team"
    assert scope("reg.example.com:5000/solo") == "reg.example.com:5000"
    assert scope("other.example.com/x") == "*.example.com"
    assert scope("busybox") == "docker"
    strict = Policy.parse({"default": [{"type": "reject"}]})
    assert strict.scope_for(references.parse("busybox"))[0] == "default"


@pytest.mark.parametrize(("rule", "image", "signed_as", "accepted"), [
    ("matchRepoDigestOrExact", "r.io/app:v1", "r.io/app:v1", True),
    ("matchRepoDigestOrExact", "r.io/app:v1", "r.io/app", False),  # by tag: the exact name only
    ("matchRepoDigestOrExact", "r.io/app:v1", "r.io/app:v2", False),
    ("matchRepoDigestOrExact", "r.io/app@sha256:" + "a" * 64, "r.io/app:v9", True),  # by digest: the repo
    ("matchRepository", "r.io/app:v1", "r.io/app", True),
    ("matchRepository", "r.io/app:v1", "r.io/other:v1", False),
    ("matchExact", "r.io/app:v1", "r.io/app:v1", True),
    ("matchExact", "r.io/app:v1", "r.io/app", False),
])
def test_signed_identities(rule: str, image: str, signed_as: str, accepted: bool) -> None:
    assert identity_matches({"type": rule}, references.parse(image, None), signed_as) is accepted


@pytest.mark.parametrize(("document", "message"), [
    ({}, '"default" must be a list of requirements'),
    ({"default": []}, '"default" is empty'),
    ({"default": [{"type": "signedBy"}]}, "unsupported requirement type 'signedBy'"),
    ({"default": [{"type": "sigstoreSigned"}]}, "needs keyPath, keyPaths, keyData or keyDatas"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/nonexistent.pub"}]}, "cannot read key"),
    ({"default": [{"type": "sigstoreSigned", "keyData": "bm90IGEga2V5"}]}, "not a public key PEM"),
])
def test_a_bad_policy_is_one_line(document: dict, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.parse(document)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ---- pulls under a policy --------------------------------------------------------------------------


def test_a_signed_image_is_pulled_under_the_policy(tmp_path: Path, registry: LocalRegistry, signed: str,
                                                   keypair: tuple[Path, Path]) -> None:
    policy = write_policy(tmp_path / "policy.json", {f"{registry.host}/trust": signed_by(keypair[1])})
    store = store_of(tmp_path)
    image = pull.pull(f"{registry.host}/trust/app:v1", store=store,
                      checks=[pullcheck.policy_check(str(policy))])
    assert f"{registry.host}/trust/app@{signed}" in image.repo_digests


def test_an_unsigned_pull_is_refused_in_one_line_and_nothing_is_stored(
        tmp_path: Path, registry: LocalRegistry, signed: str, keypair: tuple[Path, Path]) -> None:
    policy = write_policy(tmp_path / "policy.json", {f"{registry.host}/trust": signed_by(keypair[1])})
    env = {**os.environ, "MINIDOCKER_STATE": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-m", "minidocker.images", "pull", "--signature-policy",
                          str(policy), f"{registry.host}/trust/unsigned:v1"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert (out.returncode, out.stderr) == (125, f"minidocker: pull refused by policy (scope {registry.host}/"
                                                 f"trust, sigstoreSigned): no signature for {signed}\n")
    assert out.stdout == ""
    images = tmp_path / "state" / "images"
    assert not list((images / "blobs" / "sha256").iterdir()) and not list((images / "records").iterdir())


def forge(registry: LocalRegistry, repository: str, key: object, digest: str, identity: str) -> None:
    """Sign ``repository``'s image with one payload of ours (a digest and a name of our choice)."""
    reg = distribution.connect(registry.host)
    payload = signature.make_payload(identity, digest)
    attachments.attach(reg, repository, registry.digest, payload, signature.sign(payload, key))


@pytest.mark.parametrize("wrong", ["digest", "reference", "key"])
def test_a_signature_for_another_digest_name_or_key_is_refused(tmp_path: Path, registry: LocalRegistry,
                                                              keypair: tuple[Path, Path], wrong: str,
                                                              skopeo_sigstore: bool) -> None:
    ours = keys.load_private_key(keypair[0], PASSWORD)
    other_digest = "sha256:" + "0" * 64
    repository = f"trust/forged-{wrong}"
    name = f"{registry.host}/{repository}:v1"
    forge(registry, repository, keys.generate()[0] if wrong == "key" else ours,
          other_digest if wrong == "digest" else registry.digest,
          f"{registry.host}/trust/app:v1" if wrong == "reference" else name)
    policy = Policy.load(write_policy(tmp_path / "p.json", {registry.host: signed_by(keypair[1])}))
    store = store_of(tmp_path)
    with pytest.raises(Refused) as caught:
        pull.pull(name, store=store, checks=[pullcheck.policy_check(policy)])
    reason = {"digest": f"the signature is for {other_digest}, not {registry.digest}",
              "reference": f"the signature is for {registry.host}/trust/app:v1, which matchRepoDigestOrExact "
                           f"does not accept for {name}",
              "key": "the signature does not verify with the policy's key"}[wrong]
    assert str(caught.value) == f"pull refused by policy (scope {registry.host}, sigstoreSigned): {reason}"
    assert blobs(store) == []
    if skopeo_sigstore:  # and containers/image refuses it too
        assert not skopeo_accepts(tmp_path, registry, f"{repository}:v1", keypair[1])


# ---- skopeo (containers/image) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def skopeo_sigstore(tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, signed: str,
                    keypair: tuple[Path, Path]) -> bool:
    """Whether this skopeo reads sigstore signatures at all (Debian's 1.9.3 is built without)."""
    out = skopeo_copy(tmp_path_factory.mktemp("probe"), registry, "trust/app:v1", keypair[1])
    return SKOPEO_DISABLED not in out.stderr


def skopeo_copy(tmp_path: Path, registry: LocalRegistry, image: str,
                public: Path) -> subprocess.CompletedProcess:
    """``skopeo copy --policy`` of ``image`` under a sigstoreSigned policy for the registry."""
    policy = write_policy(tmp_path / "skopeo-policy.json", {registry.host: signed_by(public)})
    registries_d = tmp_path / "registries.d"  # containers/image reads .sig tags only when asked to
    registries_d.mkdir(exist_ok=True)
    (registries_d / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    return subprocess.run(["skopeo", "--registries.d", str(registries_d), "copy", "--policy", str(policy),
                           "--src-tls-verify=false", f"docker://{registry.host}/{image}",
                           f"dir:{tmp_path / 'copied'}"], capture_output=True, text=True, timeout=60)


def skopeo_accepts(tmp_path: Path, registry: LocalRegistry, image: str, public: Path) -> bool:
    """Whether skopeo's copy of ``image`` passes the policy (skip if it cannot verify sigstore at all)."""
    out = skopeo_copy(tmp_path, registry, image, public)
    if SKOPEO_DISABLED in out.stderr:
        pytest.skip(f"this skopeo is built without sigstore ({SKOPEO_DISABLED!r})")
    return out.returncode == 0


def test_skopeo_verifies_what_we_sign(tmp_path: Path, registry: LocalRegistry, signed: str,
                                      keypair: tuple[Path, Path]) -> None:
    assert skopeo_accepts(tmp_path, registry, "trust/app:v1", keypair[1])
    assert not skopeo_accepts(tmp_path, registry, "trust/unsigned:v1", keypair[1])


def test_we_verify_what_skopeo_signs(tmp_path: Path, registry: LocalRegistry,
                                     keypair: tuple[Path, Path]) -> None:
    (tmp_path / "pass").write_text(PASSWORD.decode())
    name = f"{registry.host}/trust/spare:v1"
    out = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                          "--sign-by-sigstore-private-key", str(keypair[0]),
                          "--sign-passphrase-file", str(tmp_path / "pass"), f"docker://{name}", f"docker://{name}"],
                         capture_output=True, text=True, timeout=60)
    if SKOPEO_DISABLED in out.stderr:
        pytest.skip(f"this skopeo is built without sigstore ({SKOPEO_DISABLED!r})")
    assert out.returncode == 0, out.stderr
    policy = Policy.load(write_policy(tmp_path / "p.json", {registry.host: signed_by(keypair[1])}))
    pull.pull(name, store=store_of(tmp_path), checks=[pullcheck.policy_check(policy)])


# ---- the daemon's setting --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, signed: str,
           keypair: tuple[Path, Path]):
    """A minidockerd that pulled trust/late:v1 with no policy, then restarted with one."""
    base = tmp_path_factory.mktemp("d16")
    policy = write_policy(base / "policy.json", {registry.host: signed_by(keypair[1])})
    with running_daemon(base, registry.url) as d:
        for _ in d.client.stream_json("POST", "/images/create", {"fromImage": f"{registry.host}/trust/late",
                                                                 "tag": "v1"}):
            pass
        d.stop()
        d.extra = ("--signature-policy", str(policy))
        d.start()
        d.policy = policy
        yield d


def test_the_daemon_refuses_an_unsigned_pull(daemon, registry: LocalRegistry, signed: str) -> None:
    out = daemon.cli("pull", f"{registry.host}/trust/unsigned:v1")
    assert out.returncode != 0
    assert f"pull refused by policy (scope {registry.host}, sigstoreSigned): no signature for {signed}" \
        in out.stderr
    assert daemon.cli("image", "inspect", f"{registry.host}/trust/unsigned:v1").returncode != 0


def test_the_daemon_pulls_and_runs_a_signed_image(daemon, registry: LocalRegistry, signed: str) -> None:
    name = f"{registry.host}/trust/app:v1"
    assert daemon.cli("pull", name).returncode == 0
    out = daemon.cli("run", "--rm", "--network", "none", name, "echo", "signed")
    assert (out.returncode, out.stdout) == (0, "signed\n"), out.stderr


def test_an_image_pulled_before_the_policy_is_refused_at_run(daemon, registry: LocalRegistry,
                                                            signed: str) -> None:
    out = daemon.cli("run", "--rm", "--network", "none", f"{registry.host}/trust/late:v1", "true")
    assert out.returncode == 125
    assert f"run refused by policy (scope {registry.host}, sigstoreSigned): no signature for {signed}" \
        in out.stderr
    assert daemon.client.json("GET", "/containers/json", {"all": True}) == []


def test_the_clients_policy_goes_with_the_pull(daemon, registry: LocalRegistry, tmp_path: Path,
                                                keypair: tuple[Path, Path]) -> None:
    other = keys.write_pair(str(tmp_path / "other"), b"x")[1]
    policy = write_policy(tmp_path / "mine.json", {f"{registry.host}/trust/app": signed_by(other)})
    out = daemon.cli("pull", "--signature-policy", str(policy), f"{registry.host}/trust/app:v1")
    assert out.returncode != 0
    assert "the signature does not verify with the policy's key" in out.stderr
    policy = write_policy(tmp_path / "mine.json", {f"{registry.host}/trust/app": signed_by(keypair[1])})
    out = daemon.cli("pull", "--signature-policy", str(policy), f"{registry.host}/trust/app:v1")
    assert out.returncode == 0, out.stderr
