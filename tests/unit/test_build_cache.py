"""What a warm build reuses: the lock resolved as of the last change to the dependencies
(from git), cached by what it was resolved from, and wheels kept per target and release;
and what the cache forgets: entries no build used for 30 days."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deployer.builder import cache, wheelhouse
from deployer.builder.source import dependencies_epoch, read_commit
from deployer.config import Platform
from tests.conftest import git

DEPS = ["pyproject.toml", "requirements.txt"]
T0, T1, T2 = "2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z", "2026-11-22T10:00:00Z"
E0, E1, E2 = 1795168800, 1795255200, 1795341600  # the same times, as epochs


def commit_all(repo: Path, message: str, date: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message, date=date)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A service: its dependencies at T0, a code-only commit at T1."""
    r = tmp_path / "svc"
    (r / "svc").mkdir(parents=True)
    (r / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "1.0"\ndependencies = ["six"]\n')
    (r / "requirements.txt").write_text("idna==3.10\n")
    (r / "svc" / "__init__.py").write_text("")
    git(r, "init", "-q", "-b", "main")
    commit_all(r, "deps", T0)
    (r / "svc" / "__init__.py").write_text("X = 1\n")
    commit_all(r, "code only", T1)
    return r


def bare_service(tmp_path: Path, message: str, date: str) -> Path:
    """A service with no dependencies: its pyproject.toml alone, one commit at ``date``."""
    r = tmp_path / "svc"
    r.mkdir()
    (r / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "1.0"\n')
    git(r, "init", "-q", "-b", "main")
    commit_all(r, message, date)
    return r


def epoch(repo: Path) -> tuple[int, str]:
    return dependencies_epoch(repo, DEPS, read_commit(repo))


def test_a_code_only_commit_keeps_the_time_of_the_last_dependency_change(repo):
    when, how = epoch(repo)
    sha = git(repo, "rev-list", "-1", "HEAD~1")
    assert when == E0
    assert (
        how == f"as of 2026-11-20T10:00:00Z, {sha[:7]}: the last change to pyproject.toml, requirements.txt"
    )


@pytest.mark.parametrize("changed", DEPS)
def test_a_commit_that_changes_a_dependency_file_moves_the_time(repo, changed):
    with open(repo / changed, "a") as f:
        f.write("\n# more\n")
    commit_all(repo, "deps again", T2)
    assert epoch(repo)[0] == E2


def test_uncommitted_dependency_changes_resolve_as_of_the_commit(repo):
    (repo / "requirements.txt").write_text("idna==3.9\n")
    assert epoch(repo) == (E1, "as of the commit: pyproject.toml, requirements.txt changed and not committed")


def test_an_untracked_requirements_file_resolves_as_of_the_commit(tmp_path):
    r = bare_service(tmp_path, "one", T1)
    (r / ".gitignore").write_text("requirements.txt\n")
    (r / "requirements.txt").write_text("six\n")
    git(r, "add", ".gitignore")
    git(r, "commit", "-qm", "ignore", date=T2)
    when, how = dependencies_epoch(r, ["requirements.txt"], read_commit(r))
    assert (when, how) == (E2, "as of the commit: git does not track requirements.txt")


def test_a_shallow_clone_that_cuts_the_history_resolves_as_of_the_commit(repo, tmp_path):
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    assert epoch(shallow) == (E1, "as of the commit: a shallow clone (fetch-depth: 0 keeps the lock)")
    # dependencies changed at T2, then code: a clone of 3 commits holds that change
    (repo / "requirements.txt").write_text("idna==3.9\n")
    commit_all(repo, "deps again", T2)
    (repo / "svc" / "__init__.py").write_text("X = 2\n")
    commit_all(repo, "code only", "2026-11-23T10:00:00Z")
    deeper = tmp_path / "deeper"
    subprocess.run(["git", "clone", "-q", "--depth", "3", f"file://{repo}", str(deeper)], check=True)
    assert epoch(deeper)[0] == epoch(repo)[0] == E2  # the same lock as a full clone


def test_a_dependency_commit_dated_after_head_never_resolves_past_head(tmp_path):
    r = bare_service(tmp_path, "deps, with a clock ahead", T2)
    (r / "x.py").write_text("")
    commit_all(r, "code, clock right", T1)
    assert epoch(r)[0] == E1


TARGET = Platform(python_version="3.11", platform="linux_x86_64", glibc="2.36")


def test_the_lock_key_changes_with_everything_the_resolution_depends_on():
    base = wheelhouse.lock_key(["six"], TARGET, "2026-11-20T10:00:01Z", {})
    assert base == wheelhouse.lock_key(["six"], TARGET, "2026-11-20T10:00:01Z", {"HOME": "/x"})
    others = {
        wheelhouse.lock_key(["six", "idna"], TARGET, "2026-11-20T10:00:01Z", {}),
        wheelhouse.lock_key(["six"], Platform(python_version="3.12"), "2026-11-20T10:00:01Z", {}),
        wheelhouse.lock_key(["six"], Platform(glibc="2.31"), "2026-11-20T10:00:01Z", {}),
        wheelhouse.lock_key(["six"], TARGET, "2026-11-21T10:00:01Z", {}),
        wheelhouse.lock_key(
            ["six"], TARGET, "2026-11-20T10:00:01Z", {"UV_INDEX_URL": "http://mirror/simple"}
        ),
    }
    assert base not in others and len(others) == 5


def test_cached_wheels_are_found_by_normalized_name_and_version(tmp_path):
    cache = wheelhouse.wheel_cache(tmp_path, TARGET)
    cache.mkdir(parents=True)
    for name in ("Typing_Extensions-4.12.2-py3-none-any.whl", "pyaes-1.6.1-py3-none-any.whl", "notes.txt"):
        (cache / name).write_bytes(b"x")
    (cache / ".pyaes-1.6.1-py3-none-any.whl.tmp").write_bytes(b"half")
    dest = tmp_path / "work" / "wheels"
    pins = [wheelhouse.Pin("typing-extensions", "4.12.2"), wheelhouse.Pin("pyaes", "1.6.1.0")]
    wheels, hits = wheelhouse.fetch_wheels(pins, TARGET, dest, tmp_path, None, None)
    assert hits == 2
    assert [w.name for w in wheels] == [
        "Typing_Extensions-4.12.2-py3-none-any.whl",
        "pyaes-1.6.1-py3-none-any.whl",
    ]
    assert (dest / "pyaes-1.6.1-py3-none-any.whl").stat().st_ino == (
        cache / "pyaes-1.6.1-py3-none-any.whl"
    ).stat().st_ino
    assert wheelhouse.wheel_cache(tmp_path, Platform(glibc="2.31")) != cache  # another target, other wheels


def test_a_used_entry_keeps_its_modification_time_and_prune_goes_by_the_last_use(tmp_path):
    """``used`` sets the access time only (``remembered_facts`` keys on the modification
    time); ``prune`` removes what was neither used nor written within the days kept."""
    now = time.time()
    day = 86400
    entries = {
        name: tmp_path / name
        for name in ("locks/a.pins", "wheels/t/old.whl", "wheels/t/used.whl", "facts/new.json")
    }
    for path in entries.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for name in ("locks/a.pins", "wheels/t/old.whl", "wheels/t/used.whl"):
        os.utime(entries[name], (now - 40 * day, now - 40 * day))
    mtime = entries["wheels/t/used.whl"].stat().st_mtime_ns
    cache.used(entries["wheels/t/used.whl"])
    assert entries["wheels/t/used.whl"].stat().st_mtime_ns == mtime
    removed = cache.prune(tmp_path, 30, now)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == ["locks/a.pins", "wheels/t/old.whl"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "facts/new.json",
        "wheels/t/used.whl",
    ]
    assert not (tmp_path / "locks").exists(), "a directory left empty goes too"


def test_the_cache_is_pruned_at_most_once_a_day_and_never_with_zero_days(tmp_path, monkeypatch):
    now = time.time()
    stale = tmp_path / "bytecode" / "x.zip"

    def plant() -> None:
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("x")
        os.utime(stale, (now - 90 * 86400, now - 90 * 86400))

    plant()
    monkeypatch.setenv("DEPLOYER_CACHE_DAYS", "0")
    assert cache.maybe_prune(tmp_path, now) == [] and stale.exists()
    monkeypatch.delenv("DEPLOYER_CACHE_DAYS")
    assert cache.maybe_prune(tmp_path, now) == [stale]
    plant()
    assert cache.maybe_prune(tmp_path, now + 3600) == [], "pruned less than a day ago"
    assert cache.maybe_prune(tmp_path, now + 86400 + 1) == [stale]
    monkeypatch.setenv("DEPLOYER_CACHE_DAYS", "100")
    plant()
    assert cache.maybe_prune(tmp_path, now + 3 * 86400) == [] and stale.exists()
    monkeypatch.setenv("DEPLOYER_CACHE_DAYS", "soon")
    assert cache.cache_days() == cache.CACHE_DAYS


def _holding(root: Path, how: str) -> subprocess.Popen:
    """Another process holding the cache's lock (``in_use``, or a prune's exclusive lock)
    until its stdin closes."""
    code = (
        "import fcntl, os, sys\n"
        "from pathlib import Path\n"
        "from deployer.builder import cache\n"
        f"root = Path({str(root)!r})\n"
        "if sys.argv[1] == 'build':\n"
        "    held = cache.in_use(root)\n"
        "    held.__enter__()\n"
        "else:\n"
        "    fd = os.open(root / cache.LOCK, os.O_RDWR | os.O_CREAT)\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def _release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0


def test_no_prune_while_another_build_uses_the_cache_and_no_build_while_a_prune_runs(tmp_path):
    """A build in another process holds the cache: the day's prune is left to the next
    build (nothing removed, no stamp), which prunes once it is alone; a build that starts
    while a prune holds the cache waits for it. The lock file itself is never pruned."""
    now = time.time()
    stale = tmp_path / "wheels" / "t" / "old.whl"
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    os.utime(stale, (now - 40 * 86400, now - 40 * 86400))

    build = _holding(tmp_path, "build")
    try:
        assert cache.maybe_prune(tmp_path, now) == [] and stale.exists()
        assert not (tmp_path / cache.PRUNED_STAMP).exists(), "the next build prunes"
        with cache.in_use(tmp_path):
            pass  # builds share the cache
    finally:
        _release(build)
    os.utime(tmp_path / cache.LOCK, (now - 40 * 86400, now - 40 * 86400))
    assert cache.maybe_prune(tmp_path, now) == [stale]
    assert (tmp_path / cache.LOCK).exists()

    entered = threading.Event()

    def a_build() -> None:
        with cache.in_use(tmp_path):
            entered.set()

    prune = _holding(tmp_path, "prune")
    thread = threading.Thread(target=a_build, daemon=True)
    try:
        thread.start()
        assert not entered.wait(0.5), "a build entered the cache during a prune"
    finally:
        _release(prune)
    assert entered.wait(10)
    thread.join(10)
