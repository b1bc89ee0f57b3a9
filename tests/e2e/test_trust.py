"""Trust boundaries attacked for real on a staging guest, each attack asserted to fail.

From root's side the deploy user (``tgstream``) is untrusted: it plants links and files
in what it owns, then root re-runs ``host setup``; the targets' owners and contents are
checked afterwards. Hostile config values and release ids are refused before anything
is written; an artifact whose engine was tampered with is never started.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.staging.guest import SETUP_DIR, host_setup

BASE = "/opt/tg_video_streamer"
GUEST = 4  # this file's own guest: the attacks leave it in odd states


@pytest.fixture(scope="module")
def guest(staging_host_factory, service_repo):
    g = staging_host_factory(GUEST)
    host_setup(g, service_repo / "deploy.toml", authorized_key=Path(g.key_path + ".pub").read_text())
    return g


def as_deploy_user(guest, script: str) -> None:
    """What the deploy user can do on its own, over its own SSH login."""
    proc = subprocess.run(
        guest.ssh_argv("sh", "-c", shlex.quote(script)), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def stat(guest, path: str) -> str:
    return guest.exec(["stat", "-c", "%U:%G %a %F", path]).stdout.strip()


def setup_fails(guest, config_path: Path, *, authorized_key: str | None = None) -> str:
    with pytest.raises(RuntimeError) as e:
        host_setup(guest, config_path, authorized_key=authorized_key)
    return str(e.value)


def test_a_shared_dir_swapped_for_a_link_is_refused_and_the_target_stays_roots(guest, service_repo):
    before = stat(guest, "/etc/profile.d")
    as_deploy_user(guest, f"rm -rf {BASE}/shared/sessions && ln -s /etc/profile.d {BASE}/shared/sessions")
    out = setup_fails(guest, service_repo / "deploy.toml")
    assert f"{BASE}/shared/sessions is a symbolic link" in out
    assert stat(guest, "/etc/profile.d") == before == "root:root 755 directory"
    as_deploy_user(guest, f"rm {BASE}/shared/sessions && mkdir {BASE}/shared/sessions")
    host_setup(guest, service_repo / "deploy.toml")  # healed: setup goes through again


def test_authorized_keys_linked_to_shadow_is_refused_and_shadow_is_untouched(guest, service_repo):
    key = Path(guest.key_path + ".pub").read_text()
    shadow = guest.exec(["sha256sum", "/etc/shadow"]).stdout
    before = stat(guest, "/etc/shadow")
    as_deploy_user(guest, "cd ~/.ssh && cp authorized_keys keys.bak && ln -sf /etc/shadow authorized_keys")
    try:
        out = setup_fails(guest, service_repo / "deploy.toml", authorized_key=key)
        assert "authorized_keys is a symbolic link" in out
        assert stat(guest, "/etc/shadow") == before and before.startswith("root:shadow")
        assert guest.exec(["sha256sum", "/etc/shadow"]).stdout == shadow
    finally:  # the deploy user's own key file back (its SSH login needs it)
        guest.exec(["sh", "-c", "cd ~tgstream/.ssh && mv -f keys.bak authorized_keys"])


def test_the_deploy_key_is_authorized_with_restrict(guest):
    keys = guest.exec(["cat", "/home/tgstream/.ssh/authorized_keys"]).stdout
    mine = Path(guest.key_path + ".pub").read_text().split()[1]
    [line] = [ln for ln in keys.splitlines() if mine in ln]
    assert line.startswith("restrict ")


def test_setup_never_renders_templates_the_deploy_user_can_write(guest, service_repo):
    """Without --artifact or --templates, setup used to read `current/packaging/`."""
    sudoers = guest.exec(["cat", "/etc/sudoers.d/deployer-tg_video_streamer"]).stdout
    as_deploy_user(
        guest,
        f"mkdir -p {BASE}/planted/packaging && "
        f"printf 'tgstream ALL=(ALL) NOPASSWD: ALL\\n' > {BASE}/planted/packaging/sudoers.in && "
        f"cp /usr/local/lib/deployer/tg_video_streamer/launch {BASE}/planted/packaging/launch.sh.in && "
        f"ln -sfn planted {BASE}/current",
    )
    config = _config(service_repo)
    proc = guest.exec(
        ["python3", f"{SETUP_DIR}/engine.pyz", "--config-json", json.dumps(config), "setup"], check=False
    )
    assert proc.returncode == 2 and "setup needs --artifact" in proc.stdout
    assert guest.exec(["cat", "/etc/sudoers.d/deployer-tg_video_streamer"]).stdout == sudoers
    rules = [ln for ln in sudoers.splitlines() if ln and not ln.startswith("#")]
    assert rules == [
        f"tgstream ALL=(root) NOPASSWD: /usr/bin/systemctl {verb} tg_video_streamer"
        for verb in ("restart", "stop", "reset-failed")
    ]
    guest.exec(["rm", "-rf", f"{BASE}/planted", f"{BASE}/current"])


def _config(service_repo: Path) -> dict:
    from deployer.config import load_config

    return load_config(service_repo / "deploy.toml", environ={}).host_config().to_dict()


@pytest.mark.parametrize(
    "change, refused",
    [
        ({"base_path": "/opt/tg\nExecStartPre=+/bin/sh -c id"}, "base_path"),
        ({"user": "root"}, "root may not deploy"),
        ({"user": "daemon"}, "is a system account (uid 1)"),
        ({"unit": "ssh"}, "ssh.service is a unit of this host already"),
    ],
)
def test_hostile_values_never_reach_a_root_owned_file(guest, service_repo, change, refused):
    unit_before = guest.exec(["cat", "/etc/systemd/system/tg_video_streamer.service"]).stdout
    config = {**_config(service_repo), **change}
    proc = guest.exec(
        [
            "python3",
            f"{SETUP_DIR}/engine.pyz",
            "--config-json",
            json.dumps(config),
            "setup",
            "--templates",
            f"{SETUP_DIR}/packaging",
        ],
        check=False,
    )
    assert proc.returncode != 0 and refused in proc.stdout, proc.stdout
    assert guest.exec(["test", "-e", "/etc/systemd/system/ssh.service"], check=False).returncode == 1
    assert guest.exec(["cat", "/etc/systemd/system/tg_video_streamer.service"]).stdout == unit_before
    assert "ExecStartPre" not in unit_before
    assert guest.exec(["ls", "/etc/sudoers.d"]).stdout.split() == ["README", "deployer-tg_video_streamer"]


def test_the_controller_refuses_hostile_config_values_with_the_key_path(tmp_path):
    for toml, key in (
        ('[app]\nname = "svc"\nbase_path = "/etc/svc"\n', "app.base_path"),
        ('[app]\nname = "svc"\nuser = "root"\n', "app.user"),
    ):
        (tmp_path / "deploy.toml").write_text(toml)
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "-c", str(tmp_path / "deploy.toml"), "releases"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and f"{key}: " in proc.stderr and "Traceback" not in proc.stderr


def test_rollback_to_a_path_outside_releases_is_refused(guest, deployer_cli_for, service_repo):
    cli = deployer_cli_for(guest)
    current = guest.exec(["readlink", f"{BASE}/current"], check=False).stdout
    proc = cli("rollback", "--to", "../shared/data/x", check=False)
    assert proc.returncode == 2 and "is not a release id" in proc.stderr
    # and the engine refuses it on its own, whoever calls it
    guest.exec(["install", "-m", "0644", f"{SETUP_DIR}/engine.pyz", "/tmp/engine.pyz"])
    config = json.dumps(_config(service_repo))
    out = subprocess.run(
        guest.ssh_argv(
            shlex.join(
                [
                    "python3",
                    "/tmp/engine.pyz",
                    "--config-json",
                    config,
                    "rollback",
                    "--to",
                    "../shared/data/x",
                ]
            )
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "is not a release id" in out.stdout
    assert guest.exec(["readlink", f"{BASE}/current"], check=False).stdout == current


def test_a_tampered_engine_is_never_uploaded_or_started(guest, deployer_cli_for, example_artifact, tmp_path):
    """One byte of engine.pyz flipped, the manifest left as it was: the deploy's quick
    shape check passes, the full hash check does not, and it comes first."""
    import hashlib

    from tests.host.artifacts import tampered

    bad = tampered(example_artifact, tmp_path / "bad.tar", "engine.pyz")
    digest = hashlib.sha256(_member(bad, "engine.pyz")).hexdigest()[:16]
    cli = deployer_cli_for(guest)
    proc = cli("deploy", str(bad), check=False)
    assert proc.returncode == 1 and "engine.pyz" in proc.stdout + proc.stderr
    found = guest.exec(["sh", "-c", f"ls {BASE}/incoming"], check=False).stdout
    assert f"engine-{digest}.pyz" not in found


def _member(artifact: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(artifact) as t:
        f = t.extractfile(name)
        assert f is not None
        return f.read()


def test_the_env_parser_reads_a_tricky_file_exactly_as_systemd_does(guest):
    """The masking rules parse the .env; they are only right if systemd agrees."""
    from deployer.host.envfile import EnvFile
    from tests.unit.test_masking import TRICKY

    guest.push("/root/tricky.env", TRICKY.encode(), 0o600)
    proc = guest.exec(
        [
            "systemd-run",
            "--wait",
            "--pipe",
            "--quiet",
            "-p",
            "EnvironmentFile=/root/tricky.env",
            "/usr/bin/env",
            "-0",
        ]
    )
    seen = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
    ours = EnvFile(TRICKY)
    assert {k: seen.get(k) for k, _ in ours.assignments} == dict(ours.assignments)
    assert not {"EXPORTED", "export EXPORTED", "9BAD"} & set(seen)


def test_the_env_lives_where_no_link_can_be_planted_and_the_service_cannot_write(guest):
    env = "/etc/deployer/tg_video_streamer/env"
    assert stat(guest, "/etc/deployer/tg_video_streamer") == "root:root 755 directory"
    assert stat(guest, env) == "tgstream:tgstream 600 regular empty file" or stat(guest, env).startswith(
        "tgstream:tgstream 600 regular"
    )
    unit = guest.exec(["cat", "/etc/systemd/system/tg_video_streamer.service"]).stdout
    assert f"EnvironmentFile=-{env}" in unit and "shared/.env" not in unit
    # the deploy user may rewrite the file, never swap it for a link to a root-only file
    proc = subprocess.run(
        guest.ssh_argv("sh", "-c", shlex.quote(f"ln -sf /etc/shadow {env}")), capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    assert stat(guest, env).startswith("tgstream:tgstream 600 regular")


def test_the_unit_is_in_systemd_analyze_security_ok_band(guest):
    out = guest.exec(["systemd-analyze", "security", "--no-pager", "tg_video_streamer.service"]).stdout
    level = out.strip().splitlines()[-1]  # "→ Overall exposure level for …: 1.1 OK :-)"
    exposure = float(level.split(":")[1].split()[0])
    assert exposure < 5.0 and (" OK " in level or " SAFE " in level), level


def test_setup_moves_an_earlier_shared_env_out_of_the_services_reach(guest, service_repo):
    """A host set up by an earlier deployer kept the .env in shared/: setup moves it."""
    env = "/etc/deployer/tg_video_streamer/env"
    guest.exec(["rm", "-rf", "/etc/deployer/tg_video_streamer"])
    guest.push(f"{BASE}/shared/.env", b"API_TOKEN=moved-along-s3cret\n", 0o600)
    guest.exec(["chown", "tgstream:tgstream", f"{BASE}/shared/.env"])
    host_setup(guest, service_repo / "deploy.toml")
    assert guest.exec(["cat", env]).stdout == "API_TOKEN=moved-along-s3cret\n"
    assert stat(guest, env).startswith("tgstream:tgstream 600 regular")
    assert guest.exec(["test", "-e", f"{BASE}/shared/.env"], check=False).returncode == 1, "no copy left"
