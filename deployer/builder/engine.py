"""The host engine as a zipapp, built from this very package, with its bytecode.

Every artifact carries one, and commands without an artifact (rollback, report, ...)
upload the controller's own; both are the same bytes for the same sources. Built once
per sources and interpreter and kept in the cache: compiling it takes longer than a
rollback's switch."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from pathlib import Path

import deployer
from deployer.builder import archive
from deployer.builder.cache import cache_dir, in_use, keep, used

ENGINE_MAIN = "from deployer.host.cli import main\n\nmain()\n"
#: in the cache key: engines built before it compiled their modules in the build's own process
ENGINE_FORMAT = b"pycs-v2"
ENGINE_PACKAGES = ["deployer/__init__.py", "deployer/errors.py", "deployer/host"]


def engine_zipapp() -> Path:
    """The engine of this package's sources, from the cache (built there on first use)."""
    root = Path(deployer.__file__).resolve().parent.parent
    names = _sources(root)
    key = hashlib.sha256(importlib.util.MAGIC_NUMBER + ENGINE_FORMAT + ENGINE_MAIN.encode())
    for name in names:
        key.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    cached = cache_dir() / "engines" / f"engine-{key.hexdigest()[:32]}.pyz"
    if not cached.is_file():
        with tempfile.TemporaryDirectory(prefix="deployer-engine-") as tmp:
            built = archive.write_zipapp(Path(tmp) / "engine.pyz", root, names, ENGINE_MAIN, compiled=True)
            keep(built, cached)
    return used(cached)


def build_engine(dest: Path) -> Path:
    """The engine zipapp at ``dest``."""
    with in_use():
        shutil.copyfile(engine_zipapp(), dest)
    dest.chmod(0o755)
    return dest


def _sources(root: Path) -> list[str]:
    """What goes into the zipapp, as names under ``root``, sorted (what the key covers)."""
    found = []
    for pkg in ENGINE_PACKAGES:
        src = root / pkg
        paths = [src] if src.is_file() else sorted(src.rglob("*.py"))
        found += [p.relative_to(root).as_posix() for p in paths if "__pycache__" not in p.parts]
    return found
