"""`deployer init` on scratch service repositories: a config that loads, the packaging
templates, and caller workflows that pass actionlint and follow this repo's rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.builder.release import default_packaging
from deployer.config import load_config
from tests.unit.ghactions import actionlint, evaluate_group, load
from tests.unit.test_workflows import WORKFLOWS, secret_problems

ROOT = Path(__file__).resolve().parents[2]
USES = "acme/deployer/.github/workflows/deploy-reusable.yml@v1.2.3"


def init(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "init", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def service(tmp_path) -> Path:
    """An existing service repo: src layout, a name with a dash, no deploy files yet."""
    repo = tmp_path / "my-svc"
    (repo / "src" / "my_svc").mkdir(parents=True)
    (repo / "src" / "my_svc" / "__init__.py").write_text("")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "my-svc"\nversion = "1.0"\nrequires-python = ">=3.12"\n'
        'dependencies = ["aiohttp"]\n'
    )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def test_init_writes_a_config_that_loads_packaging_and_workflows(service):
    proc = init(service, "--owner", "acme", "--ref", "v1.2.3")
    wrote = [line.removeprefix("wrote ") for line in proc.stdout.splitlines()]
    assert wrote == [
        "deploy.toml",
        "packaging/launch.sh.in",
        "packaging/unit.service.in",
        "packaging/env.template",
        ".github/workflows/deploy.yml",
        ".github/workflows/deploy-staging.yml",
        ".github/workflows/manual-deploy.yml",
        ".github/workflows/rollback.yml",
    ]
    config = load_config(service / "deploy.toml", environ={})
    assert (config.app.name, config.app.module_name, config.app.source) == ("my-svc", "my_svc", ".")
    assert config.app.user == "my-svc" and config.target.python_version == "3.12"
    assert config.smoke_command() == ["{python}", "-c", "import my_svc"]
    for template in default_packaging().glob("*.in"):
        assert (service / "packaging" / template.name).read_bytes() == template.read_bytes()
    assert "my-svc" in (service / "packaging" / "env.template").read_text()


def test_generated_workflows_pass_actionlint_and_call_the_reusable_workflow(service):
    init(service, "--owner", "acme", "--ref", "v1.2.3")
    files = sorted((service / ".github" / "workflows").glob("*.yml"))
    assert len(files) == 4
    proc = actionlint(*files, cwd=service)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reusable = load(WORKFLOWS / "deploy-reusable.yml")["on"]["workflow_call"]["inputs"]
    for path in files:
        wf = load(path)
        [job] = wf["jobs"].values()
        assert job["uses"] == USES and job["secrets"] == "inherit"
        assert job["with"]["deployer-repository"] == "acme/deployer"
        assert job["with"]["deployer-ref"] == "v1.2.3"
        assert set(job["with"]) <= set(reusable), path.name  # actionlint cannot see a remote one
        assert job["permissions"] == {"contents": "read", "actions": "read"}
        assert wf["permissions"] == {}
        assert secret_problems(path.name, wf) == []


def test_generated_callers_deploy_like_this_repos_own(service):
    """Same triggers and one concurrency group per environment as this repo's callers."""
    init(service, "--owner", "acme", "--ref", "v1.2.3")
    for name in ("manual-deploy.yml", "rollback.yml", "deploy-staging.yml", "deploy.yml"):
        mine, theirs = load(WORKFLOWS / name), load(service / ".github" / "workflows" / name)
        assert mine["on"] == theirs["on"], name
        [generated] = theirs["jobs"].values()
        [own] = [j for j in mine["jobs"].values() if j.get("uses")]
        for env in ("production", "staging"):
            assert evaluate_group(generated["concurrency"]["group"], env) == evaluate_group(
                own["concurrency"]["group"], env
            )
        assert generated["concurrency"]["cancel-in-progress"] is False
        assert generated["with"].get("command", "deploy") == own["with"].get("command", "deploy")


def test_init_refuses_to_overwrite_unless_forced(service):
    init(service, "--owner", "acme")
    (service / "deploy.toml").write_text("# mine\n")
    proc = init(service, "--owner", "acme", check=False)
    assert proc.returncode == 2 and "exists" in proc.stderr and "--force" in proc.stderr
    assert (service / "deploy.toml").read_text() == "# mine\n"
    init(service, "--owner", "acme", "--ref", "v2.0.0", "--force")
    assert "@v2.0.0" in (service / ".github" / "workflows" / "deploy.yml").read_text()
    load_config(service / "deploy.toml", environ={})


def test_init_on_the_example_service_guesses_its_module(tmp_path):
    repo = tmp_path / "example"
    shutil.copytree(
        ROOT / "examples" / "tg_video_streamer", repo, ignore=shutil.ignore_patterns("__pycache__")
    )
    init(repo, "--owner", "acme")
    config = load_config(repo / "deploy.toml", environ={})
    assert config.app.module_name == "tg_video_streamer"
    assert config.target.python_version == "3.11"


@pytest.mark.parametrize(
    "args, said",
    [
        (["--owner", "acme"], "pyproject.toml: not found"),
        (["--owner", "-bad-"], "--owner"),
        (["--owner", "acme", "--ref", "../x"], "--ref"),
    ],
)
def test_init_says_what_is_wrong(tmp_path, args, said):
    if said != "pyproject.toml: not found":
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "x-svc"\n')
    proc = init(tmp_path, *args, check=False)
    assert proc.returncode == 2 and said in proc.stderr
    assert not (tmp_path / "deploy.toml").exists()
