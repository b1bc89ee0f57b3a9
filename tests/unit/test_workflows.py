"""The GitHub Actions workflows: linted by actionlint, thin, safe with secrets.

What they run is what the tests run: every deploying workflow reaches `deployer deploy`
/ `deployer rollback` and `deployer status` through the reusable workflow, with options
the CLI has and sub-commands the end-to-end tests exercise on real staging guests.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest

from deployer.cli import cli
from tests.unit.ghactions import (
    SHA_PIN,
    actionlint,
    deployer_commands,
    evaluate_group,
    load,
    make_targets,
    run_lines,
    steps,
    tool,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = ROOT / ".github" / "scripts"
REUSABLE = "./.github/workflows/deploy-reusable.yml"
DEPLOYING = {
    "deploy.yml": "deploy",
    "deploy-staging.yml": "deploy",
    "manual-deploy.yml": "deploy",
    "rollback.yml": "rollback",
}
ALL = sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def wf(name: str) -> dict:
    return load(WORKFLOWS / name)


def test_every_workflow_is_there():
    assert set(ALL) == {"ci.yml", "deploy-reusable.yml", *DEPLOYING}


def test_actionlint_passes_on_every_workflow():
    proc = actionlint(*sorted(WORKFLOWS.glob("*.yml")), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_mistake(tmp_path):
    """The linter really runs (shellcheck included): a broken copy fails."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    broken = tmp_path / ".github" / "workflows" / "deploy.yml"
    broken.write_text((WORKFLOWS / "ci.yml").read_text().replace("run: make lint", "run: cat $UNQUOTED"))
    proc = actionlint(broken, cwd=tmp_path)
    assert proc.returncode != 0 and "SC2086" in proc.stdout


@pytest.mark.parametrize("name", sorted(DEPLOYING))
def test_each_deploying_workflow_goes_through_the_reusable_one(name):
    callers = [job for job in wf(name)["jobs"].values() if job.get("uses")]
    assert [job["uses"] for job in callers] == [REUSABLE]
    [job] = callers
    assert job.get("secrets") == "inherit"  # the environment's secrets reach the deploy job
    assert (job["with"].get("command") or "deploy") == DEPLOYING[name]


def _e2e_exercised() -> tuple[set, set]:
    """Sub-commands and options the end-to-end tests run on staging guests."""
    text = "".join(p.read_text() for p in (ROOT / "tests" / "e2e").glob("test_*.py"))
    calls = re.findall(r"\b(?:deployer_cli|both|cli)\(([^)]*)\)", text)
    commands = {m.group(1) for c in calls if (m := re.match(r'\s*"([a-z-]+)"', c))}
    options = set(re.findall(r'"(--[a-z-]+)"', " ".join(calls)))
    return commands, options


@pytest.mark.parametrize("name", sorted(DEPLOYING))
def test_deploy_and_rollback_steps_run_commands_the_e2e_tests_exercise(name):
    reusable = wf("deploy-reusable.yml")
    used = deployer_commands(reusable) | deployer_commands(wf(name))
    action = DEPLOYING[name]
    assert {action, "status"} <= used
    commands, options = _e2e_exercised()
    assert {"deploy", "rollback", "status"} <= commands, commands
    assert "--dry-run" in options


def test_workflows_use_only_real_cli_options_and_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    for name in ALL:
        w = wf(name)
        for target in make_targets(w):
            assert re.search(rf"^{target}:", makefile, re.M), f"{name}: make {target}"
        for _, _, line in run_lines(w):
            for m in re.finditer(r"(?<![\w./-])deployer\b(.*)", line):
                words = m.group(1).split()
                sub = next((x for x in words if not x.startswith("-")), None)
                if sub not in cli.commands:
                    continue
                cmd: click.Command = cli.commands[sub]
                known = {o for p in cmd.params + cli.params for o in getattr(p, "opts", [])}
                for opt in (x for x in words if x.startswith("--")):
                    assert opt in known, f"{name}: deployer {sub} has no {opt}"
    reusable = " ".join(str(s.get("run")) for _, s in steps(wf("deploy-reusable.yml")))
    assert "--dry-run" in reusable and "--to" in reusable and "--log-dir" in reusable


def test_make_release_builds_and_verifies_one_artifact():
    """The deploy workflows build with `make release`: deployer build + deployer verify."""
    assert "release" in make_targets(wf("deploy.yml")) and "release" in make_targets(wf("deploy-staging.yml"))
    recipe = re.search(r"^release:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert "deployer build" in recipe.group(1) and "deployer verify" in recipe.group(1)


def _deploy_groups(name: str) -> list[dict]:
    return [job["concurrency"] for job in wf(name)["jobs"].values() if job.get("uses")]


def test_deploy_manual_and_rollback_share_one_concurrency_group_per_environment():
    for environment in ("production", "staging"):
        groups = set()
        for name in ("manual-deploy.yml", "rollback.yml"):
            [c] = _deploy_groups(name)
            assert c["cancel-in-progress"] is False  # never kill a deploy half-way
            groups.add(evaluate_group(c["group"], environment))
        assert groups == {f"deploy-{environment}"}
    [prod] = _deploy_groups("deploy.yml")
    [staging] = _deploy_groups("deploy-staging.yml")
    assert prod == {"group": "deploy-production", "cancel-in-progress": False}
    assert staging == {"group": "deploy-staging", "cancel-in-progress": False}
    for name in DEPLOYING:  # at the job, not the workflow: a workflow-level one would also queue tests
        assert "concurrency" not in wf(name)


def test_third_party_actions_are_pinned_by_commit_sha():
    for name in ALL:
        for _, step in steps(wf(name)):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert SHA_PIN.match(uses), f"{name}: {uses} is not pinned to a full commit SHA"


def test_permissions_are_minimal():
    for name in ALL:
        w = wf(name)
        assert w.get("permissions") in ({}, {"contents": "read"}), name
        for job_id, job in w["jobs"].items():
            perms = job.get("permissions", w.get("permissions"))
            assert perms is not None and "write" not in str(perms), f"{name}:{job_id}"
            if perms.get("actions") == "read":  # only where earlier runs' artifacts are read
                assert job.get("uses") == REUSABLE or job_id in ("resolve", "artifact"), f"{name}:{job_id}"
    reusable = wf("deploy-reusable.yml")["jobs"]
    assert reusable["deploy"]["permissions"] == {"contents": "read"}
    assert reusable["resolve"]["permissions"] == {"contents": "read", "actions": "read"}
    assert reusable["artifact"]["permissions"] == {"contents": "read", "actions": "read"}


SECRET_REF = re.compile(r"\$\{\{[^}]*\bsecrets\.")
#: the one secret outside the deploy job: the signing key, in the jobs that build
SIGNING_SECRET = "${{ secrets.DEPLOY_SIGNING_KEY }}"
SIGNING_JOBS = {
    ("deploy-reusable.yml", "artifact"),
    ("deploy.yml", "release"),
    ("deploy-staging.yml", "release"),
}


def secret_problems(name: str, w: dict) -> list[str]:
    """Ways a workflow could print a secret or hand it to the wrong job."""
    problems = []
    for job_id, step in steps(w):
        script = str(step.get("run") or "")
        if SECRET_REF.search(script):
            problems.append(f"{name}: secrets inside run: (use env:)")
        if re.search(r"\bset\s+-\w*x|\bset\s+-o\s+xtrace|\bbash\s+-\w*x", script):
            problems.append(f"{name}: xtrace prints every expanded line")
        if "toJSON(secrets)" in str(step):
            problems.append(f"{name}: toJSON(secrets)")
        env = step.get("env") or {}
        held = [k for k, v in env.items() if SECRET_REF.search(str(v))]
        signing = (name, job_id) in SIGNING_JOBS and all(env[k] == SIGNING_SECRET for k in held)
        if held and not (job_id == "deploy" and name == "deploy-reusable.yml") and not signing:
            problems.append(
                f"{name}:{job_id}: secrets only in the deploy job (and the signing key where it builds)"
            )
        for line in script.splitlines():
            for var in held:
                if f"${var}" not in line and f"${{{var}}}" not in line:
                    continue
                # allowed: a test, writing a file, masking; deployer reads its own env
                if not (
                    re.search(r"\[ -n \"\$" + var, line)
                    or re.search(r"^printf '%s\\n' \"\$" + var + r'" > "\$dir/\w+"$', line.strip())
                    or re.match(r"mask_(lines|values|hosts) <<< \"\$" + var + '"$', line.strip())
                ):
                    problems.append(f"{name}: {line.strip()!r} may print {var}")
    for job_id, job in w["jobs"].items():
        if job.get("uses"):
            if job.get("secrets") not in (None, "inherit"):
                problems.append(f"{name}:{job_id}: secrets passed one by one")
        elif (name != "deploy-reusable.yml" or job_id != "deploy") and SECRET_REF.search(
            str(job).replace(SIGNING_SECRET, "") if (name, job_id) in SIGNING_JOBS else str(job)
        ):
            problems.append(f"{name}:{job_id} touches secrets")
    return problems


def test_no_step_prints_a_secret():
    for name in ALL:
        assert secret_problems(name, wf(name)) == []


@pytest.mark.parametrize(
    "edit",
    [
        ('printf \'%s\\n\' "$SSH_KEY" > "$dir/ssh_key"', 'echo "$SSH_KEY"'),
        ("umask 077", "set -x; umask 077"),
        ("--env DOTENV", '--env DOTENV; echo "${{ secrets.DEPLOY_DOTENV }}"'),
        (
            "deployer github-masks --value SSH_KEY",
            'cat <<< "$SSH_KEY"; deployer github-masks --value SSH_KEY',
        ),
        ('printf \'%s\\n\' "$SIGNING_KEY" > "$dir/signing_key"', 'echo "$SIGNING_KEY" > "$dir/signing_key"'),
        ("SIGNING_KEY: ${{ secrets.DEPLOY_SIGNING_KEY }}", "SIGNING_KEY: ${{ secrets.DEPLOY_SSH_KEY }}"),
    ],
)
def test_the_secret_check_catches_a_leak(edit):
    text = (WORKFLOWS / "deploy-reusable.yml").read_text()
    assert edit[0] in text
    import yaml

    leaky = yaml.safe_load(text.replace(edit[0], edit[1]))
    leaky["on"] = leaky.pop(True)
    assert secret_problems("deploy-reusable.yml", leaky)


def test_secrets_are_masked_before_they_are_written_and_removed_after():
    deploy = wf("deploy-reusable.yml")["jobs"]["deploy"]
    names = [s.get("name") or s.get("uses") for s in deploy["steps"]]
    [creds] = [s for s in deploy["steps"] if s.get("id") == "credentials"]
    script = creds["run"]
    assert script.index("umask 077") < script.index('> "$dir/ssh_key"')
    # every secret announced by deployer's own masking rule before any is written
    masks = script.index(
        "deployer github-masks --value SSH_KEY --env DOTENV --env NOTIFY_URLS --hosts SECRET_HOSTS"
    )
    for written in ('"$SSH_KEY" > ', '"$DOTENV" > ', '"$NOTIFY_URLS" > '):
        assert masks < script.index(written)
    # a secret DEPLOY_HOSTS (not the variable) makes deployer mask each address in its files too
    assert creds["env"]["SECRET_HOSTS"] == "${{ secrets.DEPLOY_HOSTS }}"
    assert re.search(
        r'if \[ -n "\$SECRET_HOSTS" \]; then\n\s*echo "DEPLOYER_HOSTS_SECRET=1" >> "\$GITHUB_ENV"',
        script,
    )
    assert names.index("Write the credentials") < names.index("Deploy")
    last = deploy["steps"][-1]
    assert last["if"] == "always()" and "rm -rf" in last["run"] and "deployer-credentials" in last["run"]


def test_the_signing_key_is_masked_written_077_and_gone_when_the_build_step_ends():
    """DEPLOY_SIGNING_KEY, a secret of its own, reaches only the step that builds (and signs)
    in the artifact job and in the release jobs of deploy.yml and deploy-staging.yml: masked
    first, written under $RUNNER_TEMP with umask 077, removed when the step ends; never the
    deploy job's."""
    declared = wf("deploy-reusable.yml")["on"]["workflow_call"]["secrets"]
    assert declared["DEPLOY_SIGNING_KEY"]["required"] is False
    for name, job_id in sorted(SIGNING_JOBS):
        job = wf(name)["jobs"][job_id]
        [step] = [s for s in job["steps"] if SIGNING_SECRET in str(s)]
        assert step["env"]["SIGNING_KEY"] == SIGNING_SECRET
        script = step["run"]
        masks = script.index("github-masks --value SIGNING_KEY")
        written = script.index('printf \'%s\\n\' "$SIGNING_KEY" > "$dir/signing_key"')
        assert masks < script.index("umask 077") < written < script.index("umask 022")
        assert 'dir="$RUNNER_TEMP/deployer-signing"' in script
        assert script.index("trap 'rm -rf \"$dir\"' EXIT") < written
        assert re.search(r'--sign "\$dir/signing_key"|SIGN=\$dir/signing_key', script)
        assert script.index('if [ -n "$SIGNING_KEY" ]') < masks  # no key: built unsigned, as before
    assert "DEPLOY_SIGNING_KEY" not in str(wf("deploy-reusable.yml")["jobs"]["deploy"])
    for name in ALL:
        for job_id, job in wf(name)["jobs"].items():
            if (name, job_id) not in SIGNING_JOBS:
                assert "DEPLOY_SIGNING_KEY" not in str(job), f"{name}:{job_id}"


def test_logs_and_artifacts_are_kept_thirty_days_by_default():
    inputs = wf("deploy-reusable.yml")["on"]["workflow_call"]["inputs"]
    assert inputs["retention-days"]["default"] == 30
    uploads = [
        (n, s)
        for n in ALL
        for _, s in steps(wf(n))
        if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert uploads
    for name, s in uploads:
        days = str(s["with"]["retention-days"])
        assert "inputs.retention-days" in days or "'30'" in days, name
    [bundle] = [s for n, s in uploads if "deploy-logs" in str(s["with"]["path"])]
    assert bundle["if"] == "always()"


def test_an_expired_artifact_is_said_clearly():
    """tests/unit/test_ci_scripts.py runs it: ...is_said_clearly, ...is_built_again."""
    find = (SCRIPTS / "find-artifact.sh").read_text()
    assert "has EXPIRED" in find and "::error::" in find


def test_ci_runs_lint_unit_host_and_the_e2e_suite_as_root():
    ci = wf("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    targets = make_targets(ci)
    assert {"lint", "test-fast", "test"} <= targets
    runs = [line for _, _, line in run_lines(ci)]
    assert any(line.startswith("sudo ") and line.endswith("make test") for line in runs)


# -- who runs what: the ref deployed is untrusted, the deploy job runs only trusted code ------

CHECKOUT = "actions/checkout@"
# a checkout's ref is a sha resolved once: resolve-ref.sh's (sha), or the pinned deployer's
RESOLVED = re.compile(r"^\$\{\{ (steps|needs)\.[\w-]+\.outputs\.(sha|deployer-sha) \}\}$")


def checkouts(w: dict):
    for job_id, step in steps(w):
        if str(step.get("uses", "")).startswith(CHECKOUT):
            yield job_id, step


def test_every_checkout_ref_is_a_resolved_sha():
    """Never a name (a branch `v1.2.3` would win over the tag): a sha, resolved once."""
    seen = 0
    for name in ALL:
        for job_id, step in checkouts(wf(name)):
            ref = (step.get("with") or {}).get("ref")
            if ref is not None:
                seen += 1
                assert RESOLVED.match(str(ref)), f"{name}:{job_id}: checkout ref {ref!r}"
    assert seen >= 4
    jobs = wf("deploy-reusable.yml")["jobs"]
    resolve = jobs["resolve"]
    by_id = {s.get("id"): s for s in resolve["steps"] if s.get("id")}
    assert resolve["outputs"]["sha"] == "${{ steps.ref.outputs.sha }}"
    assert "resolve-ref.sh" in by_id["ref"]["run"]
    assert by_id["ref"]["env"] == {"TAG": "${{ inputs.tag }}", "BRANCH": "${{ inputs.branch }}"}
    assert resolve["outputs"]["deployer-sha"] == "${{ steps.deployer.outputs.sha }}"
    assert "^[0-9a-f]{40}$" in by_id["deployer"]["run"]  # a pinned deployer-ref is a commit sha
    [built] = [
        s for s in jobs["artifact"]["steps"] if "ref" in (s.get("with") or {}) and "path" not in s["with"]
    ]
    assert built["with"]["ref"] == "${{ needs.resolve.outputs.sha }}"
    inputs = wf("deploy-reusable.yml")["on"]["workflow_call"]["inputs"]
    assert "ref" not in inputs and {"tag", "branch"} <= set(inputs)


def test_no_workflow_hands_a_bare_ref_name_to_checkout_or_the_reusable_workflow():
    for name in ALL:
        for job_id, job in wf(name)["jobs"].items():
            given = job.get("with") or {}
            assert "ref" not in given, f"{name}:{job_id}"
            for key in ("tag", "branch"):
                assert "github.ref_name" not in str(given.get(key, "")), f"{name}:{job_id}"
    assert wf("manual-deploy.yml")["jobs"]["deploy"]["with"]["tag"] == "${{ inputs.tag }}"
    [prod] = [j["with"] for j in wf("deploy.yml")["jobs"].values() if j.get("uses")]
    assert prod["promote"] == "${{ github.ref_type == 'tag' }}"
    assert "tag" not in prod  # a tag push: github.sha is the tag's commit


def test_the_deploy_job_runs_only_the_trusted_deployer():
    """The job holding the secrets never checks out the ref deployed (only this run's own
    revision, or the pinned deployer), never runs `make`, installs by hash only."""
    deploy = wf("deploy-reusable.yml")["jobs"]["deploy"]
    text = str(deploy)
    for untrusted in ("inputs.tag", "inputs.branch", "inputs.ref", "needs.resolve.outputs.sha }}"):
        assert untrusted not in text, untrusted
    root, *others = [s for s in deploy["steps"] if str(s.get("uses", "")).startswith(CHECKOUT)]
    assert "ref" not in root["with"] and "repository" not in root["with"]  # the run's own revision
    for other in others:
        assert other["with"]["ref"] == "${{ needs.resolve.outputs.deployer-sha }}"
        assert other["with"]["path"] == ".deployer" and other["if"] == "inputs.deployer-repository != ''"
    for step in deploy["steps"]:
        uses = str(step.get("uses", ""))
        assert not uses or uses.split("@")[0] in {
            "actions/checkout",
            "actions/setup-python",
            "actions/download-artifact",
            "actions/upload-artifact",
        }, uses
    lines = [line for s in deploy["steps"] for line in str(s.get("run") or "").splitlines()]
    assert not any(re.search(r"(^|[\s;&|(])make\b", line) for line in lines), "make in the deploy job"
    assert not any("pip install -e" in line or "uv sync" in line for line in lines)
    [install] = [s for s in deploy["steps"] if "hash-locked" in str(s.get("name"))]
    pips = [line.strip() for line in install["run"].splitlines() if "pip install" in line]
    assert pips == [
        'python -m pip install --require-hashes -r "$DEPLOYER_DIR/requirements/runtime.lock"',
        'python -m pip install --require-hashes -r "$DEPLOYER_DIR/requirements/build.lock"',
        'python -m pip install --no-deps --no-build-isolation "$DEPLOYER_DIR"',
    ]
    assert deploy["env"]["DEPLOYER_DIR"] == "${{ inputs.deployer-repository != '' && '.deployer' || '.' }}"
    for lock in ("runtime.lock", "build.lock"):
        assert (ROOT / "requirements" / lock).is_file()


def test_an_artifact_is_checked_before_it_is_kept_and_again_before_it_is_deployed():
    """check-artifact.sh (tests/unit/test_ci_scripts.py) against the commit resolved: in the
    artifact job with the trusted revision's copy (whatever ref is built), before keeping it
    under release-<commit>; in the deploy job again, before any credential is written."""
    jobs = wf("deploy-reusable.yml")["jobs"]
    for job_id, before in (("artifact", "keep"), ("deploy", "credentials")):
        job_steps = jobs[job_id]["steps"]
        names = [s.get("id") or s.get("name") for s in job_steps]
        [check] = [s for s in job_steps if s.get("id") == "check"]
        assert "check-artifact.sh" in check["run"], job_id
        assert check["env"]["COMMIT"] == "${{ needs.resolve.outputs.commit }}", job_id
        assert names.index("check") < names.index(before), job_id
    assert jobs["artifact"]["env"]["SCRIPTS"].startswith(".deployer/")
    [keep] = [s for s in jobs["artifact"]["steps"] if s.get("id") == "keep"]
    assert keep["with"]["name"] == "${{ steps.check.outputs.name }}"  # release-<commit deployed>
    deploy = jobs["deploy"]["steps"]
    names = [s.get("id") or s.get("name") for s in deploy]
    assert names.index("credentials") < names.index("Deploy")
    [run_deploy] = [s for s in deploy if s.get("name") == "Deploy"]
    assert run_deploy["env"]["ARTIFACT"] == "${{ steps.check.outputs.path }}"
    find = next(s for s in jobs["resolve"]["steps"] if s.get("id") == "find")
    assert "find-artifact.sh" in find["run"] and find["env"]["SHA"] == "${{ steps.ref.outputs.sha }}"


def test_every_script_the_workflows_run_is_strict_bash_and_shellcheck_clean():
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert {p.name for p in scripts} == {"resolve-ref.sh", "find-artifact.sh", "check-artifact.sh"}
    used = " ".join(str(s.get("run")) for n in ALL for _, s in steps(wf(n)))
    for path in scripts:
        text = path.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), path.name
        assert "\nset -euo pipefail\n" in text and "set -x" not in text, path.name
        assert path.stat().st_mode & 0o111, f"{path.name} is not executable"
        assert path.name in used, f"{path.name} is run by no workflow"
    proc = subprocess.run(
        [tool("shellcheck"), "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in re.findall(r"/\.github/scripts/([\w.-]+)", used) + re.findall(r"\$SCRIPTS/([\w.-]+)", used):
        assert (SCRIPTS / name).is_file(), name
