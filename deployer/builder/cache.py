"""The build's cache on this machine: where it lives, and how an entry is written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    """``$DEPLOYER_CACHE``, else ``~/.cache/deployer``."""
    return Path(os.environ.get("DEPLOYER_CACHE") or Path.home() / ".cache" / "deployer")


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
        return json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    facts = compute(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{memo.name}.", dir=memo.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(facts, f)
    os.replace(tmp, memo)
    return facts
