"""Safe unpack: artifact members into the cache and ``releases/.<id>.partial``.

Every member is checked (regular file, safe relative name, listed in the manifest,
sha256 matches) before anything it wrote is used. Every member goes to the
content-addressed cache ``cache/members/<sha256>/<name>``, so a thin upload may leave out
whatever the cache already has. Wheels, bytecode layers and tools are used from there;
the release's own files (engine, lock, templates) are also hardlinked into the release.

A cache entry counts only when it is a regular file with the right size AND sha256
(``cache_entry_ok``): a damaged or planted entry is sent again and replaced, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Dict, List, Tuple

from deployer.host.artifact import iter_verified, read_manifest
from deployer.host.layout import Layout

CACHE_ONLY_PREFIXES = ("wheels/", "tools/", "bytecode/")
_CHUNK = 1 << 20


def is_cache_only(name: str) -> bool:
    """A wheel, tool or bytecode layer: used from the cache, not copied into the release."""
    return name.startswith(CACHE_ONLY_PREFIXES)


# (device, inode, size, mtime, ctime) of entries this process hashed and found right; a
# rewrite changes ctime, which no user can set back, so a hit means the same bytes
_verified: Dict[Tuple[int, int, int, int, int], str] = {}


def cache_entry_ok(path: Path, meta: dict) -> bool:
    """``path`` is a regular file (not a link) holding exactly the bytes ``meta`` names."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != meta["size"]:
        return False
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _verified.get(key) == meta["sha256"]:
        return True
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    if h.hexdigest() != meta["sha256"]:
        return False
    _verified[key] = meta["sha256"]
    return True


def cached_names(layout: Layout, manifest: dict) -> Dict[str, Path]:
    """Listed members the cache already holds, verified: member name -> cache path."""
    found = {}
    for name, meta in manifest["files"].items():
        path = layout.cached(name, meta)
        if cache_entry_ok(path, meta):
            found[name] = path
    return found


def missing_members(layout: Layout, manifest: dict) -> List[str]:
    """What a thin upload must carry: every file the host cannot rebuild from its cache."""
    have = cached_names(layout, manifest)
    return sorted(n for n in manifest["files"] if n not in have)


def unpack(artifact: str, partial: Path, layout: Layout) -> dict:
    """Unpack into the cache and ``partial`` (created fresh); return the manifest.

    A refused artifact leaves nothing behind: no partial dir, nothing in the cache.
    """
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    pending: List[tuple] = []  # (tmp, final) renamed only after the whole walk verified
    made: List[Path] = []  # cache dirs this walk created
    manifest = read_manifest(artifact)  # an upload may carry nothing else: all is cached
    try:
        files = manifest["files"]
        for member, reader, _ in iter_verified(
            artifact, may_lack=lambda n, m: cache_entry_ok(layout.cached(n, m), m)
        ):
            final = layout.cached(member.name, files[member.name])
            if any(final == f for _, f in pending) or cache_entry_ok(final, files[member.name]):
                continue  # the iterator still hashes the bytes it skips; same bytes, same name
            _mkdirs(final.parent, made)
            tmp = final.with_name(f".{final.name}.tmp")
            _unlink(tmp)  # left by an interrupted deploy
            _copy(reader, tmp, 0o755 if member.name.endswith(".pyz") else 0o644)
            pending.append((tmp, final))
    except BaseException:
        for tmp, _ in pending:
            _unlink(tmp)
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for tmp, final in pending:
        os.replace(tmp, final)
    for name, meta in manifest["files"].items():
        if not is_cache_only(name):
            dest = partial / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(layout.cached(name, meta), dest)
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _copy(reader, dest: Path, mode: int) -> None:
    fd = os.open(
        dest,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
        mode,
    )
    with os.fdopen(fd, "wb") as out:
        while True:
            chunk = reader.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)


def _mkdirs(path: Path, made: List[Path]) -> None:
    """``mkdir -p``, noting each dir it created (outermost first)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        made.append(d)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def link_wheelhouse(layout: Layout, manifest: dict) -> Path:
    """Hardlink this release's wheels into ``cache/wheelhouse``: one stable find-links dir.

    uv's cache only hits when the find-links path is the same every time.
    """
    house = layout.wheelhouse
    house.mkdir(parents=True, exist_ok=True)
    for name, meta in manifest["files"].items():
        if not name.startswith("wheels/"):
            continue
        src = layout.cached(name, meta)
        dest = house / src.name
        try:
            if os.path.samefile(src, dest):
                continue
            dest.unlink()
        except FileNotFoundError:
            pass
        _link_or_copy(src, dest)
    return house


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
