"""The workflow scripts (.github/scripts/), run for real: against a stand-in of the GitHub
REST API on 127.0.0.1 (tests/unit/fakegithub.py) and scratch git repositories.

From production's side whoever can open a pull request or push a branch is untrusted:
branch and tag names, artifacts uploaded by other runs, workflow inputs. Each attack here
must fail: the fork's `release-<sha>`, another workflow's or event's artifact, a manifest
that claims another commit or a malformed release id, a branch named like a tag, a ref
that would be read as an option.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.unit.fakegithub import REPO, FakeGitHub, artifact, run, serve

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / ".github" / "scripts"
SHA = "3f2a9c1" + "e" * 33  # the commit being deployed
OTHER = "badc0de" + "0" * 33
RUN_ID = 900  # this run
RELEASE = "20261126T101500Z-3f2a9c1"


def outputs(path: Path) -> dict:
    """$GITHUB_OUTPUT as a dict (name=value lines)."""
    text = path.read_text() if path.exists() else ""
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def script(name: str, tmp_path: Path, env: dict, cwd: Path | None = None, args=()) -> tuple:
    out = tmp_path / f"output-{name}"
    out.unlink(missing_ok=True)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GITHUB_OUTPUT": str(out), "LC_ALL": "C"}
    proc = subprocess.run(
        [str(SCRIPTS / name), *args],
        cwd=cwd or tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, outputs(out)


# -- find-artifact.sh ------------------------------------------------------------------


@pytest.fixture
def api():
    fake = FakeGitHub()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


def find(api: FakeGitHub, tmp_path: Path, **env: str) -> tuple:
    proc, out = script(
        "find-artifact.sh",
        tmp_path,
        {
            "GITHUB_API_URL": api.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_RUN_ID": str(RUN_ID),
            "GH_TOKEN": api.token,
            "SHA": SHA,
            **env,
        },
    )
    assert api.requests and all(authorized for _, authorized in api.requests)  # the token was sent
    assert api.token not in proc.stdout + proc.stderr
    return proc, out


MAIN_PUSH = run(101, SHA)  # deploy.yml on a push to main of this repository, for SHA


def test_promotion_takes_what_deploy_yml_built_on_a_push_to_main(api, tmp_path):
    api.add(MAIN_PUSH, artifact(11, f"release-{SHA}", MAIN_PUSH))
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out == {
        "source": "download",
        "id": "11",
        "name": f"release-{SHA}",
        "run-id": "101",
        "same-run": "false",
        "commit": SHA,
    }


def test_a_fork_pull_requests_release_artifact_is_refused(api, tmp_path):
    """The fork's run names its artifact release-<sha> and its branch `main`: never promoted."""
    fork_pr = run(102, SHA, path=".github/workflows/deploy.yml", event="pull_request", fork=True)
    api.add(fork_pr, artifact(12, f"release-{SHA}", fork_pr))
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0, proc.stderr
    assert out == {"source": "build", "commit": SHA}  # the tag's commit is built afresh
    assert "::warning::refused 1 artifact(s)" in proc.stdout and "12 (run 102)" in proc.stdout


def test_a_fork_artifact_uploaded_later_cannot_shadow_mains(api, tmp_path):
    fork_pr = run(102, SHA, event="pull_request_target", fork=True)
    api.add(
        MAIN_PUSH, artifact(11, f"release-{SHA}", MAIN_PUSH), fork_pr, artifact(12, f"release-{SHA}", fork_pr)
    )
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0, proc.stderr
    assert (out["source"], out["id"], out["run-id"]) == ("download", "11", "101")


@pytest.mark.parametrize(
    "made_by",
    [
        {"event": "pull_request"},  # a pull request of this repository
        {"event": "workflow_dispatch"},  # deploy.yml dispatched by hand
        {"path": ".github/workflows/ci.yml"},  # another workflow, on a push to main
        {"path": ".github/workflows/deploy-staging.yml", "event": "workflow_dispatch"},
        {"path": ".github/workflows/manual-deploy.yml", "event": "workflow_dispatch"},
        {"branch": "v1.2.3"},  # a push to a branch named like the tag
        {"branch": "release-main"},
    ],
    ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
)
def test_an_artifact_of_another_workflow_event_or_branch_is_refused(api, tmp_path, made_by):
    other = run(103, SHA, **made_by)
    api.add(other, artifact(13, f"release-{SHA}", other))
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0, proc.stderr
    assert out == {"source": "build", "commit": SHA}
    assert "refused 1 artifact(s)" in proc.stdout


@pytest.mark.parametrize("how", ["promote", "artifact id"])
def test_a_run_whose_head_repository_is_a_fork_is_refused_whatever_the_artifact_says(api, tmp_path, how):
    """Both records are checked: the artifact's workflow_run ids, and the run's head_repository."""
    fork_pr = run(107, SHA, fork=True)
    claimed = artifact(19, f"release-{SHA}", run(107, SHA))  # ids of this repository
    api.add(fork_pr, claimed)
    proc, out = find(api, tmp_path, **({"PROMOTE": "true"} if how == "promote" else {"ARTIFACT_ID": "19"}))
    if how == "promote":
        assert out == {"source": "build", "commit": SHA} and "refused 1" in proc.stdout
    else:
        assert proc.returncode == 1 and "not kept by a push or dispatch run of this repository" in proc.stdout


def test_an_artifact_whose_run_was_for_another_commit_is_refused(api, tmp_path):
    """deploy.yml on main, but the run was for another commit than the one deployed."""
    other = run(104, OTHER)
    api.add(other, artifact(14, f"release-{SHA}", other))
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert out == {"source": "build", "commit": SHA} and "refused 1" in proc.stdout


def test_an_expired_main_artifact_is_built_again(api, tmp_path):
    api.add(MAIN_PUSH, artifact(11, f"release-{SHA}", MAIN_PUSH, expired=True))
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0 and out == {"source": "build", "commit": SHA}
    assert "has EXPIRED; building it again" in proc.stdout


def test_no_artifact_for_the_commit_builds_it(api, tmp_path):
    proc, out = find(api, tmp_path, PROMOTE="true")
    assert proc.returncode == 0 and out == {"source": "build", "commit": SHA}
    proc, out = find(api, tmp_path)  # not promoting: nothing is looked up
    assert proc.returncode == 0 and out == {"source": "build", "commit": SHA}


def test_an_artifact_of_this_run_is_taken_by_name(api, tmp_path):
    this = run(RUN_ID, SHA)
    api.add(this, artifact(15, f"release-{SHA}", this))
    proc, out = find(api, tmp_path, ARTIFACT_NAME=f"release-{SHA}")
    assert proc.returncode == 0, proc.stderr
    assert out["same-run"] == "true" and out["id"] == "15" and out["commit"] == SHA
    proc, out = find(api, tmp_path, ARTIFACT_NAME="release-nope")
    assert proc.returncode == 1 and "not uploaded in this run" in proc.stdout and out == {}


def test_a_hotfix_by_artifact_id_takes_a_kept_release_of_this_repository(api, tmp_path):
    """manual-deploy of a branch kept release-<that branch's commit>: its commit is the name's."""
    hotfix = run(105, OTHER, path=".github/workflows/manual-deploy.yml", event="workflow_dispatch")
    api.add(hotfix, artifact(16, f"release-{SHA}", hotfix))
    proc, out = find(api, tmp_path, ARTIFACT_ID="16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out["source"], out["id"], out["run-id"], out["commit"]) == ("download", "16", "105", SHA)


@pytest.mark.parametrize(
    "made_by, name, said",
    [
        ({"event": "pull_request", "fork": True}, f"release-{SHA}", "of a fork: refused"),
        ({"event": "pull_request"}, f"release-{SHA}", "not kept by a push or dispatch run"),
        ({"path": ".github/workflows/ci.yml"}, f"release-{SHA}", "not kept by a push or dispatch run"),
        ({}, "release-latest", "not a release-<sha> artifact"),
        ({}, f"release-{SHA}-x", "not a release-<sha> artifact"),
    ],
)
def test_a_hotfix_artifact_id_not_kept_by_a_trusted_run_is_refused(api, tmp_path, made_by, name, said):
    other = run(106, SHA, **made_by)
    api.add(other, artifact(17, name, other))
    proc, out = find(api, tmp_path, ARTIFACT_ID="17")
    assert proc.returncode == 1 and said in proc.stdout and out == {}


def test_a_hotfix_artifact_id_that_expired_or_never_was_is_said_clearly(api, tmp_path):
    api.add(MAIN_PUSH, artifact(18, f"release-{SHA}", MAIN_PUSH, expired=True))
    proc, out = find(api, tmp_path, ARTIFACT_ID="18")
    assert proc.returncode == 1 and "::error::artifact 18" in proc.stdout and "has EXPIRED" in proc.stdout
    proc, out = find(api, tmp_path, ARTIFACT_ID="404")
    assert proc.returncode == 1 and "artifact 404: not found in acme/svc" in proc.stdout and out == {}


@pytest.mark.parametrize(
    "env, said",
    [
        ({"ARTIFACT_ID": "1/../../x"}, "artifact id: a number"),
        ({"ARTIFACT_ID": "16", "TAG": "v1.2.3"}, "an artifact id OR a tag/branch"),
        ({"ARTIFACT_ID": "16", "BRANCH": "main"}, "an artifact id OR a tag/branch"),
        ({"ARTIFACT_NAME": "x&name=y"}, "artifact name:"),
        ({"SHA": "main"}, "SHA is not a commit sha"),
        ({"GH_TOKEN": ""}, "GITHUB_TOKEN is not set"),
    ],
)
def test_find_refuses_bad_input_before_asking_anything(api, tmp_path, env, said):
    proc, out = script(
        "find-artifact.sh",
        tmp_path,
        {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": str(RUN_ID)}
        | {"GH_TOKEN": api.token, "SHA": SHA}
        | env,
    )
    assert proc.returncode == 2 and said in proc.stdout and out == {} and api.requests == []


def test_a_wrong_token_fails_the_lookup(api, tmp_path):
    api.add(MAIN_PUSH, artifact(11, f"release-{SHA}", MAIN_PUSH))
    proc, out = script(
        "find-artifact.sh",
        tmp_path,
        {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": str(RUN_ID)}
        | {"GITHUB_TOKEN": "wrong", "SHA": SHA, "PROMOTE": "true"},
    )
    assert proc.returncode == 1 and "cannot be listed" in proc.stdout and out == {}


# -- resolve-ref.sh --------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> dict:
    """origin: main; tag v1.2.3 (annotated) on one commit, a BRANCH v1.2.3 on another, hotfix/x
    on a third; and a clone of it, as actions/checkout with fetch-depth: 0 leaves it."""
    origin = tmp_path_factory.mktemp("origin")
    git(origin, "init", "-q", "-b", "main")
    shas = {}
    for name in ("tagged", "branch named like the tag", "hotfix"):
        (origin / "f").write_text(name)
        git(origin, "add", "f")
        git(origin, "commit", "-qm", name)
        shas[name] = git(origin, "rev-parse", "HEAD")
    git(origin, "tag", "-a", "-m", "release", "v1.2.3", shas["tagged"])
    git(origin, "branch", "v1.2.3", shas["branch named like the tag"])
    git(origin, "branch", "hotfix/x", shas["hotfix"])
    git(origin, "reset", "-q", "--hard", shas["tagged"])
    clone = tmp_path_factory.mktemp("work") / "repo"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    return {"dir": clone, **shas}


def resolve(tmp_path, checkout, **env) -> tuple:
    env.setdefault("GITHUB_SHA", checkout["tagged"])
    env.setdefault("GITHUB_REF", "refs/heads/main")
    return script("resolve-ref.sh", tmp_path, env, cwd=checkout["dir"])


def test_a_branch_named_like_a_tag_is_not_deployed_the_tags_commit_is(tmp_path, checkout):
    # what actions/checkout would do with the bare name: the branch wins there
    ambiguous = git(checkout["dir"], "rev-parse", "--verify", "refs/remotes/origin/v1.2.3")
    assert ambiguous == checkout["branch named like the tag"] != checkout["tagged"]
    proc, out = resolve(tmp_path, checkout, TAG="v1.2.3", GITHUB_SHA=checkout["hotfix"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out == {"sha": checkout["tagged"], "ref": "refs/tags/v1.2.3"}  # the commit, not the tag object


def test_a_tag_push_deploys_the_commit_the_run_was_started_for(tmp_path, checkout):
    proc, out = resolve(
        tmp_path, checkout, TAG="v1.2.3", GITHUB_REF="refs/tags/v1.2.3", GITHUB_SHA=checkout["tagged"]
    )
    assert proc.returncode == 0 and out == {"sha": checkout["tagged"], "ref": "refs/tags/v1.2.3"}
    proc, out = resolve(tmp_path, checkout, GITHUB_REF="refs/tags/v1.2.3", GITHUB_SHA=checkout["tagged"])
    assert proc.returncode == 0 and out == {"sha": checkout["tagged"], "ref": "refs/tags/v1.2.3"}


def test_a_branch_input_is_origins_branch(tmp_path, checkout):
    proc, out = resolve(tmp_path, checkout, BRANCH="hotfix/x")
    assert proc.returncode == 0 and out == {"sha": checkout["hotfix"], "ref": "refs/heads/hotfix/x"}
    proc, out = resolve(tmp_path, checkout, BRANCH="v1.2.3")  # asked for the branch: the branch
    assert out == {"sha": checkout["branch named like the tag"], "ref": "refs/heads/v1.2.3"}
    proc, out = resolve(tmp_path, checkout, TAG="v1.2.3", BRANCH="hotfix/x")  # a tag wins
    assert out["sha"] == checkout["tagged"] and "the tag wins" in proc.stdout


def test_nothing_given_is_the_runs_commit(tmp_path, checkout):
    proc, out = resolve(tmp_path, checkout, GITHUB_SHA=checkout["hotfix"], GITHUB_REF="refs/heads/main")
    assert proc.returncode == 0 and out == {"sha": checkout["hotfix"], "ref": "refs/heads/main"}


@pytest.mark.parametrize(
    "env",
    [
        {"TAG": "hotfix/x"},  # a branch is no tag
        {"TAG": "v9.9.9"},
        {"BRANCH": "v1.2.3-nope"},
        {"BRANCH": "refs/tags/v1.2.3"},  # a tag is no branch, however it is spelled
    ],
)
def test_a_name_that_is_not_there_is_refused(tmp_path, checkout, env):
    proc, out = resolve(tmp_path, checkout, **env)
    assert proc.returncode == 1 and "not found in this repository" in proc.stdout and out == {}


@pytest.mark.parametrize(
    "env",
    [
        {"TAG": "--upload-pack=touch PWNED"},
        {"TAG": "-x"},
        {"BRANCH": "--upload-pack=touch PWNED"},
        {"BRANCH": "-x"},
        {"TAG": "v1..2"},
        {"TAG": "v1.2.3\n::warning::forged"},
        {"BRANCH": "a b"},
        {"BRANCH": "main@{1}"},
        {"GITHUB_SHA": "--output=x"},
    ],
)
def test_a_hostile_ref_is_refused(tmp_path, checkout, env):
    proc, out = resolve(tmp_path, checkout, **env)
    assert proc.returncode == 2 and "::error::" in proc.stdout and out == {}
    assert "\n::warning::forged" not in proc.stdout  # a refused name is shown escaped
    assert not (checkout["dir"] / "PWNED").exists() and not (tmp_path / "PWNED").exists()


# -- check-artifact.sh -----------------------------------------------------------------

STUB = """#!/bin/sh
# stands in for `deployer --json verify ARTIFACT`: prints $STUB_MANIFEST (or fails)
[ "$1 $2" = "--json verify" ] && [ -f "$3" ] || exit 64
[ -z "$STUB_FAIL" ] || { echo "deployer: error: $3: tampered" >&2; exit 1; }
cat "$STUB_MANIFEST"
"""


def manifest(**changes) -> dict:
    m = {"app": "svc", "version": "1.2.3", "release_id": RELEASE, "git": {"sha": SHA, "tag": "v1.2.3"}}
    m.update(changes)
    return m


def check(tmp_path: Path, m: dict | str, files=("svc-20261126T101500Z-3f2a9c1.tar",), **env) -> tuple:
    dist = tmp_path / "dist"
    dist.mkdir(exist_ok=True)
    for name in files:
        (dist / name).write_bytes(b"tar")
    stub = tmp_path / "deployer-stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    (tmp_path / "manifest.json").write_text(m if isinstance(m, str) else json.dumps(m))
    summary = tmp_path / "step-summary.md"
    env = {"COMMIT": SHA, "DEPLOYER": str(stub), "STUB_MANIFEST": str(tmp_path / "manifest.json")} | env
    proc, out = script(
        "check-artifact.sh", tmp_path, {"GITHUB_STEP_SUMMARY": str(summary), **env}, args=["dist"]
    )
    return proc, out, summary.read_text() if summary.exists() else ""


def test_a_verified_artifact_of_the_commit_is_kept_under_the_commits_name(tmp_path):
    proc, out, summary = check(tmp_path, manifest(), ORIGIN="from run 101")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out == {
        "file": "svc-20261126T101500Z-3f2a9c1.tar",
        "path": "dist/svc-20261126T101500Z-3f2a9c1.tar",
        "release": RELEASE,
        "version": "1.2.3",
        "name": f"release-{SHA}",
    }
    assert f"release `{RELEASE}`" in summary and "from run 101" in summary


def test_an_artifact_whose_manifest_claims_another_commit_is_refused(tmp_path):
    proc, out, _ = check(tmp_path, manifest(git={"sha": OTHER}))
    assert proc.returncode == 1 and "built from another commit" in proc.stdout and out == {}
    assert f'git.sha "{OTHER}"' in proc.stdout
    for claim in ({}, {"sha": None}, {"sha": SHA.upper()}, {"sha": SHA + "\n"}, {"sha": SHA[:7]}):
        proc, out, _ = check(tmp_path, manifest(git=claim))
        assert proc.returncode == 1 and out == {}, claim


@pytest.mark.parametrize(
    "release",
    [
        f"{RELEASE}\nname=release-{OTHER}",  # a second output line
        f"{RELEASE}\n",  # what $(...) would strip
        "../../x",
        RELEASE.upper(),
        "20261126T101500Z-3f2a9c",
        "",
        None,
        20261126,
        [RELEASE],
    ],
    ids=repr,
)
def test_a_malformed_release_id_is_refused_before_it_reaches_the_output(tmp_path, release):
    proc, out, summary = check(tmp_path, manifest(release_id=release), ORIGIN="built here")
    assert proc.returncode == 1 and "release_id is not of the form" in proc.stdout
    assert out == {} and summary == ""


@pytest.mark.parametrize(
    "files, env, said",
    [
        ((), {}, "found 0"),
        (("a.tar", "b.tar"), {}, "found 2"),
        (("svc\nname=x.tar",), {}, "artifact file name"),
        (("svc.tar",), {"STUB_FAIL": "1"}, "deployer verify failed"),
        (("svc.tar",), {"COMMIT": "main"}, "COMMIT is not a commit sha"),
    ],
)
def test_anything_but_one_verified_artifact_is_refused(tmp_path, files, env, said):
    proc, out, _ = check(tmp_path, manifest(), files=files, **env)
    assert proc.returncode in (1, 2) and said in proc.stdout and out == {}


@pytest.mark.parametrize("version", ["1.2.3\nname=x", "", None, "1.2.3 `x`"])
def test_a_version_that_is_no_version_is_refused(tmp_path, version):
    proc, out, _ = check(tmp_path, manifest(version=version))
    assert proc.returncode == 1 and "version is not a version" in proc.stdout and out == {}
