"""User stories end to end: real SSH to real systemd guests, state asserted on the host."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tests.e2e.conftest import BASE, SECRET_VALUES, Deployer, sh

ENV = "/etc/deployer/tg_video_streamer/env"  # where host setup keeps the .env


def health(guest) -> dict:
    return json.loads(sh(guest, "curl", "-s", "--max-time", "5", "http://127.0.0.1:8080/health"))


def current(guest) -> str:
    return os.path.basename(sh(guest, "readlink", f"{BASE}/current"))


def audit(guest) -> list[dict]:
    return [json.loads(line) for line in sh(guest, "cat", f"{BASE}/log/deploys.jsonl").splitlines()]


def ssh_logins(guest) -> int:
    """How many SSH logins the guest's sshd has accepted so far."""
    log = sh(guest, "journalctl", "--no-pager", "-o", "cat", "-u", "ssh.service")
    return log.count("Accepted publickey for tgstream")


def unit_starts(guest) -> int:
    """How many times systemd has started the service so far."""
    log = sh(guest, "journalctl", "--no-pager", "-o", "cat", "-u", "tg_video_streamer.service")
    return sum(line.startswith("Started tg_video_streamer.service") for line in log.splitlines())


def test_deploy_redeploy_rollback_hotfix_and_dry_run(deployer_cli: Deployer, variant_builds, set_up_guests):
    guest = set_up_guests[0]
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    id1, id2 = v1.manifest["release_id"], v2.manifest["release_id"]

    # first deploy: release dir with its venv, current -> it, unit active, /health answers
    logins = ssh_logins(guest)
    deployer_cli("deploy", str(v1.path))
    # ONE SSH connection did it all, the journal excerpt for the log bundle included
    assert ssh_logins(guest) == logins + 1
    bundle = sorted((deployer_cli.config.parent / "deploy-logs").glob("*-deploy"))[-1]
    assert "serving on" in next(bundle.glob("journal-*.txt")).read_text()
    assert current(guest) == id1
    guest.exec(["test", "-x", f"{BASE}/releases/{id1}/venv/bin/python"])
    assert sh(guest, "systemctl", "is-active", "tg_video_streamer") == "active"
    assert health(guest) == {"status": "ok", "version": v1.manifest["version"]}
    inv = sh(guest, "systemctl", "show", "-p", "InvocationID", "--value", "tg_video_streamer")
    journal = sh(guest, "journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={inv}")
    assert "serving on 127.0.0.1:8080" in journal and "Traceback" not in journal
    last = audit(guest)[-1]
    assert last["result"] == "success" and last["to"] == id1 and last["healthy_s"] > 0
    assert last["gate_s"] >= 2 and last["actor"]
    env_mode = sh(guest, "stat", "-c", "%a %U", ENV)
    assert env_mode == "600 tgstream"

    # a changed version, with a new .env: backed up 0600 beside it
    guest.exec(["sh", "-c", f"echo state > {BASE}/shared/sessions/bot.session"])
    deployer_cli.write_env("another-s3cret-value-2b")
    starts = unit_starts(guest)
    deployer_cli("deploy", str(v2.path))
    assert unit_starts(guest) == starts + 1, "a deploy restarts the service exactly once"
    assert current(guest) == id2 and health(guest)["version"] == v2.manifest["version"]
    backups = sh(guest, "sh", "-c", f"stat -c '%a %n' {BASE}/secrets/.env.bak.*").splitlines()
    assert backups and all(b.startswith("600 ") for b in backups)
    assert sh(guest, "cat", f"{BASE}/current/sessions/bot.session") == "state"
    listing = deployer_cli("releases").stdout
    assert f"* {id2}" in listing and id1 in listing and "good" in listing

    # rollback: back to the previous good release and its version (and its .env)
    logins, starts = ssh_logins(guest), unit_starts(guest)
    deployer_cli("rollback")
    assert ssh_logins(guest) == logins + 1 and unit_starts(guest) == starts + 1
    assert current(guest) == id1 and health(guest)["version"] == v1.manifest["version"]
    assert SECRET_VALUES[0] in sh(guest, "cat", ENV)

    # hotfix: deploy a chosen earlier artifact, then roll back: the release live before it
    deployer_cli("deploy", str(v2.path))
    deployer_cli("deploy", str(v1.path))
    deployer_cli("rollback")
    assert current(guest) == id2, "rollback follows activations, not id order"

    # dry run: staged and smoke-tested; current and the service untouched
    crash = variant_builds("unhealthy")
    before = sh(guest, "systemctl", "show", "-p", "InvocationID", "--value", "tg_video_streamer")
    out = deployer_cli("deploy", "--dry-run", str(crash.path)).stdout
    assert "dry-run ok" in out
    assert current(guest) == id2
    assert sh(guest, "cat", f"{BASE}/releases/{crash.manifest['release_id']}/.state") == "staged"
    assert sh(guest, "systemctl", "show", "-p", "InvocationID", "--value", "tg_video_streamer") == before

    # status and logs
    assert "active (running)" in deployer_cli("status").stdout
    assert "serving on" in deployer_cli("logs", "-n", "20").stdout

    # keep_releases = 3 honoured; shared state survived everything
    deployer_cli("deploy", str(variant_builds("crash").path), check=False)
    releases = sh(guest, "ls", f"{BASE}/releases").split()
    assert len([r for r in releases if not r.startswith(".")]) <= 3
    assert current(guest) == id2 and health(guest)["version"] == v2.manifest["version"]
    assert sh(guest, "cat", f"{BASE}/shared/sessions/bot.session") == "state"

    # no secret value in any output, audit line or kept journal excerpt
    seen = "\n".join(deployer_cli.outputs)
    seen += sh(guest, "sh", "-c", f"cat {BASE}/log/deploys.jsonl {BASE}/log/*/*.txt 2>/dev/null")
    for secret in (*SECRET_VALUES, "another-s3cret-value-2b"):
        assert secret not in seen


def test_two_guests_in_one_command(set_up_guests, service_repo, variant_builds, tmp_path):
    both = Deployer(service_repo, set_up_guests, tmp_path)
    v2 = variant_builds("v2")
    out = both("deploy", str(v2.path)).stdout
    for g in set_up_guests:
        assert current(g) == v2.manifest["release_id"]
        assert health(g)["version"] == v2.manifest["version"]
        assert f"{g.host}: success {v2.manifest['release_id']}" in out


def test_check_reports_rights_and_refuses_unpinned_hosts(
    deployer_cli: Deployer, set_up_guests, example_artifact
):
    guest = set_up_guests[0]
    out = deployer_cli("check", str(example_artifact))
    text = out.stdout + out.stderr
    assert "sudo ok: allowed: /usr/bin/systemctl restart tg_video_streamer" in text
    assert "unit ok: matches the template" in text and "check passed" in text
    with tempfile.NamedTemporaryFile("w", suffix="known_hosts") as empty:
        refused = deployer_cli("check", check=False, env={"DEPLOYER_KNOWN_HOSTS_FILE": empty.name})
    assert refused.returncode == 1
    assert "is not in known_hosts" in refused.stderr and "SHA256:" in refused.stderr
    # least privilege, as the deploy user over real SSH
    import subprocess

    def as_deploy_user(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(guest.ssh_argv(*cmd), capture_output=True, text=True, timeout=30)

    assert as_deploy_user("sudo", "-n", "journalctl", "--vacuum-time=1s").returncode != 0
    assert as_deploy_user("sudo", "-n", "systemctl", "restart", "ssh").returncode != 0
    assert (
        as_deploy_user("sh", "-c", "echo x >> /etc/systemd/system/tg_video_streamer.service").returncode != 0
    )
    own = as_deploy_user("journalctl", "-u", "tg_video_streamer", "-n", "5", "--no-pager", "-q")
    assert own.returncode == 0, "its own service's journal is readable"
    others = as_deploy_user("journalctl", "-u", "ssh", "--no-pager", "-q")
    assert "Accepted publickey" not in others.stdout, "not the system's (no systemd-journal membership)"
    assert "systemd-journal" not in as_deploy_user("id", "-Gn").stdout


def test_unit_drift_warns_on_deploy_and_fails_check(
    deployer_cli: Deployer, set_up_guests, variant_builds, service_repo
):
    from tests.staging.guest import host_setup

    guest = set_up_guests[0]
    unit = "/etc/systemd/system/tg_video_streamer.service"
    guest.exec(["sh", "-c", f"echo '# edited by hand' >> {unit}"])
    try:
        out = deployer_cli("deploy", str(variant_builds("v1").path))
        assert "WARNING:" in out.stderr and "differs from the rendered template" in out.stderr
        check = deployer_cli("check", check=False)
        assert check.returncode == 1 and "unit fail" in check.stderr
    finally:
        host_setup(guest, service_repo / "deploy.toml")  # puts the rendered unit back
    assert deployer_cli("check").returncode == 0


def test_deploy_ref_builds_that_tag_in_a_clean_worktree(set_up_guests, service_repo, tmp_path):
    import subprocess

    from tests.conftest import git

    repo = tmp_path / "svc"
    subprocess.run(["git", "clone", "-q", str(service_repo), str(repo)], check=True)
    (tmp_path / "work").mkdir()
    cli = Deployer(repo, set_up_guests[:1], tmp_path / "work")
    # the config lives in the repository itself, as in a service repo
    (repo / "deploy.toml").write_text(cli.config.read_text().replace(str(repo) + "/", ""))
    (repo / "prod.env").write_text((cli.config.parent / "prod.env").read_text())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "deploy config", date="2026-11-26T14:00:00Z")
    git(repo, "tag", "v0.3.0")
    (repo / "examples/tg_video_streamer/README.md").write_text("uncommitted edit\n")
    cli.config = repo / "deploy.toml"
    cli("deploy", "--ref", "v0.3.0")
    assert health(set_up_guests[0])["version"] == "0.3.0", "the tag's version, not a dirty tree"
    worktrees = (
        subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
        .stdout.strip()
        .splitlines()
    )
    assert len(worktrees) == 1, "the temporary worktree is removed"


def test_a_burst_of_activations_never_trips_the_start_limit(
    deployer_cli: Deployer, set_up_guests, variant_builds, service_repo
):
    """Deploys and rollbacks restart the unit too: six within ten seconds must all work
    (systemd's default start limit would refuse the sixth and leave the service down)."""
    from tests.staging.guest import host_setup

    guest = set_up_guests[0]
    host_setup(guest, service_repo / "deploy.toml")  # the current unit and sudoers
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    for build in (v1, v2, v1, v2, v1, v2, v1):
        deployer_cli("deploy", "--watch", "0", str(build.path))
    assert current(guest) == v1.manifest["release_id"]
    assert health(guest)["version"] == v1.manifest["version"]
    assert sh(guest, "systemctl", "show", "-p", "Result", "--value", "tg_video_streamer") == "success"


def test_host_setup_over_ssh_as_an_admin(staging_host_factory, service_repo, variant_builds, tmp_path):
    """`deployer host setup` the way an admin runs it: over SSH, as a sudo-capable user."""
    guest = staging_host_factory(25)
    key = Path(guest.key_path + ".pub").read_text()
    guest.exec(["useradd", "--create-home", "--shell", "/bin/bash", "admin"])
    guest.exec(["usermod", "-p", "*", "admin"])
    guest.exec(
        [
            "sh",
            "-c",
            "install -d -m700 -o admin -g admin ~admin/.ssh && "
            f"echo '{key.strip()}' > ~admin/.ssh/authorized_keys && "
            "chown admin:admin ~admin/.ssh/authorized_keys && "
            "echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin && "
            "chmod 0440 /etc/sudoers.d/admin",
        ]
    )
    cli = Deployer(service_repo, [guest], tmp_path)
    first = cli("host", "setup", "--admin-user", "admin")
    assert "wrote /etc/sudoers.d/deployer-tg_video_streamer (visudo -c ok)" in first.stderr
    assert "enabled tg_video_streamer" in first.stderr
    again = cli("host", "setup", "--admin-user", "admin")
    assert "setup ok: nothing to change" in again.stderr, "idempotent"
    assert sh(guest, "stat", "-c", "%U %a", "/etc/systemd/system/tg_video_streamer.service") == "root 644"
    cli("deploy", str(variant_builds("v1").path))
    assert health(guest)["version"] == variant_builds("v1").manifest["version"]


def test_the_connection_negotiates_aes_gcm_with_openssh(set_up_guests):
    from deployer.remote.ssh import Connection, Credentials, Endpoint

    guest = set_up_guests[0]
    conn = Connection(
        Endpoint(guest.host, guest.host, guest.port, guest.user),
        Credentials(key_file=guest.key_path, known_hosts_file=guest.known_hosts_path),
    )
    try:
        transport = conn.client.get_transport()
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
        assert conn.run(["true"]).ok
    finally:
        conn.close()


def test_the_deploy_key_can_come_from_an_ssh_agent(deployer_cli: Deployer, set_up_guests, tmp_path):
    import subprocess
    import time

    guest = set_up_guests[0]
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        agent_env = {"DEPLOYER_SSH_KEY_FILE": "", "SSH_AUTH_SOCK": str(sock)}
        empty = deployer_cli("check", check=False, env=agent_env)
        assert empty.returncode == 1 and "the ssh-agent (SSH_AUTH_SOCK) offered no key" in empty.stderr
        subprocess.run(
            ["ssh-add", "-q", guest.key_path],
            env={"SSH_AUTH_SOCK": str(sock)},
            check=True,
            capture_output=True,
        )
        logins = ssh_logins(guest)
        proc = deployer_cli("check", env=agent_env)
        assert "check passed" in proc.stdout + proc.stderr
        assert ssh_logins(guest) == logins + 1  # the agent's key, the same deploy key
    finally:
        agent.terminate()
        agent.wait(timeout=10)
