"""Fixtures shared by the suites: the example service built into a real artifact.

The build runs once per session from a scratch git repository holding a copy of the
example service, committed at a fixed time, so builds are repeatable and the
developer's working tree (and its uncommitted edits) never leaks in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from deployer.builder import build_release
from deployer.config import load_config
from deployer.host.artifact import iter_verified

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tg_video_streamer"
COMMIT_DATE = "2026-11-26T10:15:00Z"
ISOLATED_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def git(repo: Path, *args: str, date: str = COMMIT_DATE) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.invalid",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def make_service_repo(dest: Path) -> Path:
    """A fresh git repo with deploy.toml and the example service, one commit."""
    shutil.copytree(
        EXAMPLE,
        dest / "examples" / "tg_video_streamer",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist"),
    )
    shutil.copyfile(ROOT / "deploy.toml", dest / "deploy.toml")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "example service")
    return dest


NOTES_API = ROOT / "examples" / "notes_api"


def make_notes_repo(dest: Path, without: tuple[str, ...] = (), prepare=None) -> Path:
    """A fresh git repo holding examples/notes_api at its root (its deploy.toml
    included, ``source = "."``), one commit; ``without``: names left out of the copy;
    ``prepare(dest)`` runs before the commit."""
    shutil.copytree(
        NOTES_API,
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "data", *without),
    )
    if prepare is not None:
        prepare(dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "notes_api")
    return dest


def build_notes_v2(repo: Path, work: Path):
    """notes_api with a code change as a new commit: the version it reports, and one more field."""
    clone = work / "repo-v2"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    init = clone / "notes_api" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "1.0.0"', '__version__ = "1.1.0"'))
    app = clone / "notes_api" / "app.py"
    old = '{"status": "ok", "version": version, "notes": store.count()}'
    assert old in app.read_text()
    app.write_text(
        app.read_text().replace(
            old, '{"status": "ok", "version": version, "notes": store.count(), "v2": True}'
        )
    )
    git(clone, "commit", "-qam", "report 1.1.0", date="2026-11-26T11:00:00Z")
    return build_release(
        load_config(clone / "deploy.toml", environ={}), clone / "deploy.toml", work / "dist-v2"
    )


@pytest.fixture(scope="session")
def notes_builds(tmp_path_factory) -> dict:
    """examples/notes_api in a scratch repo ("repo"), built once as v1 and v2 (1.1.0)."""
    work = tmp_path_factory.mktemp("notes")
    repo = make_notes_repo(work / "notes-repo")
    v1 = build_release(load_config(repo / "deploy.toml", environ={}), repo / "deploy.toml", work / "dist")
    return {"repo": repo, "v1": v1, "v2": build_notes_v2(repo, work)}


def extract(artifact: Path, dest: Path) -> Path:
    """Extract a verified artifact (test helper; the engine has its own safe unpack)."""
    dest.mkdir(parents=True, exist_ok=True)
    for member, reader, _ in iter_verified(str(artifact)):
        target = dest / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(reader, out)
    return dest


@pytest.fixture(scope="session")
def service_repo(tmp_path_factory) -> Path:
    return make_service_repo(tmp_path_factory.mktemp("service-repo"))


@pytest.fixture(scope="session")
def example_build(service_repo, tmp_path_factory):
    """The example service built once into dist/<app>-<release>.tar."""
    config = load_config(service_repo / "deploy.toml", environ={})
    return build_release(config, service_repo / "deploy.toml", tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def example_artifact(example_build) -> Path:
    return example_build.path


def find_python(version: str) -> str | None:
    """The real executable of python<version>, or None (pyenv shims resolved)."""
    try:
        out = subprocess.run(
            [f"python{version}", "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYENV_VERSION": version},
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def target_python() -> str:
    found = find_python("3.11")
    if not found:
        pytest.skip("python3.11 (the example's target interpreter) is not installed")
    return found


@pytest.fixture(scope="session")
def example_venv(example_artifact, tmp_path_factory) -> Path:
    """A fresh venv with the artifact's lock installed OFFLINE (no network namespace)."""
    work = tmp_path_factory.mktemp("offline")
    tree = extract(example_artifact, work / "artifact")
    venv = work / "venv"
    offline = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    env = {**os.environ, **ISOLATED_PIP}
    subprocess.run([*offline, target_python(), "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run(
        [
            *offline,
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--require-hashes",
            "--no-deps",
            "--find-links",
            str(tree / "wheels"),
            "-r",
            str(tree / "requirements.lock"),
        ],
        check=True,
        env=env,
    )
    return venv


@pytest.fixture(scope="session")
def example_python(example_venv) -> str:
    """The example service's python, from the offline-installed artifact."""
    return str(example_venv / "bin" / "python")


def members(artifact: Path) -> list[str]:
    with tarfile.open(artifact) as t:
        return t.getnames()


# Variants of the example, each a new commit in a clone of the service repo, built once.
PKG = Path("examples/tg_video_streamer/tg_video_streamer")
VARIANTS = {
    # a code-only change: one line, a new commit, so a new version
    "v2": (PKG / "health.py", '"status": "ok"', '"status": "ok", "build": "v2"'),
    "v3": (PKG / "health.py", '"status": "ok"', '"status": "ok", "build": "v3"'),
    # starts, then dies before it is ready: a Traceback in the journal
    "crash": (
        PKG / "__main__.py",
        "    _setup_logging(settings.log_level_number)\n",
        "    _setup_logging(settings.log_level_number)\n    raise RuntimeError('crash at start')\n",
    ),
    # serves, but never tells systemd it is ready (no sd_notify READY=1)
    "silent": (PKG / "service.py", 'sd_notify(f"READY=1', 'print(f"READY=1'),
    # ready and running, but /health fails
    "unhealthy": (
        PKG / "health.py",
        "return web.Response(body=health_body, content_type=",
        "return web.Response(status=503, body=health_body, content_type=",
    ),
}
VARIANT_DATES = {
    "v2": "2026-11-26T11:00:00Z",
    "crash": "2026-11-26T12:00:00Z",
    "unhealthy": "2026-11-26T13:00:00Z",
    "silent": "2026-11-26T14:00:00Z",
    "supply": "2026-11-26T15:00:00Z",
    "v3": "2026-11-26T16:00:00Z",
}
SUPPLY_SECRET = "supply-chain-s3cr3t-value"


def _supply_chain(repo: Path) -> None:
    """What ``deployer diff`` must show: one more dependency (six), a ``.pth`` file in the
    service's own wheel, and one more required .env key (whose value is a secret)."""
    service = repo / "examples" / "tg_video_streamer"
    with open(service / "requirements.txt", "a") as f:
        f.write("six==1.17.0\n")
    (service / "tg_video_streamer_boot.pth").write_text("import os\n")
    pyproject = service / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + "\n[tool.hatch.build.targets.wheel.force-include]\n"
        + '"tg_video_streamer_boot.pth" = "tg_video_streamer_boot.pth"\n'
    )
    config = repo / "deploy.toml"
    config.write_text(
        config.read_text().replace(
            'required = ["HTTP_PORT", "STATE_DIR"]', 'required = ["HTTP_PORT", "STATE_DIR", "NEW_TOKEN"]'
        )
    )
    with open(service / "staging.env", "a") as f:
        f.write(f"NEW_TOKEN={SUPPLY_SECRET}\n")
    git(repo, "add", "-A")


def build_variant(service_repo: Path, name: str, work: Path, branch: str | None = None):
    """Clone the service repo, apply one edit (or the supply-chain changes) as a new
    commit (on ``branch`` when given, else on main), build it."""
    repo = work / f"repo-{name}"
    subprocess.run(["git", "clone", "-q", str(service_repo), str(repo)], check=True)
    if branch:
        git(repo, "checkout", "-q", "-b", branch)
    if name == "supply":
        _supply_chain(repo)
    else:
        path, old, new = VARIANTS[name]
        target = repo / path
        text = target.read_text()
        assert old in text, f"variant {name}: {old!r} not in {path}"
        target.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-qam", f"variant {name}", date=VARIANT_DATES[name])
    config = load_config(repo / "deploy.toml", environ={})
    return build_release(config, repo / "deploy.toml", work / f"dist-{name}")


@pytest.fixture(scope="session")
def variant_builds(service_repo, example_build, tmp_path_factory):
    """name -> BuildResult, built on first use ("v1" is the example itself)."""
    cache = {"v1": example_build}
    work = tmp_path_factory.mktemp("variants")

    def get(name: str):
        if name not in cache:
            cache[name] = build_variant(service_repo, name, work)
        return cache[name]

    return get
