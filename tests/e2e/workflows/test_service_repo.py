"""A service repository of its own: `deployer init` writes its caller workflows, and its
push to main runs deployer's reusable workflow at the commit the caller pins.

The service is examples/notes_api (a web API, type=exec, no sd_notify, no .env), not the
example the rest of the suite deploys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, make_notes_repo
from tests.e2e.conftest import sh
from tests.e2e.workflows.act import Act
from tests.staging.guest import host_setup

pytestmark = [pytest.mark.workflows, pytest.mark.timeout(1800)]  # act runs take minutes

GUEST = 31
SERVICE = "acme/notes"
APP = "notes_api"


def deployer_init(repo: Path, pinned: str) -> None:
    """`deployer init` as a user runs it: the callers pin ``pinned``, a commit of this
    deployer checkout (its HEAD, committed: the forge has it, as main's ancestor)."""
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "init", str(repo), "--owner", "acme", "--ref", pinned],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = repo / "deploy.toml"
    config.write_text(config.read_text().replace("watch = 60", "watch = 3"))


def test_init_callers_deploy_a_service_through_the_reusable_workflow(
    pipeline, staging_host_factory, tmp_path
):
    guest = staging_host_factory(GUEST)
    pinned = pipeline.cloned
    repo = make_notes_repo(
        tmp_path / "notes", without=("deploy.toml", "packaging"), prepare=lambda r: deployer_init(r, pinned)
    )
    caller = (repo / ".github/workflows/deploy.yml").read_text()
    assert f"acme/deployer/.github/workflows/deploy-reusable.yml@{pinned}" in caller
    git(repo, "remote", "add", "origin", f"https://github.com/{SERVICE}.git")
    subprocess.run(
        ["git", "-C", str(repo), "push", "-q", str(pipeline.forge.repository(SERVICE)), "main"], check=True
    )
    host_setup(guest, repo / "deploy.toml", authorized_key=Path(guest.key_path + ".pub").read_text())

    # deployer exactly at the pinned commit, for act's `uses: acme/deployer/...@<sha>`
    pinned_tree = tmp_path / "deployer-at-pin"
    git(pipeline.repo, "worktree", "add", "-q", "--detach", str(pinned_tree), pinned)
    act = Act(
        workdir=repo,
        repository=SERVICE,
        forge=pipeline.forge,
        home=pipeline.act.home,
        secrets={
            "DEPLOY_SSH_KEY": Path(guest.key_path).read_text(),
            "DEPLOY_KNOWN_HOSTS": Path(guest.known_hosts_path).read_text(),
        },
        variables={"DEPLOY_HOSTS": f"{APP}@{guest.host}:{guest.port}"},
        local_repositories={f"acme/deployer@{pinned}": pinned_tree},
        next_run_id=5000,
    )
    sha = git(repo, "rev-parse", "HEAD")
    run = act.run("deploy.yml", "push", ref="refs/heads/main", sha=sha)
    assert run.returncode == 0, run.log[-15000:]
    # deployer checked out at the pinned commit; the service built by the artifact job
    assert f"HEAD is now at {pinned[:7]}" in run.log
    assert "Success - Main Build the artifact" in run.log
    release = sh(guest, "readlink", f"/opt/{APP}/current").rsplit("/", 1)[-1]
    shipped = json.loads(sh(guest, "cat", f"/opt/{APP}/releases/{release}/manifest.json"))
    assert shipped["git"]["sha"] == sha and shipped["app"] == APP
    assert sh(guest, "systemctl", "is-active", APP) == "active"
    answer = json.loads(sh(guest, "curl", "-fsS", "--max-time", "5", "http://127.0.0.1:8000/health"))
    assert answer["version"] == "1.0.0"
    for value in act.secrets.values():
        for line in value.splitlines():
            if len(line.strip()) >= 8:
                assert line.strip() not in run.log
