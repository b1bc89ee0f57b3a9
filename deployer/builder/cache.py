"""The build's cache on this machine: where it lives, and how an entry is written."""

from __future__ import annotations

import os
import shutil
import tempfile
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
