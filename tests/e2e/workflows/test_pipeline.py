"""Scenarios: each runs this repository's workflows with act and asserts the guest's state.

They run in file order and share one history, as a repository's does: main's push builds
the artifact its tag promotes, a code change goes through staging, a hotfix branch grows
from main, rollbacks go back to what came before, a bad release is caught.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import pytest

from tests.conftest import VARIANT_DATES, VARIANTS, git
from tests.e2e.conftest import sh

pytestmark = [pytest.mark.workflows, pytest.mark.timeout(1800)]  # act runs take minutes

APP = "/opt/tg_video_streamer"
HEALTH = "http://127.0.0.1:8080/health"


# ---------------------------------------------------------------------------- the guest
def current(guest) -> str:
    return sh(guest, "readlink", f"{APP}/current").rsplit("/", 1)[-1]


def releases(guest) -> set[str]:
    return set(sh(guest, "ls", f"{APP}/releases").split())


def manifest(guest, release: str) -> dict:
    return json.loads(sh(guest, "cat", f"{APP}/releases/{release}/manifest.json"))


def health(guest) -> dict:
    return json.loads(sh(guest, "curl", "-fsS", "--max-time", "5", HEALTH))


def last_record(guest) -> dict:
    return json.loads(sh(guest, "tail", "-n", "1", f"{APP}/log/deploys.jsonl"))


def assert_live(guest, commit: str) -> str:
    """The release of ``commit`` is current, healthy, and answers its own version."""
    release = current(guest)
    shipped = manifest(guest, release)
    assert shipped["git"]["sha"] == commit, shipped["git"]
    assert health(guest)["version"] == shipped["version"]
    assert sh(guest, "systemctl", "is-active", "tg_video_streamer") == "active"
    return release


# --------------------------------------------------------------------------- the runs
def assert_ok(run) -> None:
    assert run.returncode == 0, f"act exited {run.returncode}:\n{run.log[-15000:]}"


def assert_no_secret(pipeline, *texts: str) -> None:
    for value in pipeline.secret_values():
        for text in texts:
            assert value not in text, f"a secret value ({value[:4]}...) was printed"


def tar_of(zip_path) -> tuple[str, bytes]:
    """The one .tar in an artifact's zip: its name and bytes."""
    with zipfile.ZipFile(zip_path) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".tar")]
        return name, z.read(name)


def members_of(zip_path) -> dict[str, str]:
    with zipfile.ZipFile(zip_path) as z:
        return {n: z.read(n).decode("utf-8", "replace") for n in z.namelist()}


HOTFIX = (VARIANTS["v2"][0], '"build": "v2"', '"build": "hotfix"')
# the example's crash at start, formatted as `make lint` wants it: it passes the tests
CRASH = (*VARIANTS["crash"][:2], VARIANTS["crash"][2].replace("'crash at start'", '"crash at start"'))
EDITS = {"hotfix": HOTFIX, "crash": CRASH}


def commit_variant(pipeline, name: str, branch: str = "main") -> str:
    """One edit of the example (tests/conftest.py VARIANTS) as a new commit on ``branch``."""
    path, old, new = EDITS.get(name) or VARIANTS[name]
    target = pipeline.repo / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    git(
        pipeline.repo, "commit", "-qam", f"example: {name}", date=VARIANT_DATES.get(name, VARIANT_DATES["v2"])
    )
    pipeline.push(branch)
    return pipeline.head()


@pytest.fixture(scope="module")
def story():
    """What earlier scenarios left for later ones (run ids, releases, commits)."""
    return {}


def test_push_to_main_tests_builds_and_deploys(pipeline, story):
    sha = pipeline.head()
    run = pipeline.act.run("deploy.yml", "push", ref="refs/heads/main", sha=sha)
    assert_ok(run)
    assert "make test-fast" in run.log and "Success - Main make lint" in run.log
    built = pipeline.forge.find(f"release-{sha}", run.run_id)
    assert built["expired"] is False
    release = assert_live(pipeline.guest, sha)
    tar_name, tar_bytes = tar_of(pipeline.forge.zips[built["id"]])
    assert release in tar_name
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        shipped_manifest = t.extractfile("manifest.json").read()
        assert "manifest.json.sig" in t.getnames()  # signed by the release job (the guest takes no other)
    assert (
        sh(pipeline.guest, "cat", f"{APP}/releases/{release}/manifest.json").encode()
        == shipped_manifest.strip()
    )
    # 30 days asked for the artifact and for the log bundle
    logs_name = f"deploy-logs-production-deploy-{run.run_id}-1"
    for name in (built["name"], logs_name):
        assert 29.9 < pipeline.forge.retention_days(name, run.run_id) <= 30, name
    # the job summary names host, release, version and links to the run and the artifact
    summary = run.summary()
    version = manifest(pipeline.guest, release)["version"]
    for fact in (pipeline.guest.host, release, version, f"/actions/runs/{run.run_id}"):
        assert fact in summary, f"{fact} not in the job summary:\n{summary}"
    assert "## Deploy report: 30 days" in summary  # the period's outcomes (deployer report)
    logs = pipeline.forge.find(logs_name, run.run_id)
    bundle = members_of(pipeline.forge.zips[logs["id"]])
    assert "summary.json" in " ".join(bundle) and "status.txt" in bundle
    assert_no_secret(pipeline, run.log, summary, *bundle.values())
    record = last_record(pipeline.guest)
    assert record["to"] == release and record["result"] == "success"
    story.update(main_run=run.run_id, main_sha=sha, main_release=release, main_artifact=built["id"])
    story["main_tar"] = hashlib.sha256(tar_bytes).hexdigest()


def test_tag_promotes_the_artifact_main_built(pipeline, story):
    sha = story["main_sha"]
    git(pipeline.repo, "tag", "v0.2.0", sha)
    pipeline.push("v0.2.0")
    run = pipeline.act.run("deploy.yml", "push", ref="refs/tags/v0.2.0", sha=sha)
    assert_ok(run)
    # nothing rebuilt: no release job, no build step; the artifact of main's run downloaded
    assert "Build and verify the artifact" not in run.log and "Main Build the artifact" not in run.log
    assert f"of run {story['main_run']}" in run.log
    kept = pipeline.forge.find(f"release-{sha}", run.run_id)
    _, tar_bytes = tar_of(pipeline.forge.zips[kept["id"]])
    assert hashlib.sha256(tar_bytes).hexdigest() == story["main_tar"]  # the very bytes
    assert assert_live(pipeline.guest, sha) == story["main_release"]
    assert_no_secret(pipeline, run.log, run.summary())


def test_staging_dry_run_stages_then_switches(pipeline, story):
    sha = commit_variant(pipeline, "v2")
    before = current(pipeline.guest)
    dry = pipeline.act.run(
        "deploy-staging.yml", "workflow_dispatch", ref="refs/heads/main", sha=sha, inputs={"dry-run": "true"}
    )
    assert_ok(dry)
    assert current(pipeline.guest) == before  # nothing switched
    staged = releases(pipeline.guest) - {before}
    assert any(manifest(pipeline.guest, r)["git"]["sha"] == sha for r in staged), staged
    assert health(pipeline.guest).get("build") != "v2"
    live = pipeline.act.run(
        "deploy-staging.yml", "workflow_dispatch", ref="refs/heads/main", sha=sha, inputs={"dry-run": "false"}
    )
    assert_ok(live)
    release = assert_live(pipeline.guest, sha)
    assert health(pipeline.guest)["build"] == "v2"
    assert_no_secret(pipeline, dry.log, live.log, dry.summary(), live.summary())
    story.update(v2_sha=sha, v2_release=release)


def manual(pipeline, **inputs):
    full = {"artifact-id": "", "tag": "", "branch": "", "environment": "production", "dry-run": "false"}
    return pipeline.act.run(
        "manual-deploy.yml",
        "workflow_dispatch",
        ref="refs/heads/main",
        sha=pipeline.head(),
        inputs={**full, **inputs},
    )


def test_manual_deploy_by_tag_branch_and_artifact_id(pipeline, story):
    by_tag = manual(pipeline, tag="v0.2.0")
    assert_ok(by_tag)
    assert "refs/tags/v0.2.0" in by_tag.log
    tag_release = assert_live(pipeline.guest, story["main_sha"])
    assert manifest(pipeline.guest, tag_release)["version"] == "0.2.0"  # built from the tag

    git(pipeline.repo, "checkout", "-q", "-b", "hotfix/login-timeout", "main")
    hotfix = commit_variant(pipeline, "hotfix", branch="hotfix/login-timeout")
    git(pipeline.repo, "checkout", "-q", "main")
    by_branch = manual(pipeline, branch="hotfix/login-timeout")
    assert_ok(by_branch)
    assert "refs/heads/hotfix/login-timeout" in by_branch.log
    assert_live(pipeline.guest, hotfix)
    assert health(pipeline.guest)["build"] == "hotfix"

    by_id = manual(pipeline, **{"artifact-id": str(story["main_artifact"])})
    assert_ok(by_id)
    assert assert_live(pipeline.guest, story["main_sha"]) == story["main_release"]
    assert_no_secret(pipeline, by_tag.log, by_branch.log, by_id.log)


def test_rollback_to_previous_then_to_an_id(pipeline, story):
    before = current(pipeline.guest)
    run = pipeline.act.run(
        "rollback.yml",
        "workflow_dispatch",
        ref="refs/heads/main",
        sha=pipeline.head(),
        inputs={"environment": "production", "release-id": ""},
    )
    assert_ok(run)
    after = current(pipeline.guest)
    assert after != before and last_record(pipeline.guest)["result"] == "success"
    assert health(pipeline.guest)
    to_v2 = pipeline.act.run(
        "rollback.yml",
        "workflow_dispatch",
        ref="refs/heads/main",
        sha=pipeline.head(),
        inputs={"environment": "production", "release-id": story["v2_release"]},
    )
    assert_ok(to_v2)
    assert current(pipeline.guest) == story["v2_release"]
    assert health(pipeline.guest)["build"] == "v2"
    assert_no_secret(pipeline, run.log, to_v2.log)


def test_bad_release_fails_the_workflow_switches_back_and_notifies(pipeline, story):
    hook, box = pipeline.hook, pipeline.box
    hook.requests.clear()
    box.messages.clear()
    good = current(pipeline.guest)
    sha = commit_variant(pipeline, "crash")
    run = pipeline.act.run("deploy.yml", "push", ref="refs/heads/main", sha=sha)
    assert run.returncode != 0
    assert run.job_failed("deploy (production)") and not run.job_failed("test")
    assert current(pipeline.guest) == good
    assert health(pipeline.guest)["build"] == "v2"
    link = f"/actions/runs/{run.run_id}"
    failures = [r for r in hook.requests if "failure" in r["body"].lower() or "failed" in r["body"].lower()]
    assert failures and link in failures[-1]["body"], hook.requests
    assert box.messages and link in box.messages[-1]["text"], box.messages
    assert_no_secret(pipeline, run.log, run.summary(), *(r["body"] for r in hook.requests))
    assert_no_secret(pipeline, *(m["raw"] for m in box.messages))


def test_no_secret_value_in_any_run(pipeline):
    """Every value of every secret file act was given is absent from everything it printed,
    in every run above: the workflows never print one in a form act cannot mask."""
    logs = sorted(pipeline.act.home.glob("run-*/act.log"))
    assert len(logs) >= 10, logs
    for log in logs:
        assert_no_secret(pipeline, log.read_text())
