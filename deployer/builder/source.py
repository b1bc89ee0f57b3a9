"""The service's source: commit facts from git, the release version, the app wheel."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deployer.errors import BuildError

_VERSION_LINE = re.compile(r'^(\s*version\s*=\s*)(["\'])([^"\']*)\2', re.MULTILINE)
_DYNAMIC = re.compile(r"^\s*dynamic\s*=\s*\[(.*?)\]\s*\n?", re.MULTILINE | re.DOTALL)
_NEXT_TABLE = re.compile(r"^\s*\[", re.MULTILINE)
_TAG_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?)$")


@dataclass(frozen=True)
class Commit:
    sha: str
    epoch: int
    ref: str | None
    tag: str | None
    dirty: bool

    @property
    def short(self) -> str:
        return self.sha[:7]


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise BuildError("git is not installed; the build needs the service's git repository") from None
    if out.returncode != 0:
        raise BuildError(f"git {' '.join(args)}: {out.stderr.strip() or 'failed'}")
    return out.stdout.strip()


def read_commit(source: Path) -> Commit:
    """HEAD of the git repository holding ``source`` (tag, branch, dirtiness of ``source``)."""
    if not source.is_dir():
        raise BuildError(f"app.source: {source} is not a directory")
    try:
        sha = _git(source, "rev-parse", "HEAD")
    except BuildError as e:
        raise BuildError(f"{source}: not a git repository with a commit ({e})") from None
    epoch = int(_git(source, "show", "-s", "--format=%ct", "HEAD"))
    tags = [t for t in _git(source, "tag", "--points-at", "HEAD").splitlines() if t]
    tag = next((t for t in sorted(tags) if _TAG_VERSION.match(t)), None)
    ref = _git(source, "rev-parse", "--abbrev-ref", "HEAD")
    dirty = bool(_git(source, "status", "--porcelain", "--untracked-files=no", "--", "."))
    return Commit(sha=sha, epoch=epoch, ref=None if ref == "HEAD" else ref, tag=tag, dirty=dirty)


def dependencies_epoch(source: Path, paths: list[str], commit: Commit) -> tuple[int, str]:
    """When the service's dependencies last changed, and how that was found.

    The time of the last commit that touched ``paths`` (pyproject.toml and the
    requirements file, relative to ``source``), never later than HEAD's. The lock is
    resolved as of then: a code-only commit keeps the dependencies of the commit before it
    (the lock is reused from the cache, by content), and every clone with the history
    resolves the same lock. HEAD's own time when that cannot be known: uncommitted changes
    to those files, a file git does not track, or a shallow clone that cuts the history."""
    if _git(source, "status", "--porcelain", "--untracked-files=all", "--", *paths):
        return commit.epoch, f"as of the commit: {', '.join(paths)} changed and not committed"
    found = _git(source, "log", "-1", "--format=%H %ct", "HEAD", "--", *paths).split()
    if len(found) != 2:
        return commit.epoch, f"as of the commit: git does not track {', '.join(paths)}"
    sha, epoch = found[0], int(found[1])
    if _git(source, "rev-parse", "--is-shallow-repository") == "true" and sha in _shallow_roots(source):
        return commit.epoch, "as of the commit: a shallow clone (fetch-depth: 0 keeps the lock)"
    when = datetime.fromtimestamp(min(epoch, commit.epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return min(epoch, commit.epoch), f"as of {when}, {sha[:7]}: the last change to {', '.join(paths)}"


def _shallow_roots(source: Path) -> set[str]:
    try:
        return set(Path(source, _git(source, "rev-parse", "--git-path", "shallow")).read_text().split())
    except OSError:
        return set()


def origin_url(source: Path) -> str | None:
    """The URL of the repository's ``origin`` remote, or None when it has none."""
    try:
        return _git(source, "remote", "get-url", "origin") or None
    except BuildError:
        return None


def base_version(pyproject: dict, where: Path) -> str:
    """The version a build stamps from: ``[project] version``, or, for a version the build
    backend makes (``dynamic = ["version"]``: hatch's version path, setuptools-scm,
    hatch-vcs), the newest version tag reachable from HEAD (``0.0.0`` before the first)."""
    project = pyproject.get("project", {})
    version = project.get("version")
    if version:
        return str(version)
    if "version" not in project.get("dynamic", []):
        raise BuildError(
            f'{where}: [project] has no version: give version = "X.Y.Z" or dynamic = ["version"]'
        )
    try:
        tag = _git(where, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
    except BuildError:
        return "0.0.0"
    tagged = _TAG_VERSION.match(tag)
    return tagged.group(1) if tagged else "0.0.0"


def release_version(base: str, commit: Commit, tree_hash: str) -> str:
    """Tag builds get the tag's version; others ``<base>.dev<epoch>+g<sha>[.d<tree>]``.

    Every build of a different tree gets a different version: installers silently
    skip a rebuilt wheel whose version they already have.
    """
    if commit.tag and not commit.dirty:
        tagged = _TAG_VERSION.match(commit.tag)
        if tagged is None:
            raise BuildError(f"tag {commit.tag!r} does not name a version (v1.2.3)")
        return tagged.group(1)
    public = base.split("+", 1)[0]
    public = re.sub(r"\.dev\d+$", "", public)
    local = f"g{commit.short}" + (f".d{tree_hash[:8]}" if commit.dirty else "")
    return f"{public}.dev{commit.epoch}+{local}"


def source_files(source: Path) -> list[str]:
    """Files of the service as git sees them (tracked and new, never ignored)."""
    out = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    return sorted(f for f in out.split("\0") if f and (source / f).is_file())


def tree_hash(source: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + hashlib.sha256((source / f).read_bytes()).digest())
    return h.hexdigest()


def stage_source(source: Path, files: list[str], dest: Path, version: str) -> Path:
    """Copy the service into ``dest`` with its [project] version set to ``version``."""
    for f in files:
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / f, target)
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(
        set_version(pyproject.read_text(encoding="utf-8"), version, source), encoding="utf-8"
    )
    return dest


def set_version(text: str, version: str, source: Path) -> str:
    """pyproject.toml text with ``[project] version`` set to ``version`` (pure).

    A static version line is rewritten; a dynamic one is made static (``version`` taken
    out of ``dynamic``), so the backend builds exactly the version deployer stamped."""
    project_at = text.find("[project]")
    if project_at < 0:
        raise BuildError(f"{source / 'pyproject.toml'}: no [project] table")
    head, tail = text[:project_at], text[project_at:]
    end = _NEXT_TABLE.search(tail, len("[project]"))
    table, rest = (tail[: end.start()], tail[end.start() :]) if end else (tail, "")
    table, n = _VERSION_LINE.subn(lambda m: f"{m.group(1)}{m.group(2)}{version}{m.group(2)}", table, 1)
    if n == 0:
        dynamic = _DYNAMIC.search(table)
        if dynamic is None or not re.search(r"[\"']version[\"']", dynamic.group(1)):
            raise BuildError(f"{source / 'pyproject.toml'}: no version line in [project] to set")
        items = [i for i in re.findall(r"[\"']([^\"']+)[\"']", dynamic.group(1)) if i != "version"]
        kept = f"dynamic = [{', '.join(repr(i).replace(chr(39), chr(34)) for i in items)}]\n" if items else ""
        table = table[: dynamic.start()] + kept + table[dynamic.end() :]
        table = table.replace("[project]", f'[project]\nversion = "{version}"', 1)
    return head + table + rest


def load_pyproject(source: Path) -> dict:
    path = source / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{path}: not found; the service must be a pyproject.toml project") from None
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{path}: not valid TOML: {e}") from None


def build_app_wheel(staged: Path, out_dir: Path, epoch: int) -> Path:
    """Build the service's wheel with pypa/build; isolated only when the backend is missing."""
    import os

    from build import BuildBackendException, BuildException, ProjectBuilder, check_dependency
    from build.env import DefaultIsolatedEnv

    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}

    def runner(cmd, cwd=None, extra_environ=None):
        subprocess.run(cmd, cwd=cwd, env={**env, **(extra_environ or {})}, check=True, capture_output=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        builder = ProjectBuilder(staged, runner=runner)
        if not [unmet for r in builder.build_system_requires for unmet in check_dependency(r)]:
            # the backend is here: build with it (asking it first what else it needs
            # costs one more interpreter start); isolated only if that build fails
            try:
                return Path(builder.build("wheel", out_dir))
            except (BuildBackendException, subprocess.CalledProcessError):
                if not builder.check_dependencies("wheel"):
                    raise
        with DefaultIsolatedEnv() as venv:
            builder = ProjectBuilder.from_isolated_env(venv, staged, runner=runner)
            venv.install(builder.build_system_requires)
            venv.install(builder.get_requires_for_build("wheel"))
            return Path(builder.build("wheel", out_dir))
    except (BuildException, BuildBackendException, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", None) or getattr(getattr(e, "exception", None), "stderr", b"")
        tail = (detail or b"").decode(errors="replace").strip().splitlines()[-5:]
        raise BuildError(
            f"building the app wheel failed: {e}" + (": " + " | ".join(tail) if tail else "")
        ) from None
