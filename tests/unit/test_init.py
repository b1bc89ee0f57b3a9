"""`deployer init` on scratch service repositories: a config that loads, the packaging
templates, and caller workflows that pass actionlint and follow this repo's rules."""

from __future__ import annotations

import json
import re
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
    wrote = [line.removeprefix("wrote ") for line in proc.stdout.splitlines() if line.startswith("wrote ")]
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
    # the bot speaks sd_notify and reports its installed version; its port has no default
    assert config.service.type == "notify" and config.health.expect_version is True
    assert config.health.http_url is None
    assert config.env.public == ["HTTP_HOST", "HTTP_PORT", "LOG_LEVEL", "STATE_DIR"]
    assert config.smoke_command() == ["{python}", "-m", "tg_video_streamer", "--selfcheck"]


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


# -- what init guesses from the service's code ----------------------------------------


def project(tmp_path: Path, files: dict[str, str], version: str = "1.0.0") -> Path:
    """A service repo: pyproject.toml (name "svc") and ``files`` (path -> text)."""
    repo = tmp_path / "svc"
    (repo / "svc").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(f'[project]\nname = "svc"\nversion = "{version}"\n')
    (repo / "svc" / "__init__.py").write_text("")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    return repo


def guessed(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """key -> the rest of its line, from init's 'guessed ...' lines."""
    lines = [
        line.removeprefix("guessed ") for line in proc.stdout.splitlines() if line.startswith("guessed ")
    ]
    found = {}
    for line in lines:
        key = re.match(r"(?:no )?(\[\w+\] \w+)", line).group(1)
        assert key not in found, f"{key} guessed twice"
        found[key] = line
    return found


@pytest.mark.parametrize(
    "code, kind",
    [
        ("from .notify import sd_notify\nsd_notify('READY=1')\n", "notify"),
        ("import os, socket\nADDR = os.environ.get('NOTIFY_SOCKET')\n", "notify"),
        ("from systemd.daemon import notify\nnotify('READY=1')\n", "notify"),
        ("import systemd.daemon\nsystemd.daemon.notify('READY=1')\n", "notify"),
        ("import sdnotify\nsdnotify.SystemdNotifier().notify('READY=1')\n", "notify"),
        ("print('serving')\n", "exec"),
        # words in a comment or a docstring are no code that speaks sd_notify
        ('"""This service does not use sd_notify or NOTIFY_SOCKET."""\n# no sdnotify here\n', "exec"),
    ],
    ids=[
        "sd_notify",
        "NOTIFY_SOCKET",
        "systemd.daemon",
        "systemd.daemon.notify",
        "sdnotify",
        "plain",
        "prose",
    ],
)
def test_service_type_is_notify_only_when_the_code_speaks_sd_notify(init, tmp_path, code, kind):
    repo = project(tmp_path, {"svc/main.py": code})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).service.type == kind
    line = guessed(proc)["[service] type"]
    assert line.startswith(f'[service] type = "{kind}": ')
    if kind == "notify":
        assert "svc/main.py" in line, "names the file that speaks it"
    else:
        assert "no sd_notify, NOTIFY_SOCKET, systemd.daemon.notify or sdnotify" in line


@pytest.mark.parametrize(
    "code, socket",
    [
        (
            "import os, socket\nif os.environ.get('LISTEN_FDS') == '1':\n    s = socket.socket(fileno=3)\n",
            True,
        ),
        ("from systemd.daemon import listen_fds\nfds = listen_fds()\n", True),
        ("import socket\ns = socket.create_server(('127.0.0.1', 8000))\n", False),
        ('"""It could take its socket from LISTEN_FDS one day."""\n', False),  # prose is no code
    ],
    ids=["LISTEN_FDS", "systemd.daemon.listen_fds", "binds itself", "prose"],
)
def test_socket_activation_only_when_the_code_takes_its_socket_from_systemd(init, tmp_path, code, socket):
    port = "import os\nPORT = int(os.environ.get('PORT', '8000'))\n"
    repo = project(tmp_path, {"svc/main.py": code, "svc/settings.py": port})
    proc = init(repo, "--owner", "acme")
    line = guessed(proc)["[service] socket"]
    config = load_config(repo / "deploy.toml", environ={})
    if socket:
        assert config.service.socket == "127.0.0.1:8000"
        assert line.startswith('[service] socket = "127.0.0.1:8000": svc/main.py takes its listening socket')
        assert "svc/settings.py reads PORT (default 8000)" in line
    else:
        assert config.service.socket is None
        assert '# socket = "127.0.0.1:8000"' in (repo / "deploy.toml").read_text(), "offered, commented out"
        assert line.startswith("no [service] socket: nothing in its code takes a socket from systemd")


def test_expect_version_only_when_the_service_reports_the_version_deployer_builds(init, tmp_path):
    reads = "from importlib.metadata import version\n__version__ = version('svc')\n"
    repo = project(tmp_path / "a", {"svc/__init__.py": reads})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).health.expect_version is True
    assert "importlib.metadata.version in svc/__init__.py" in guessed(proc)["[health] expect_version"]

    repo = project(tmp_path / "b", {"svc/__init__.py": '__version__ = "1.0.0"\n'})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).health.expect_version is False
    assert guessed(proc)["[health] expect_version"] == (
        "[health] expect_version = false: it reports its own __version__ '1.0.0', "
        "deployer stamps dev builds 1.0.0.dev<epoch>+g<sha>"
    )

    repo = project(tmp_path / "c", {})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).health.expect_version is False
    assert "never reads its installed version" in guessed(proc)["[health] expect_version"]

    # it knows its installed version, but its /health does not answer with it
    files = {"svc/__init__.py": reads, "svc/web.py": "ROUTES = [('/health', lambda r: {'status': 'ok'})]\n"}
    repo = project(tmp_path / "d", files)
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).health.expect_version is False
    assert 'svc/web.py, which serves /health, has no "version"' in guessed(proc)["[health] expect_version"]


SERVES = "ROUTES = [('/health', health)]\nasync def health(request): ...\n"


@pytest.mark.parametrize(
    "code, url",
    [
        ("import os\nPORT = int(os.environ.get('PORT', '8000'))\n", "http://127.0.0.1:8000/health"),
        ("from os import getenv\nport = getenv('HTTP_PORT', 9090)\n", "http://127.0.0.1:9090/health"),
        # no default: the port is only known on the host
        ("import os\nPORT = int(os.environ['PORT'])\n", None),
        # two ports, which one serves /health?
        ("import os\na = os.getenv('PORT', 8000)\nb = os.getenv('ADMIN_PORT', 9000)\n", None),
    ],
    ids=["environ.get", "getenv", "no-default", "two-ports"],
)
def test_health_url_is_guessed_only_when_the_code_says_where(init, tmp_path, code, url):
    repo = project(tmp_path, {"svc/web.py": SERVES, "svc/settings.py": code})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).health.http_url == url
    line = guessed(proc)["[health] http_url"]
    if url:
        assert line == f'[health] http_url = "{url}": svc/web.py serves /health; svc/settings.py reads ' + (
            "PORT (default 8000)" if "8000" in url else "HTTP_PORT (default 9090)"
        )
    else:
        assert line.startswith("no [health] http_url: svc/web.py serves /health")
        assert "--health-url" in line and "unit active and stable" in line


def test_without_a_health_route_there_is_no_probe_and_the_config_loads(init, tmp_path):
    repo = project(tmp_path, {"svc/settings.py": "import os\nPORT = os.getenv('PORT', 8000)\n"})
    proc = init(repo, "--owner", "acme")
    config = load_config(repo / "deploy.toml", environ={})
    assert config.health.http_url is None and config.health.command is None
    assert config.host_config().health.http_url is None  # healthy = unit active and stable
    assert guessed(proc)["[health] http_url"].startswith("no [health] http_url: no /health route in its code")


def test_health_url_flag_wins_over_the_guess_and_a_bad_one_is_refused(init, tmp_path):
    repo = project(tmp_path, {"svc/web.py": SERVES})
    proc = init(repo, "--owner", "acme", "--health-url", "http://127.0.0.1:9000/ready")
    assert load_config(repo / "deploy.toml", environ={}).health.http_url == "http://127.0.0.1:9000/ready"
    assert guessed(proc)["[health] http_url"] == (
        '[health] http_url = "http://127.0.0.1:9000/ready": from --health-url'
    )
    proc = init(repo, "--owner", "acme", "--health-url", "127.0.0.1:9000", "--force", check=False)
    assert proc.returncode == 2 and "--health-url" in proc.stderr


def test_public_env_keys_are_the_plainly_not_secret_ones_init_can_see(init, tmp_path):
    sample = "PORT=8000\nDB_HOST=db\nAPI_TOKEN=\n# CACHE_DIR=/var/cache/svc\nDB_PASSWORD=\n"
    code = (
        "import os\nlevel = os.environ.get('LOG_LEVEL', 'info')\nkey = os.environ['SECRET_KEY']\n"
        "data = os.getenv('DATA_DIR')\ntoken_dir = os.getenv('TOKEN_DIR')\n"
    )
    repo = project(tmp_path, {".env.example": sample, "svc/settings.py": code})
    proc = init(repo, "--owner", "acme")
    public = ["CACHE_DIR", "DATA_DIR", "DB_HOST", "LOG_LEVEL", "PORT"]
    assert load_config(repo / "deploy.toml", environ={}).env.public == public
    line = guessed(proc)["[env] public"]
    assert line.startswith(f"[env] public = {json.dumps(public)}: ")
    assert ".env.example" in line and "svc/settings.py" in line
    # the .env template is made of the service's own sample
    assert (repo / "packaging" / "env.template").read_text().endswith(sample)


def test_no_public_keys_when_init_sees_none(init, tmp_path):
    repo = project(tmp_path, {"svc/settings.py": "import os\ntoken = os.environ['API_TOKEN']\n"})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).env.public == []
    assert guessed(proc)["[env] public"].startswith("[env] public = []: ")


def test_smoke_runs_the_selfcheck_when_the_service_has_one(init, tmp_path):
    main = "import sys\nif '--selfcheck' in sys.argv:\n    print('ok')\n"
    repo = project(tmp_path, {"svc/__main__.py": main})
    proc = init(repo, "--owner", "acme")
    assert load_config(repo / "deploy.toml", environ={}).smoke_command() == [
        "{python}",
        "-m",
        "svc",
        "--selfcheck",
    ]
    assert guessed(proc)["[smoke] command"].endswith(": svc/__main__.py takes --selfcheck")


def test_init_prints_one_line_per_guess(init, tmp_path):
    proc = init(project(tmp_path, {}), "--owner", "acme")
    assert sorted(guessed(proc)) == [
        "[env] public",
        "[health] expect_version",
        "[health] http_url",
        "[service] socket",
        "[service] type",
        "[smoke] command",
    ]
    assert all(len(line) < 200 for line in proc.stdout.splitlines())


NOTES_API = ROOT / "examples" / "notes_api"


def test_the_notes_api_example_is_what_init_writes_for_it(init, tmp_path):
    """examples/notes_api/README.md says its deploy.toml and packaging/ are init's, unedited."""
    repo = tmp_path / "notes_api"
    shutil.copytree(
        NOTES_API, repo, ignore=shutil.ignore_patterns("__pycache__", "deploy.toml", "packaging", "data")
    )
    proc = init(repo, "--owner", "acme")
    assert (repo / "deploy.toml").read_text() == (NOTES_API / "deploy.toml").read_text()
    for path in sorted((NOTES_API / "packaging").iterdir()):
        assert (repo / "packaging" / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(p.name for p in (repo / "packaging").iterdir()) == sorted(
        p.name for p in (NOTES_API / "packaging").iterdir()
    )
    readme = (NOTES_API / "README.md").read_text()
    for line in guessed(proc).values():
        assert f"guessed {line}" in readme, f"the README shows what init prints: {line}"
