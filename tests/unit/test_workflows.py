"""The GitHub Actions workflows: linted by actionlint, thin, safe with secrets.

What they run is what the tests run: every deploying workflow reaches `deployer deploy`
/ `deployer rollback` and `deployer status` through the reusable workflow, with options
the CLI has and sub-commands the end-to-end tests exercise on real staging guests.
"""

from __future__ import annotations

import re
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
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
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
                assert job.get("uses") == REUSABLE or job_id == "artifact", f"{name}:{job_id}"
    reusable = wf("deploy-reusable.yml")["jobs"]
    assert reusable["deploy"]["permissions"] == {"contents": "read"}
    assert reusable["artifact"]["permissions"] == {"contents": "read", "actions": "read"}


SECRET_REF = re.compile(r"\$\{\{[^}]*\bsecrets\.")


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
        held = [k for k, v in (step.get("env") or {}).items() if SECRET_REF.search(str(v))]
        if held and not (job_id == "deploy" and name == "deploy-reusable.yml"):
            problems.append(f"{name}:{job_id}: secrets only in the deploy job")
        for line in script.splitlines():
            for var in held:
                if f"${var}" not in line and f"${{{var}}}" not in line:
                    continue
                # allowed: a test, writing a file, masking; deployer reads its own env
                if not (
                    re.search(r"\[ -n \"\$" + var, line)
                    or re.search(r"^printf '%s\\n' \"\$" + var + r'" > "\$dir/\w+"$', line.strip())
                    or re.match(r"mask_(lines|values) <<< \"\$" + var + '"$', line.strip())
                ):
                    problems.append(f"{name}: {line.strip()!r} may print {var}")
    for job_id, job in w["jobs"].items():
        if job.get("uses"):
            if job.get("secrets") not in (None, "inherit"):
                problems.append(f"{name}:{job_id}: secrets passed one by one")
        elif (name != "deploy-reusable.yml" or job_id != "deploy") and SECRET_REF.search(str(job)):
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
        ('mask_values <<< "$DOTENV"', 'mask_values <<< "${{ secrets.DEPLOY_DOTENV }}"'),
        ('mask_lines <<< "$SSH_KEY"', 'cat <<< "$SSH_KEY"'),
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
    for masked, written in (
        ('mask_lines <<< "$SSH_KEY"', '"$SSH_KEY" > '),
        ('mask_values <<< "$DOTENV"', '"$DOTENV" > '),
        ('mask_values <<< "$NOTIFY_URLS"', '"$NOTIFY_URLS" > '),
    ):
        assert script.index(masked) < script.index(written)
    assert "::add-mask::" in script
    assert names.index("Write the credentials") < names.index("Deploy")
    last = deploy["steps"][-1]
    assert last["if"] == "always()" and "rm -rf" in last["run"] and "deployer-credentials" in last["run"]


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
    reusable = (WORKFLOWS / "deploy-reusable.yml").read_text()
    assert "has EXPIRED" in reusable and "::error::" in reusable


def test_ci_runs_lint_unit_host_and_the_e2e_suite_as_root():
    ci = wf("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    targets = make_targets(ci)
    assert {"lint", "test-fast", "test"} <= targets
    runs = [line for _, _, line in run_lines(ci)]
    assert any(line.startswith("sudo ") and line.endswith("make test") for line in runs)
