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
from tests.conftest import git
from tests.unit.ghactions import actionlint, evaluate_group, load
from tests.unit.test_workflows import WORKFLOWS, secret_problems

ROOT = Path(__file__).resolve().parents[2]
REUSABLE = "acme/deployer/.github/workflows/deploy-reusable.yml"
# `deployer init` with its own checkout swapped for a scratch one (deployer.scaffold.DEPLOYER_ROOT)
BOOT = (
    "import pathlib, sys; import deployer.scaffold as s; s.DEPLOYER_ROOT = pathlib.Path(sys.argv.pop(1)); "
    "from deployer.cli import main; sys.argv[0] = 'deployer'; main()"
)


@pytest.fixture(scope="module")
def deployer_checkout(tmp_path_factory) -> dict:
    """A scratch deployer repository: v1.2.3, then v2.0.0 (annotated) on main, and a branch
    named v1.2.3 on a commit of its own; the shas each name."""
    repo = tmp_path_factory.mktemp("deployer")
    git(repo, "init", "-q", "-b", "main")
    shas = {}
    for n, tag in enumerate(("v1.2.3", "v2.0.0")):
        (repo / "f").write_text(str(n))
        git(repo, "add", "f")
        git(repo, "commit", "-qm", tag)
        shas[tag] = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1.2.3", shas["v1.2.3"])
    git(repo, "tag", "-a", "-m", "two", "v2.0.0", shas["v2.0.0"])
    git(repo, "checkout", "-q", "-b", "v1.2.3")  # a branch named like the tag
    (repo / "f").write_text("branch")
    git(repo, "commit", "-qam", "a branch named like a tag")
    shas["branch v1.2.3"] = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    shas["main"] = shas["v2.0.0"]
    return {"root": repo, **shas}


@pytest.fixture
def init(deployer_checkout):
    def run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-c", BOOT, str(deployer_checkout["root"]), "init", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


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


def test_init_writes_a_config_that_loads_packaging_and_workflows(init, service):
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


def test_generated_workflows_pass_actionlint_and_call_the_reusable_workflow(init, service, deployer_checkout):
    sha = deployer_checkout["v1.2.3"]
    init(service, "--owner", "acme", "--ref", "v1.2.3")
    files = sorted((service / ".github" / "workflows").glob("*.yml"))
    assert len(files) == 4
    proc = actionlint(*files, cwd=service)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reusable = load(WORKFLOWS / "deploy-reusable.yml")["on"]["workflow_call"]["inputs"]
    for path in files:
        wf = load(path)
        [job] = wf["jobs"].values()
        assert job["uses"] == f"{REUSABLE}@{sha}" and job["secrets"] == "inherit"
        assert f"uses: {REUSABLE}@{sha}  # v1.2.3\n" in path.read_text()
        assert job["with"]["deployer-repository"] == "acme/deployer"
        assert job["with"]["deployer-ref"] == sha
        assert set(job["with"]) <= set(reusable), path.name  # actionlint cannot see a remote one
        assert job["permissions"] == {"contents": "read", "actions": "read"}
        assert wf["permissions"] == {}
        assert secret_problems(path.name, wf) == []


def test_generated_callers_deploy_like_this_repos_own(init, service):
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


def test_init_refuses_to_overwrite_unless_forced(init, service, deployer_checkout):
    init(service, "--owner", "acme")
    (service / "deploy.toml").write_text("# mine\n")
    proc = init(service, "--owner", "acme", check=False)
    assert proc.returncode == 2 and "exists" in proc.stderr and "--force" in proc.stderr
    assert (service / "deploy.toml").read_text() == "# mine\n"
    init(service, "--owner", "acme", "--ref", "v2.0.0", "--force")
    assert (
        f"@{deployer_checkout['v2.0.0']}  # v2.0.0"
        in (service / ".github" / "workflows" / "deploy.yml").read_text()
    )
    load_config(service / "deploy.toml", environ={})


def test_init_on_the_example_service_guesses_its_module(init, tmp_path):
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
        (["--owner", "acme", "--ref", "v9.9.9"], "--ref v9.9.9: no such tag, branch or commit"),
        (["--owner", "acme", "--ref", "0" * 40], "no such tag, branch or commit"),
        (["--owner", "acme", "--ref=--upload-pack=x"], "it would be read as an option"),
        (["--owner", "acme", "--ref=-x"], "it would be read as an option"),
    ],
)
def test_init_says_what_is_wrong(init, tmp_path, args, said):
    if said != "pyproject.toml: not found":
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "x-svc"\n')
    proc = init(tmp_path, *args, check=False)
    assert proc.returncode == 2 and said in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "deploy.toml").exists() and not (tmp_path / ".github").exists()


@pytest.mark.parametrize(
    "ref, named",
    [("v1.2.3", "v1.2.3"), ("v2.0.0", "v2.0.0"), ("main", "main"), (None, "main")],
)
def test_callers_pin_deployer_by_the_commit_the_ref_names(init, service, deployer_checkout, ref, named):
    """A tag (annotated too: its commit, not the tag object), a branch, the default `main`:
    `uses:` and `deployer-ref` carry the 40-hex commit, the name stays as a comment. The
    tag wins over a branch named like it."""
    init(service, "--owner", "acme", *(["--ref", ref] if ref else []))
    sha = deployer_checkout[named]
    for name in ("deploy.yml", "deploy-staging.yml", "manual-deploy.yml", "rollback.yml"):
        path = service / ".github" / "workflows" / name
        [job] = load(path)["jobs"].values()
        assert job["uses"] == f"{REUSABLE}@{sha}" and job["with"]["deployer-ref"] == sha
        assert f"    uses: {REUSABLE}@{sha}  # {ref or 'main'}\n" in path.read_text()
        assert "@main" not in path.read_text() and "@v" not in path.read_text()
