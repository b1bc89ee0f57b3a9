"""``deployer init``: give an existing service repository what it needs to be deployed.

Writes ``deploy.toml`` (guessed from the service's pyproject.toml, validated by loading
it), the ``packaging/`` templates (unit, launcher, sudoers, .env template) and thin
GitHub Actions callers of deployer's reusable workflow. Never overwrites a file unless
asked to (``force``); returns what it wrote. The texts are files under
``deployer/init_templates/``, their ``<<KEY>>`` placeholders filled in here.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tomllib
from importlib import resources
from pathlib import Path

from deployer.config import NAME_RE, load_config, validate_config
from deployer.errors import UsageError
from deployer.guess import Guesses, inspect_service

WORKFLOWS = ("deploy.yml", "deploy-staging.yml", "manual-deploy.yml", "rollback.yml")
#: this deployer checkout (the parent of the package): its origin names the default owner,
#: its git resolves --ref to the commit the callers pin
DEPLOYER_ROOT = Path(__file__).resolve().parent.parent
REUSABLE = ".github/workflows/deploy-reusable.yml"
DEFAULT_REF = "main"

TEMPLATE_DIR = "init_templates"  # in this package: deploy.toml.in, workflows/<name>.in
# a line <<HEAD>>, <<CHOICE>> or <<WITH>> in workflows/<name>.in stands for text that
# several callers share, kept once in workflows/_*.yml.in
FRAGMENTS = {"HEAD": "_head.yml.in", "CHOICE": "_choice.yml.in", "WITH": "_with.yml.in"}


def _template(rel: str) -> str:
    """The text of init_templates/``rel``, from the checkout or the installed package."""
    return (resources.files("deployer") / TEMPLATE_DIR / rel).read_text(encoding="utf-8")


def _caller(name: str) -> str:
    """The caller workflow ``name``, its shared fragments put in (placeholders still open)."""
    text = _template(f"workflows/{name}.in")
    for key, fragment in FRAGMENTS.items():
        text = text.replace(f"<<{key}>>\n", _template(f"workflows/{fragment}"))
    return text


def _fill(template: str, values: dict) -> str:
    for key, value in values.items():
        template = template.replace(f"<<{key}>>", value)
    return template


def guess_app(project_dir: Path) -> dict:
    """Name, module and Python of the service, from its pyproject.toml and layout."""
    path = project_dir / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: not found (init needs the service's pyproject.toml)") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    project = data.get("project") or {}
    raw = project.get("name")
    if not raw:
        raise UsageError(f"{path}: [project] name is missing")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(raw)).strip("-.")[:64]
    if not re.match(NAME_RE, name):
        raise UsageError(f"{path}: cannot make an app name of {raw!r}")
    module = _module(project_dir, project, name)
    user = re.sub(r"[^a-z0-9_-]", "_", name.lower())[:32]
    if not user[0].isalpha():
        user = ("u" + user)[:32]
    return {"name": name, "module": module, "user": user, "python": _python(project)}


def _module(project_dir: Path, project: dict, name: str) -> str:
    wanted = name.replace("-", "_").replace(".", "_").lower()
    for base in (project_dir, project_dir / "src"):
        if (base / wanted / "__init__.py").is_file() or (base / f"{wanted}.py").is_file():
            return wanted
    for target in (project.get("scripts") or {}).values():  # "pkg.cli:main" -> pkg
        head = str(target).split(":", 1)[0].split(".", 1)[0]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
            return head
    for base in (project_dir / "src", project_dir):
        found = sorted(
            p.parent.name
            for p in base.glob("*/__init__.py")
            if p.parent.name not in ("tests", "test", "docs", "packaging")
        )
        if len(found) == 1:
            return found[0]
    return wanted


def _python(project: dict) -> str:
    """The hosts' Python: 3.11 unless requires-python asks for a newer minimum."""
    m = re.search(r">=\s*3\.(\d+)", str(project.get("requires-python") or ""))
    minor = max(11, int(m.group(1))) if m else 11
    return f"3.{minor}"


def detect_owner(deployer_root: Path) -> str | None:
    """The GitHub owner of this deployer checkout's origin, when it is on GitHub."""
    try:
        url = subprocess.run(
            ["git", "-C", str(deployer_root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"github\.com[:/]([A-Za-z0-9-]+)/", url)
    return m.group(1) if m else None


def check_ref(ref: str) -> None:
    """``ref`` is a tag, branch or commit name, and can never be read as an option."""
    if ref.startswith("-"):
        raise UsageError(f"--ref {ref!r}: not a tag, branch or commit (it would be read as an option)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", ref) or ".." in ref:
        raise UsageError(f"--ref {ref!r}: not a tag, branch or commit")


def resolve_ref(deployer_root: Path, ref: str) -> str:
    """The commit (40 hex) ``ref`` names in this deployer checkout: what the callers pin."""
    check_ref(ref)
    root = str(deployer_root)
    sha = ""
    # the name itself, else the remote's branch of that name (a clone checked out elsewhere)
    for name in (ref, f"refs/remotes/origin/{ref}"):
        try:
            proc = subprocess.run(
                [
                    "git",
                    "-C",
                    root,
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    f"{name}^{{commit}}",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            break
        if proc.returncode == 0:
            sha = proc.stdout.strip()
            break
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise UsageError(f"--ref {ref}: no such tag, branch or commit in deployer's git checkout {root}")
    return sha


def plan(
    target: Path, owner: str, ref: str, sha: str, source: str = ".", guesses: Guesses | None = None
) -> dict:
    """relative path -> text (or Path to copy) of everything init writes (pure apart from reads).

    The callers pin deployer by ``sha``, the commit ``ref`` named (kept as a comment);
    ``guesses``: what init guessed about the service (``guess_service``; made here if not given).
    """
    from deployer.builder.release import default_packaging

    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", owner):
        raise UsageError(f"--owner {owner!r}: not a GitHub user or organisation name")
    check_ref(ref)
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise UsageError(f"--ref {ref}: {sha!r} is not a commit sha")
    app = guess_app(target / source)
    guesses = guesses or guess_service(target, source)
    values = {
        **guesses.placeholders(),
        "NAME": app["name"],
        "MODULE": app["module"],
        "USER": app["user"],
        "PYTHON": app["python"],
        "SOURCE": source,
        "CONFIG": "deploy.toml",
        "REPO": f"{owner}/deployer",
        "SHA": sha,
        "USES": f"{owner}/deployer/{REUSABLE}@{sha}  # {ref}",
    }
    config = _fill(_template("deploy.toml.in"), values)
    validate_config(tomllib.loads(config), "deploy.toml")  # never write a config that fails
    files: dict = {"deploy.toml": config}
    templates = default_packaging()
    for src in sorted(templates.glob("*.in")):
        files[f"packaging/{src.name}"] = src
    env_template = templates / "env.template"
    if env_template.is_file():
        files["packaging/env.template"] = _env_template(
            env_template.read_text(encoding="utf-8"), app["name"], guesses.env_sample
        )
    for name in WORKFLOWS:
        files[f".github/workflows/{name}"] = _fill(_caller(name), values)
    return files


def _env_template(text: str, app: str, sample: Path | None = None) -> str:
    """deployer's .env template, made about ``app``: its opening comment, then the service's
    own sample .env when it has one (else the example's keys, kept as a sample)."""
    text = text.replace("tg_video_streamer", app)
    if sample is None:
        return text
    head = "".join(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines(keepends=True)))
    own = sample.read_text(encoding="utf-8", errors="replace")
    return f"{head}# The keys below are the service's own, from its {sample.name}.\n{own}"


def guess_service(target: Path, source: str = ".", health_url: str | None = None) -> Guesses:
    """What init guesses about the service at ``target``/``source`` (see deployer/guess.py)."""
    app = guess_app(target / source)
    return inspect_service(target / source, app["module"], health_url, repo_root=target)


def init_repo(
    target: Path,
    owner: str,
    ref: str = DEFAULT_REF,
    force: bool = False,
    source: str = ".",
    deployer_root: Path | None = None,
    guesses: Guesses | None = None,
) -> list[Path]:
    """Write deploy.toml, packaging/ and the caller workflows into ``target``; the callers
    pin deployer by the commit ``ref`` names in ``deployer_root`` (default: this checkout)."""
    if not target.is_dir():
        raise UsageError(f"{target}: not a directory")
    sha = resolve_ref(deployer_root or DEPLOYER_ROOT, ref)
    files = plan(target, owner, ref, sha, source, guesses)
    existing = [rel for rel in files if (target / rel).exists()]
    if existing and not force:
        raise UsageError(
            f"{target / existing[0]} exists (and {len(existing) - 1} more); --force overwrites"
            if len(existing) > 1
            else f"{target / existing[0]} exists; --force overwrites"
        )
    written = []
    for rel, content in files.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, dest)
        else:
            dest.write_text(content, encoding="utf-8")
        written.append(dest)
    load_config(target / "deploy.toml", environ={})
    return written
