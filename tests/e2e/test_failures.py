"""The failure promises (README, "What happens when…") proven for real: faults injected
on a staging guest, the host's state asserted afterwards (where `current` points, what
answers, the lock, what is on disk), and the next deploy succeeding."""

from __future__ import annotations

import json
import os
import re
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import BASE, SECRET_VALUES, Deployer, LiveDeploy, sh
from tests.host.artifacts import corrupt_wheel


def current(guest) -> str:
    return os.path.basename(sh(guest, "readlink", f"{BASE}/current", check=False))


def version_answering(guest) -> str | None:
    out = sh(guest, "curl", "-s", "--max-time", "5", "http://127.0.0.1:8080/health", check=False)
    return json.loads(out)["version"] if out else None


def lock_free_within(guest, seconds: float) -> float:
    """Seconds until the deploy lock can be taken (flock -n), or fail."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if guest.exec(["flock", "-n", f"{BASE}/.lock", "true"], check=False).returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"deploy lock still held after {seconds}s")


def releases_on(guest) -> set[str]:
    return set(sh(guest, "ls", "-A", f"{BASE}/releases").split())


def last_audit(guest) -> dict:
    return json.loads(sh(guest, "tail", "-n", "1", f"{BASE}/log/deploys.jsonl"))


@pytest.fixture(scope="module")
def faulty(staging_host_factory, service_repo, variant_builds, tmp_path_factory):
    """Guest 23, set up, with v1 live: the baseline every fault must leave intact."""
    from tests.staging.guest import host_setup

    guest = staging_host_factory(23)
    host_setup(guest, service_repo / "deploy.toml")
    cli = Deployer(service_repo, [guest], tmp_path_factory.mktemp("faults"))
    cli("deploy", str(variant_builds("v1").path))
    cli.guest = guest
    yield cli
    guest.heal()
    guest.throttle(None)


def back_to_v1(cli, variant_builds) -> None:
    """Each test starts from v1 live (deployed again only if needed)."""
    v1 = variant_builds("v1")
    if current(cli.guest) != v1.manifest["release_id"]:
        cli("deploy", str(v1.path))


def next_deploy_succeeds(cli, build) -> None:
    cli("deploy", str(build.path))
    assert current(cli.guest) == build.manifest["release_id"]


def assert_no_uploads_left(guest) -> None:
    assert not sh(guest, "sh", "-c", f"ls {BASE}/incoming | grep -v '^engine-' || true")


def assert_untouched(guest, v1, before: set[str]) -> None:
    assert current(guest) == v1.manifest["release_id"]
    assert version_answering(guest) == v1.manifest["version"]
    assert not [r for r in releases_on(guest) - before if r.endswith(".partial")]


@pytest.mark.parametrize("cut", ["sessions", "reset", "link-down"])
def test_ssh_cut_while_staging_leaves_the_old_release(faulty, variant_builds, cut):
    guest, v1, v2 = faulty.guest, variant_builds("v1"), variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    guest.exec(["sh", "-c", f"rm -rf {BASE}/cache/uv {BASE}/releases/{v2.manifest['release_id']}"])
    before = releases_on(guest)
    run = LiveDeploy(faulty, "deploy", str(v2.path))
    run.wait_for("venv", "start")
    guest.cut(cut)
    t_cut = time.monotonic()
    code, out, err = run.finish(timeout=60)
    failed_after = time.monotonic() - t_cut
    guest.heal()
    assert code == 1 and failed_after < 12, f"a dead link must fail in seconds ({failed_after:.1f}s)"
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["hosts"][0]["result"] == "failed"
    detail = summary["hosts"][0]["detail"]  # the step it was in, and what the host runs
    assert re.search(r": (venv|check|smoke): ", detail), detail
    assert "host unchanged: the old release is live" in detail, detail
    lock_free_within(guest, 10)
    assert_untouched(guest, v1, before)
    # an install cut short is removed; one that finished before the engine noticed the
    # dead link stays `staged` (never switched to) until the next prune
    if v2.manifest["release_id"] in releases_on(guest):
        state = sh(guest, "cat", f"{BASE}/releases/{v2.manifest['release_id']}/.state")
        assert state == "staged"
    next_deploy_succeeds(faulty, v2)
    assert_no_uploads_left(guest)


def test_ssh_cut_during_upload_fails_fast_and_cleans_up(faulty, variant_builds):
    guest, v1, v2 = faulty.guest, variant_builds("v1"), variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    guest.exec(["sh", "-c", f"rm -rf {BASE}/cache/members {BASE}/releases/{v2.manifest['release_id']}"])
    before = releases_on(guest)
    guest.throttle("40mbit")  # ~77 MB: the upload is in flight for ~15 s
    try:
        run = LiveDeploy(faulty, "deploy", str(v2.path))
        run.wait_for("upload", "start")
        time.sleep(1.5)
        guest.cut("link-down")
        t_cut = time.monotonic()
        code, out, err = run.finish(timeout=60)
        failed_after = time.monotonic() - t_cut
    finally:
        guest.throttle(None)
        guest.heal()
    assert code == 1 and failed_after < 15, f"dead link noticed after {failed_after:.1f}s"
    assert "upload" in err and "Traceback" not in err
    lock_free_within(guest, 10)
    assert_untouched(guest, v1, before)
    next_deploy_succeeds(faulty, v2)
    assert_no_uploads_left(guest)


def test_link_down_right_before_the_switch_aborts_on_the_host(faulty, variant_builds):
    guest, v1, v2 = faulty.guest, variant_builds("v1"), variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    guest.exec(["rm", "-rf", f"{BASE}/releases/{v2.manifest['release_id']}"])
    before = releases_on(guest)
    run = LiveDeploy(faulty, "deploy", str(v2.path))
    run.wait_for("smoke", "start")
    guest.cut("link-down")  # the activate command can no longer reach the engine
    t_cut = time.monotonic()
    code, _, _ = run.finish(timeout=60)
    assert code == 1 and time.monotonic() - t_cut < 15
    # the host side notices only through the missing heartbeat: lock freed within seconds
    lock_free_within(guest, 10)
    guest.heal()
    assert_untouched(guest, v1, before)
    next_deploy_succeeds(faulty, v2)


@pytest.mark.parametrize("variant,expected", [("v2", "success"), ("crash", "reverted")])
def test_cut_after_the_switch_engine_finishes_alone(faulty, variant_builds, variant, expected):
    guest, v1, build = faulty.guest, variant_builds("v1"), variant_builds(variant)
    back_to_v1(faulty, variant_builds)
    run = LiveDeploy(faulty, "deploy", str(build.path))
    run.wait_for("switch", "ok")
    guest.cut("sessions")  # kills our sshd session: the engine keeps going on its own
    code, out, err = run.finish(timeout=180)
    summary = json.loads(out.strip().splitlines()[-1])
    host = summary["hosts"][0]
    assert host["result"] == expected, err[-2000:]
    assert "outcome read back after reconnecting" in host["detail"]
    record = last_audit(guest)
    assert record["to"] == build.manifest["release_id"] and record["result"] == expected
    lock_free_within(guest, 10)
    if expected == "success":
        assert code == 0 and current(guest) == build.manifest["release_id"]
        assert version_answering(guest) == build.manifest["version"]
    else:
        assert code == 1 and current(guest) == v1.manifest["release_id"]
        assert version_answering(guest) == v1.manifest["version"]
        state = sh(guest, "cat", f"{BASE}/releases/{build.manifest['release_id']}/.state")
        assert state == "bad"


def test_controller_killed_mid_deploy_frees_the_lock(faulty, variant_builds):
    guest, v1, v2 = faulty.guest, variant_builds("v1"), variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    guest.exec(["sh", "-c", f"rm -rf {BASE}/cache/uv {BASE}/releases/{v2.manifest['release_id']}"])
    before = releases_on(guest)
    run = LiveDeploy(faulty, "deploy", str(v2.path))
    run.wait_for("venv", "start")
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish(timeout=30)
    assert lock_free_within(guest, 10) < 10
    assert_untouched(guest, v1, before)
    next_deploy_succeeds(faulty, v2)


def test_broken_dependency_keeps_the_old_release_and_shows_the_installer(faulty, variant_builds, tmp_path):
    guest, v1 = faulty.guest, variant_builds("v1")
    back_to_v1(faulty, variant_builds)
    broken = corrupt_wheel(v1.path, tmp_path / "broken.tar", "aiohttp")
    proc = faulty("deploy", str(broken.path), check=False)
    assert proc.returncode == 1
    assert "installing dependencies failed" in proc.stdout + proc.stderr
    assert current(guest) == v1.manifest["release_id"]
    assert version_answering(guest) == v1.manifest["version"]
    bad = broken.manifest["release_id"]
    assert sh(guest, "cat", f"{BASE}/log/{bad}/install.log")
    assert sh(guest, "cat", f"{BASE}/releases/{bad}/.state", check=False) in ("bad", "")


@pytest.mark.parametrize("variant", ["crash", "unhealthy"])
def test_unhealthy_release_is_switched_back_and_never_chosen(faulty, variant_builds, variant):
    guest, v1, bad = faulty.guest, variant_builds("v1"), variant_builds(variant)
    back_to_v1(faulty, variant_builds)
    proc = faulty("deploy", str(bad.path), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "reverted" in text and "switched back to" in text
    assert current(guest) == v1.manifest["release_id"]
    assert version_answering(guest) == v1.manifest["version"]
    assert sh(guest, "cat", f"{BASE}/releases/{bad.manifest['release_id']}/.state") == "bad"
    if variant == "crash":
        excerpt = sh(guest, "sh", "-c", f"cat {BASE}/log/{bad.manifest['release_id']}/journal-*.txt")
        assert "crash at start" in excerpt
    roll = faulty("rollback", "--to", bad.manifest["release_id"], check=False)
    assert roll.returncode == 1 and "marked bad" in roll.stdout + roll.stderr
    assert current(guest) == v1.manifest["release_id"]


def test_two_deploys_at_once(faulty, variant_builds):
    guest, v2 = faulty.guest, variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    guest.exec(["sh", "-c", f"rm -rf {BASE}/cache/uv {BASE}/releases/{v2.manifest['release_id']}"])
    first = LiveDeploy(faulty, "deploy", str(v2.path))
    first.wait_for("lock", "ok")
    second = faulty("deploy", str(v2.path), check=False)
    assert second.returncode == 1
    assert "another deploy holds the lock" in second.stdout and "pid" in second.stdout
    waiting = LiveDeploy(faulty, "deploy", "--lock-wait", "120", str(v2.path))
    assert first.finish()[0] == 0
    assert waiting.finish()[0] == 0, "--lock-wait waits for the first deploy"
    assert current(guest) == v2.manifest["release_id"]


def test_low_disk_refused_before_upload(staging_host_factory, service_repo, variant_builds, tmp_path):
    from tests.staging.guest import host_setup

    guest = staging_host_factory(24, opt_size="600M")
    host_setup(guest, service_repo / "deploy.toml")
    guest.fill_disk(100)
    cli = Deployer(service_repo, [guest], tmp_path)
    proc = cli("deploy", str(variant_builds("v1").path), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "not enough disk" in text and "MiB free" in text and "needs" in text
    assert not sh(guest, "ls", "-A", f"{BASE}/releases") and not current(guest)
    assert_no_uploads_left(guest)
    guest.fill_disk(None)
    cli("deploy", str(variant_builds("v1").path))
    assert current(guest) == variant_builds("v1").manifest["release_id"]
    for secret in SECRET_VALUES:
        assert secret not in "".join(cli.outputs)


def test_bad_connections_are_refused_before_anything_is_sent(faulty, variant_builds, tmp_path):
    import subprocess

    guest, v1 = faulty.guest, variant_builds("v1")
    back_to_v1(faulty, variant_builds)
    audit_before = sh(guest, "cat", f"{BASE}/log/deploys.jsonl")
    art = str(v1.path)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong_pin = tmp_path / "wrong_known_hosts"
    wrong_pin.write_text(
        f"{guest.host} " + " ".join((tmp_path / "other_key.pub").read_text().split()[:2]) + "\n"
    )
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cases = [
        ({"DEPLOYER_KNOWN_HOSTS_FILE": str(empty)}, 2, "is not in known_hosts"),
        ({"DEPLOYER_KNOWN_HOSTS_FILE": str(wrong_pin)}, 2, "HOST KEY MISMATCH"),
        ({"DEPLOYER_SSH_KEY_FILE": str(other)}, 1, "refused our key"),
        ({"DEPLOYER_SSH_KEY_FILE": "", "SSH_AUTH_SOCK": ""}, 2, "no deploy key"),
        ({"DEPLOYER_USER": "nobody"}, 1, "refused our key"),
        ({"DEPLOYER_HOSTS": f"tgstream@{guest.host}:2222"}, 1, "cannot reach"),
    ]
    for env, code, message in cases:
        proc = faulty("deploy", art, check=False, env=env)
        assert proc.returncode == code, (env, proc.stdout, proc.stderr)
        text = proc.stdout + proc.stderr
        assert message in text and guest.host in text and "Traceback" not in text
    assert sh(guest, "cat", f"{BASE}/log/deploys.jsonl") == audit_before
    assert current(guest) == v1.manifest["release_id"]


@pytest.mark.parametrize("damage", ["tampered", "dotdot", "truncated"])
def test_damaged_artifact_refused_before_anything_is_sent(faulty, variant_builds, tmp_path, damage):
    """Names, shape, lock and sizes are checked before connecting; every hash while the
    hosts connect, before anything is uploaded. The host is left exactly as it was."""
    from tests.host.artifacts import tampered, with_member

    guest, v1, v2 = faulty.guest, variant_builds("v1"), variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    before, audit_before = releases_on(guest), sh(guest, "cat", f"{BASE}/log/deploys.jsonl")
    bad = tmp_path / "bad.tar"
    if damage == "tampered":
        tampered(v2.path, bad, v2.manifest["app_wheel"])  # a member every new release sends
    elif damage == "dotdot":
        info = tarfile.TarInfo("../../etc/cron.d/x")
        info.size = 3
        with_member(v2.path, bad, info, b"x\n\n")
    else:
        bad.write_bytes(v2.path.read_bytes()[: v2.path.stat().st_size // 3])
    proc = faulty("deploy", str(bad), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    *progress, error = proc.stderr.strip().splitlines()
    assert all(" ok: " in line for line in progress), "progress lines, then one error line"
    assert "artifact" in error.lower() or "sha256" in error or "unsafe" in error
    assert_untouched(guest, v1, before)
    assert releases_on(guest) == before
    assert_no_uploads_left(guest)
    assert sh(guest, "cat", f"{BASE}/log/deploys.jsonl") == audit_before


def test_secret_inputs_never_printed(faulty, variant_builds, tmp_path):
    """An encrypted key given as a CI secret, with its passphrase, plus the .env secrets.

    Runs last in this module: the outputs checked are those of EVERY scenario above
    (all ran with a .env full of recognisable secrets) plus its own."""
    import subprocess

    guest, v2 = faulty.guest, variant_builds("v2")
    back_to_v1(faulty, variant_builds)
    key = tmp_path / "ci_key"
    key.write_bytes(Path(faulty.env["DEPLOYER_SSH_KEY_FILE"]).read_bytes())
    key.chmod(0o600)
    passphrase = "correct-horse-battery-staple-77"
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", passphrase, "-f", str(key)], check=True)
    secret_env = {
        "DEPLOYER_SSH_KEY": key.read_text(),
        "DEPLOYER_SSH_KEY_PASSPHRASE": passphrase,
        "DEPLOYER_SSH_KEY_FILE": "",
    }
    faulty("deploy", str(v2.path), env=secret_env)
    faulty("deploy", str(variant_builds("crash").path), env=secret_env, check=False)
    faulty("rollback", env=secret_env)
    faulty("logs", "-n", "200", env=secret_env)
    faulty("--json", "status", env=secret_env)
    seen = "\n".join(faulty.outputs)
    seen += sh(guest, "sh", "-c", f"cat {BASE}/log/deploys.jsonl {BASE}/log/*/*.txt 2>/dev/null")
    assert passphrase not in seen
    for line in key.read_text().splitlines()[1:-1]:
        assert line not in seen
    for secret in SECRET_VALUES:
        assert secret not in seen
