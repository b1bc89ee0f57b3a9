"""Signed artifacts, the pure parts and ssh-keygen itself (no host, no build): the
allowed-signers file, the principal and namespace, what a signature and a key say of
themselves, the check against trusted keys, the provenance the manifest records, and
where the signature travels in the tar."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from deployer.builder import sign
from deployer.builder.archive import manifest_bytes, write_release_tar
from deployer.builder.manifest import provenance
from deployer.builder.source import Commit
from deployer.errors import ArtifactError, SignatureError, UsageError
from deployer.host.artifact import iter_verified, read_signed, verify_artifact
from deployer.host.contract import SIGNATURE_MEMBER, SIGNATURE_NAMESPACE, allowed_signers_path
from deployer.host.engine import Engine
from deployer.host.events import Events
from deployer.host.rootfiles import allowed_signers_text, signer_fingerprints
from deployer.host.signature import Trust, built_by, check, host_trust, parse_public_key, parse_signature
from tests.unit.test_artifact import make_artifact, rewrite
from tests.unit.test_host_setup import CONFIG

ED25519_BLOB = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(32)).decode()


def keygen(path: Path, kind: str = "ed25519", comment: str = "ci@example") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)], check=True, timeout=60
    )
    return path


def ssh_fingerprint(pub: Path) -> str:
    """What ssh-keygen -l says: the reference the parsed fingerprints must equal."""
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True).stdout.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    return {
        "ci": keygen(d / "ci"),
        "next": keygen(d / "next", comment="rotated key"),
        "stranger": keygen(d / "stranger"),
        "rsa": keygen(d / "rsa", "rsa"),
    }


def pub(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text()


def trust(*trusted: Path, principal: str = "svc") -> Trust:
    return Trust("allowed_signers", principal, allowed_signers_text(CONFIG, [pub(k) for k in trusted]))


def signed_artifact(tmp_path: Path, key: Path | None) -> Path:
    """A small artifact whose manifest ``key`` signs (unsigned with None)."""
    path, manifest = make_artifact(tmp_path)
    files = {n: tmp_path / "src" / n for n in manifest["files"]}
    signer = (lambda data: sign.sign(data, key)) if key else None
    return write_release_tar(tmp_path / "signed.tar", manifest, files, 1700000000, signer)


# -- the allowed-signers file ----------------------------------------------------------


def test_the_allowed_signers_file_holds_exactly_the_keys_given_as_the_app_in_our_namespace(keys):
    text = allowed_signers_text(CONFIG, [pub(keys["ci"]), pub(keys["next"]), pub(keys["ci"])])
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [
        f'svc namespaces="{SIGNATURE_NAMESPACE}" {" ".join(pub(k).split()[:2])}'
        for k in (keys["ci"], keys["next"])
    ], "each key once, principal svc, only deployer's namespace"
    assert SIGNATURE_NAMESPACE == "deployer-artifact@v1"
    assert text.startswith(f"# {allowed_signers_path('svc')} - written by `deployer host setup --trust-key`")
    assert allowed_signers_path("svc") == "/etc/deployer/svc/allowed_signers"
    assert "# base_path: /opt/svc\n" in text
    assert f"# {ssh_fingerprint(keys['next'].with_suffix('.pub'))} rotated key\n" in text
    assert signer_fingerprints(text) == [ssh_fingerprint(keys[k].with_suffix(".pub")) for k in ("ci", "next")]
    # replacing is writing the new set: the dropped key is simply not in it
    assert pub(keys["ci"]).split()[1] not in allowed_signers_text(CONFIG, [pub(keys["next"])])


def test_ssh_keygen_reads_the_file_as_written(keys, tmp_path):
    """The file is for ssh-keygen: it finds the principal for the key, in our namespace."""
    (tmp_path / "allowed").write_text(allowed_signers_text(CONFIG, [pub(keys["ci"]), pub(keys["rsa"])]))
    for k in ("ci", "rsa"):
        proc = subprocess.run(
            ["ssh-keygen", "-Y", "find-principals", "-f", str(tmp_path / "allowed"), "-s", "/dev/stdin"],
            input=sign.sign(b"x", keys[k]),
            capture_output=True,
        )
        assert proc.stdout.decode().split() == ["svc"], proc.stderr


@pytest.mark.parametrize(
    "text, refused",
    [
        ("", "found 0"),
        ("garbage\n", "not a public key line"),
        ("ssh-ed25519 !!notbase64!!\n", "not base64"),
        (f"ssh-rsa {ED25519_BLOB} x\n", "not a ssh-rsa key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n", "private key"),
    ],
)
def test_what_is_not_one_public_key_is_refused_before_anything_is_written(text, refused):
    with pytest.raises(UsageError, match=refused):
        allowed_signers_text(CONFIG, [text])


def test_two_keys_in_one_file_and_no_key_at_all_are_refused(keys):
    with pytest.raises(UsageError, match="found 2"):
        allowed_signers_text(CONFIG, [pub(keys["ci"]) + pub(keys["next"])])
    with pytest.raises(UsageError, match="at least one"):
        allowed_signers_text(CONFIG, [])


def test_a_comment_that_is_not_plain_stays_out_of_roots_file(keys):
    kind, blob = pub(keys["ci"]).split()[:2]
    text = allowed_signers_text(CONFIG, [f"{kind} {blob} $(reboot)`\x1b[2J\n"])
    assert "reboot" not in text and "\x1b" not in text
    assert parse_public_key(f"{kind} {blob} ci key", "x").comment == "ci key"


# -- what a signature says of itself ------------------------------------------------------


def test_a_signature_names_its_key_and_namespace(keys):
    for k in ("ci", "rsa"):
        sig = parse_signature(sign.sign(b"manifest", keys[k]), "x")
        assert sig.fingerprint == ssh_fingerprint(keys[k].with_suffix(".pub"))
        assert sig.namespace == SIGNATURE_NAMESPACE
        assert sig.key.kind == pub(keys[k]).split()[0]


@pytest.mark.parametrize(
    "armored",
    [b"", b"not a signature", b"-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n"],
)
def test_a_malformed_signature_is_refused(armored):
    with pytest.raises(SignatureError):
        parse_signature(armored, "x")


def test_signing_is_deterministic_so_a_signed_build_stays_reproducible(keys):
    assert sign.sign(b"same bytes", keys["ci"]) == sign.sign(b"same bytes", keys["ci"])


def test_a_key_that_cannot_sign_is_one_clear_line(keys, tmp_path):
    with pytest.raises(UsageError, match="no such key file"):
        sign.signing_key(tmp_path / "missing", "--sign")
    (tmp_path / "junk").write_text("not a key\n")
    with pytest.raises(Exception, match="signing with .*junk failed"):
        sign.sign(b"x", tmp_path / "junk")


# -- the check ----------------------------------------------------------------------------


def test_a_manifest_signed_by_a_trusted_key_passes(keys, tmp_path):
    signed = read_signed(str(signed_artifact(tmp_path, keys["ci"])))
    assert check(signed, trust(keys["ci"]), "a.tar").fingerprint == ssh_fingerprint(
        keys["ci"].with_suffix(".pub")
    )
    assert check(signed, trust(keys["next"], keys["ci"]), "a.tar")  # one of several


def test_an_unsigned_artifact_is_refused_naming_the_fix(tmp_path, keys):
    signed = read_signed(str(signed_artifact(tmp_path, None)))
    assert signed.signature is None
    with pytest.raises(
        SignatureError, match="not signed, and this host takes svc's artifacts only signed"
    ) as e:
        check(signed, trust(keys["ci"]), "a.tar")
    assert "deployer build --sign KEY" in str(e.value) and e.value.fingerprint is None


def test_a_signature_by_an_untrusted_key_is_refused_with_its_fingerprint(tmp_path, keys):
    signed = read_signed(str(signed_artifact(tmp_path, keys["stranger"])))
    fp = ssh_fingerprint(keys["stranger"].with_suffix(".pub"))
    with pytest.raises(SignatureError) as e:
        check(signed, trust(keys["ci"]), "a.tar")
    assert str(e.value) == (
        f"a.tar: signed by {fp} (ssh-ed25519), a key not trusted for svc (allowed_signers): sign it with "
        "a trusted key, or trust this one with `deployer host setup --trust-key KEY.pub`"
    )
    assert e.value.fingerprint == fp and "\n" not in str(e.value)


def test_a_trusted_key_for_another_app_is_not_trusted_for_this_one(tmp_path, keys):
    signed = read_signed(str(signed_artifact(tmp_path, keys["ci"])))
    with pytest.raises(SignatureError, match="not trusted for other"):
        check(signed, trust(keys["ci"], principal="other"), "a.tar")


def test_a_manifest_edited_after_signing_is_refused(tmp_path, keys):
    signed = read_signed(str(signed_artifact(tmp_path, keys["ci"])))
    edited = json.loads(signed.text)
    edited["version"] = "6.6.6"
    forged = type(signed)(edited, manifest_bytes(edited), signed.signature)
    with pytest.raises(
        SignatureError, match=r"manifest.json does not match its signature by SHA256:\S+: edited"
    ):
        check(forged, trust(keys["ci"]), "a.tar")


def test_the_same_key_signing_in_another_namespace_never_passes(tmp_path, keys):
    """A git commit or file the trusted key signed is not an artifact signature."""
    path, _ = make_artifact(tmp_path)
    signed = read_signed(str(path))
    other = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(keys["ci"])],
        input=signed.text,
        capture_output=True,
        check=True,
    ).stdout
    with pytest.raises(SignatureError, match="as 'git', not as a deployer artifact"):
        check(type(signed)(signed.manifest, signed.text, other), trust(keys["ci"]), "a.tar")


# -- which keys a host trusts ----------------------------------------------------------------


def test_the_host_trusts_the_apps_own_keys_or_none(tmp_path, keys):
    assert host_trust(CONFIG, str(tmp_path)) is None, "no file: unsigned artifacts pass"
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "allowed_signers").write_text(allowed_signers_text(CONFIG, [pub(keys["ci"])]))
    found = host_trust(CONFIG, str(tmp_path))
    assert found is not None and found.principal == "svc" and found.base_path == "/opt/svc"


def test_an_artifact_naming_another_app_still_meets_the_keys_of_the_base_path_it_installs_into(
    tmp_path, keys
):
    """`install` takes its config from the artifact: a made-up app name is no way around."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "allowed_signers").write_text(allowed_signers_text(CONFIG, [pub(keys["ci"])]))
    renamed = CONFIG.replace(app="not-svc")
    found = host_trust(renamed, str(tmp_path))
    assert found is not None and found.principal == "svc"
    elsewhere = CONFIG.replace(app="not-svc", base_path="/opt/not-svc")
    assert host_trust(elsewhere, str(tmp_path)) is None


def test_an_unreadable_trust_file_refuses_rather_than_passes(tmp_path):
    (tmp_path / "svc" / "allowed_signers").mkdir(parents=True)  # not a file
    with pytest.raises(SignatureError, match="cannot read the keys it trusts"):
        host_trust(CONFIG, str(tmp_path))


def test_the_engine_refuses_before_staging_and_says_who_signed_when_it_passes(tmp_path, keys):
    root = tmp_path / "etc-deployer"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "allowed_signers").write_text(allowed_signers_text(CONFIG, [pub(keys["ci"])]))
    out = io.StringIO()
    config = CONFIG.replace(base_path=str(tmp_path / "opt" / "svc"))
    engine = Engine(config, service=None, events=Events(out))  # refused before any service is touched
    engine.trust_root = str(root)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(SignatureError, match="not signed"):
        engine.stage(str(signed_artifact(tmp_path / "a", None)))
    assert not (tmp_path / "opt" / "svc" / "releases").exists(), "refused before anything is unpacked"
    good = str(signed_artifact(tmp_path / "b", keys["ci"]))
    assert engine.check_signed(good) is not None
    assert engine.check_signed(good) is not None  # once per process: one event
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    passed = [e for e in events if e["step"] == "signature" and e["status"] == "ok"]
    assert len(passed) == 1 and "signed by SHA256:" in passed[0]["detail"]
    assert [e["status"] for e in events if e["step"] == "signature"] == ["start", "fail", "start", "ok"]


# -- provenance ---------------------------------------------------------------------------

COMMIT = Commit(sha="3f2a9c1" + "0" * 33, epoch=1764152100, ref="main", tag=None, dirty=False)


def test_provenance_in_github_actions_names_the_run():
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/svc",
        "GITHUB_WORKFLOW_REF": "acme/svc/.github/workflows/deploy.yml@refs/heads/main",
        "GITHUB_RUN_ID": "123456",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_REF": "refs/heads/main",
    }
    assert provenance(COMMIT, env, "https://github.com/acme/svc") == {
        "builder": "github-actions",
        "repository": "acme/svc",
        "workflow": "acme/svc/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": "123456",
        "run_attempt": "2",
        "commit": "a" * 40,
        "ref": "refs/heads/main",
    }
    assert built_by({"provenance": provenance(COMMIT, env, None)}) == (
        "built by github-actions acme/svc run 123456.2 at aaaaaaaaaaaa"
    )


def test_provenance_elsewhere_is_the_local_git_facts_without_credentials():
    local = provenance(COMMIT, {}, "https://ci-bot:ghp_s3cr3t@github.com/acme/svc.git")
    assert local == {
        "builder": "local",
        "repository": "https://github.com/acme/svc.git",
        "workflow": None,
        "run_id": None,
        "run_attempt": None,
        "commit": COMMIT.sha,
        "ref": "refs/heads/main",
    }
    assert (
        provenance(COMMIT, {}, "git@github.com:acme/svc.git")["repository"] == "git@github.com:acme/svc.git"
    )
    detached = Commit(sha=COMMIT.sha, epoch=1, ref=None, tag=None, dirty=False)
    assert provenance(detached, {"GITHUB_ACTIONS": "true"}, None)["ref"] is None  # no run id: not a run
    assert built_by({}) == "no provenance recorded"


# -- where the signature travels ------------------------------------------------------------


def test_the_signature_is_the_member_right_after_the_manifest_and_verifies_with_it(tmp_path, keys):
    path = signed_artifact(tmp_path, keys["ci"])
    with tarfile.open(path) as t:
        assert t.getnames()[:2] == ["manifest.json", SIGNATURE_MEMBER]
    assert verify_artifact(str(path))["app"] == "demo"
    names = [m.name for m, _, _ in iter_verified(str(path))]
    assert SIGNATURE_MEMBER not in names, "not a listed file: nothing unpacks it"
    signed = read_signed(str(path))
    assert signed.text == manifest_bytes(signed.manifest)


def test_a_signature_anywhere_else_or_twice_is_refused(tmp_path, keys):
    path = signed_artifact(tmp_path, keys["ci"])
    sig = read_signed(str(path)).signature
    assert sig is not None

    extra = tarfile.TarInfo(SIGNATURE_MEMBER)
    extra.size = len(sig)
    # moved to the end: not where a reader looks, and refused by the walk
    moved = rewrite(path, tmp_path / "moved.tar", lambda i, d: None if i.name == SIGNATURE_MEMBER else (i, d))
    twice = tmp_path / "twice.tar"
    twice.write_bytes(path.read_bytes())
    for tar in (moved, twice):
        with tarfile.open(tar, "a") as t:
            t.addfile(extra, io.BytesIO(sig))
        with pytest.raises(ArtifactError, match="may only follow manifest.json, once"):
            verify_artifact(str(tar))
    assert read_signed(str(moved)).signature is None


def test_a_manifest_may_not_list_its_own_signature(tmp_path):
    _, manifest = make_artifact(tmp_path)
    manifest["files"][SIGNATURE_MEMBER] = {"size": 1, "sha256": "0" * 64}
    from deployer.host.artifact import validate_manifest_shape

    with pytest.raises(ArtifactError, match="lists manifest.json.sig"):
        validate_manifest_shape(manifest, "x")


def test_a_thin_upload_keeps_the_signature(tmp_path, keys):
    from deployer.artifact import Artifact

    art = Artifact(signed_artifact(tmp_path, keys["ci"]))
    thin = art.thin(["engine.pyz"], tmp_path / "thin.tar")
    with tarfile.open(thin) as t:
        assert t.getnames() == ["manifest.json", SIGNATURE_MEMBER, "engine.pyz"]
    assert read_signed(str(thin)).signature == art.signed().signature


def test_install_refuses_before_it_takes_the_lock_or_saves_a_config(tmp_path, keys, monkeypatch, capsys):
    """The air-gapped command line: a refused artifact leaves nothing, not even deploy.json."""
    from deployer.host import cli

    root = tmp_path / "etc-deployer"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "allowed_signers").write_text(allowed_signers_text(CONFIG, [pub(keys["ci"])]))
    monkeypatch.setattr(Engine, "trust_root", str(root))
    base = tmp_path / "opt" / "svc"
    config = json.dumps(CONFIG.replace(base_path=str(base)).to_dict())
    for name, key in (("unsigned", None), ("stranger", keys["stranger"])):
        (tmp_path / name).mkdir()
        artifact = signed_artifact(tmp_path / name, key)
        with pytest.raises(SystemExit) as e:
            cli.main(["--json", "--config-json", config, "install", str(artifact)])
        assert e.value.code == 1
        [error] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"error"' in line]
        assert error["error"] == "SignatureError" and "Traceback" not in error["detail"]
        assert not base.exists(), f"{name}: nothing written under the base path"


def test_ci_names_the_signing_key_with_a_variable(tmp_path):
    from deployer.config import load_config

    (tmp_path / "deploy.toml").write_text('[app]\nname = "svc"\n')
    assert load_config(tmp_path / "deploy.toml", environ={}).artifact.signing_key is None
    env = {"DEPLOYER_SIGNING_KEY_FILE": "/run/ci/signing_key"}
    assert load_config(tmp_path / "deploy.toml", environ=env).artifact.signing_key == "/run/ci/signing_key"
