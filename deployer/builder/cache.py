"""The build's cache on this machine: where it lives, how an entry is written, and how
entries no build used for ``cache_days()`` days are removed.

Every entry a build takes from the cache is marked used (``used``: its access time, so
the modification time, which ``remembered_facts`` keys on, stays). ``prune`` removes the
entries last used, or written, longer ago; a build runs it at most once a day
(``maybe_prune``), and never while another build uses the cache: a build holds a shared
lock on it (``in_use``), a prune the exclusive one, and a prune that finds the cache in
use is left to the next build. An entry removed too early only costs the next build a
fetch or a compile: every entry can be made again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: days an entry is kept unused (``DEPLOYER_CACHE_DAYS``; 0: never pruned)
CACHE_DAYS = 30
#: in the cache's root: when ``maybe_prune`` last pruned it
PRUNED_STAMP = ".pruned"
#: in the cache's root: builds lock it shared, a prune exclusive (never pruned itself)
LOCK = ".lock"
DAY = 86400.0


def cache_dir() -> Path:
    """``$DEPLOYER_CACHE``, else ``~/.cache/deployer``."""
    return Path(os.environ.get("DEPLOYER_CACHE") or Path.home() / ".cache" / "deployer")


def cache_days() -> float:
    """``$DEPLOYER_CACHE_DAYS``, else ``CACHE_DAYS``; 0 keeps everything."""
    text = os.environ.get("DEPLOYER_CACHE_DAYS", "").strip()
    try:
        return max(0.0, float(text)) if text else CACHE_DAYS
    except ValueError:
        return CACHE_DAYS


def used(path: Path) -> Path:
    """``path``, a cache entry, marked used now: its access time is set, its modification
    time kept (``remembered_facts`` keys on it)."""
    with contextlib.suppress(OSError):  # a read-only cache is still a cache, never pruned
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
    return path


def prune(root: Path, days: float, now: float | None = None) -> list[Path]:
    """Remove every file under ``root`` last used and last written more than ``days`` ago,
    then the directories left empty; returns the files removed."""
    cutoff = (time.time() if now is None else now) - days * DAY
    removed = []
    for top, _, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(top) / name
            try:
                st = path.lstat()
                if max(st.st_atime, st.st_mtime) < cutoff and path.name not in (PRUNED_STAMP, LOCK):
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
        if Path(top) != root:
            with contextlib.suppress(OSError):
                os.rmdir(top)  # only when empty
    return removed


def _lock_fd(root: Path) -> int | None:
    """An open descriptor of the cache's lock file, or None where it cannot be opened
    (a read-only cache without one: nothing prunes it)."""
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        with contextlib.suppress(OSError):
            return os.open(root / LOCK, flags | os.O_CLOEXEC, 0o644)
    return None


@contextlib.contextmanager
def _locked(root: Path, how: int) -> Iterator[bool]:
    """The cache's lock held ``how`` (``fcntl.flock``) for the block; False when there is
    no lock file to hold."""
    fd = _lock_fd(root)
    try:
        if fd is not None:
            fcntl.flock(fd, how)
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def in_use(root: Path | None = None) -> Iterator[None]:
    """While a build takes entries from the cache and puts new ones in: shared with other
    builds, never with a prune (it waits for one to end)."""
    with _locked(root or cache_dir(), fcntl.LOCK_SH):
        yield


def maybe_prune(root: Path | None = None, now: float | None = None) -> list[Path]:
    """``prune`` the cache with ``cache_days()``, unless it ran less than a day ago or a
    build uses the cache now (the next build prunes it then)."""
    root = root or cache_dir()
    days = cache_days()
    now = time.time() if now is None else now
    stamp = root / PRUNED_STAMP
    try:
        if not days or now - stamp.stat().st_mtime < DAY:
            return []
    except FileNotFoundError:
        pass
    except OSError:
        return []
    try:
        with _locked(root, fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
            if not held:
                return []
            stamp.touch()
            os.utime(stamp, (now, now))
            return prune(root, days, now)
    except OSError:  # BlockingIOError: in use; else a cache this user cannot write
        return []


def keep(path: Path, final: Path) -> Path:
    """Copy ``path`` to ``final`` atomically: an entry is whole or absent, and builds
    running side by side never see a half-written one."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, final)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return final


def link(path: Path, target: Path) -> Path:
    """``path`` at ``target`` too: a hard link (no copy) where the filesystem allows it."""
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def remembered_facts(path: Path, compute: Callable[[Path], dict]) -> dict:
    """``compute(path)``, remembered in the cache by the file's identity (device, inode,
    size, modification time). For the cache's own entries, which are never rewritten in
    place, and hard links to them: a warm build hashes only the files it made itself.
    A wrong memory could only make the host refuse the artifact (its hashes are checked
    there), never accept other bytes."""
    st = path.stat()
    memo = cache_dir() / "facts" / f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}.json"
    try:
        return json.loads(used(memo).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    facts = compute(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{memo.name}.", dir=memo.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(facts, f)
    os.replace(tmp, memo)
    return facts
