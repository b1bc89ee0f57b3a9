"""Which releases, cached wheels and .env backups to keep (pure choice + thin apply)."""

from __future__ import annotations

import os
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Set

from deployer.errors import HostError
from deployer.host.contract import State
from deployer.host.envfile import backups, release_env_sha, sha256_text
from deployer.host.install import base_env, uv_binary
from deployer.host.layout import Layout
from deployer.host.proc import run
from deployer.host.state import History, get_state, release_manifest, rollback_target


def choose_releases_to_prune(
    ids: List[str], states: Dict[str, Optional[str]], keep: int, protected: Set[str]
) -> List[str]:
    """Keep the newest ``keep`` releases (good/live/staged before bad) plus ``protected``.

    ``protected`` holds `current`, the last good activation before it and anything
    being staged: those are never deleted, whatever ``keep`` says. Bad releases never
    take a kept slot from a good one, and ``staged`` leftovers of dry runs go first.
    """
    rank = {State.LIVE: 0, State.GOOD: 0, State.STAGED: 1, State.STAGING: 1, State.BAD: 2, None: 2}
    candidates = [i for i in ids if i not in protected]
    ordered = sorted(candidates, key=lambda i: (rank.get(states.get(i), 2), _neg(i)))
    slots = max(0, keep - len(protected & set(ids)))
    kept = set(ordered[:slots])
    return [i for i in ids if i not in protected and i not in kept]


def _neg(rid: str) -> tuple:
    return tuple(-ord(c) for c in rid)  # newest id first within a rank


def prune(
    layout: Layout, keep: int, staging: Optional[str] = None, retention_days: int = 30
) -> Dict[str, List[str]]:
    """Delete what retention does not keep; returns what was removed."""
    history = History(layout)
    ids = layout.release_ids()
    states = {i: get_state(layout.release(i)) for i in ids}
    protected = {i for i in (layout.current_id(), rollback_target(layout, history), staging) if i}
    # a dry run's staged release is only ever kept while it is being staged
    drop_staged = [i for i in ids if states[i] in (State.STAGED, State.STAGING) and i not in protected]
    doomed = sorted(set(choose_releases_to_prune(ids, states, keep, protected)) | set(drop_staged))
    for rid in doomed:
        shutil.rmtree(layout.release(rid), ignore_errors=True)
    kept = [i for i in ids if i not in doomed]
    shutil.rmtree(layout.cache / "wheels", ignore_errors=True)  # the member cache's earlier name
    removed = {
        "releases": doomed,
        "partials": prune_partials(layout, staging),
        "members": _prune_members(layout, kept),
        "tools": _prune_tools(layout, kept),
        "uv_cache": _prune_uv_cache(layout, kept),
        "env_backups": _prune_env_backups(layout, kept),
        "logs": _prune_logs(layout, kept, retention_days),
    }
    return removed


def prune_partials(layout: Layout, staging: Optional[str] = None) -> List[str]:
    """``.partial`` dirs left by an interrupted deploy (only ever called under the lock)."""
    if not layout.releases.is_dir():
        return []
    gone = []
    for p in layout.releases.iterdir():
        if p.name.startswith(".") and p.name.endswith(".partial") and p.name != f".{staging}.partial":
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return sorted(gone)


def prune_incoming(layout: Layout, keep: Optional[str] = None) -> List[str]:
    """Uploads left by an interrupted deploy (``*.part``, unstaged tars); engines stay."""
    if not layout.incoming.is_dir():
        return []
    gone = []
    kept = Path(keep).resolve() if keep else None
    for p in layout.incoming.iterdir():
        if p.is_file() and not p.name.startswith("engine-") and p.resolve() != kept:
            p.unlink()
            gone.append(p.name)
    return sorted(gone)


def _prune_tools(layout: Layout, kept: List[str]) -> List[str]:
    """Extracted tools (uv) that no kept release ships."""
    used: Set[str] = set()
    for rid in kept:
        manifest = release_manifest(layout.release(rid))
        meta = manifest.get("files", {}).get(manifest.get("uv_wheel") or "")
        if meta:
            used.add(layout.tool_dir(meta["sha256"]).name)
    return _remove_unused(layout.tools, used)


def _prune_uv_cache(layout: Layout, kept: List[str]) -> List[str]:
    """Distributions that uv's cache holds unpacked but no venv uses any more.

    uv installs by hardlinking the files of an unpacked wheel (``archive-v*/<id>/``), so
    an unpacked wheel whose every file has one link is used by no venv: the releases
    that used it were pruned. ``uv cache clean <name>`` drops it, with that name's other
    entries: the kept venvs keep their own links to those, and uv unpacks a wheel from
    ``cache/members`` again whenever a later release needs one. If cleaning fails,
    nothing is removed and the next prune tries again.
    """
    names = sorted(
        {
            name
            for archive in layout.uv_cache.glob("archive-v*/*")
            if _only_in_cache(archive)
            for name in _dist_names(archive)
        }
    )
    if not names:
        return []
    try:
        uv = next(
            filter(
                None, (uv_binary(layout, release_manifest(layout.release(rid))) for rid in reversed(kept))
            ),
            None,
        )
        if uv is None:
            return []
        run([str(uv), "cache", "clean", *names], env=base_env(layout), timeout=300, check=True)
    except (HostError, OSError, KeyError, zipfile.BadZipFile):
        return []
    return names


def _only_in_cache(archive: Path) -> bool:
    """True if no file of ``archive`` is hardlinked anywhere else (and it has files)."""
    seen = False
    for root, _dirs, files in os.walk(archive):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if st.st_nlink > 1:
                return False
            seen = True
    return seen


def _dist_names(archive: Path) -> List[str]:
    """Normalized names of the distributions an unpacked wheel holds (its ``.dist-info``)."""
    return [
        re.sub(r"[-_.]+", "-", d.name[: -len(".dist-info")].rsplit("-", 1)[0]).lower()
        for d in archive.glob("*.dist-info")
    ]


def _remove_unused(parent: Path, used: Set[str]) -> List[str]:
    """Remove the entries of ``parent`` not named in ``used``; their names."""
    gone = []
    if parent.is_dir():
        for d in parent.iterdir():
            if d.name not in used:
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d.name)
    return sorted(gone)


def _prune_members(layout: Layout, kept: List[str]) -> List[str]:
    used: Set[str] = set()
    for rid in kept:
        for meta in release_manifest(layout.release(rid)).get("files", {}).values():
            used.add(meta["sha256"])
    gone = _remove_unused(layout.members, used)
    if layout.wheelhouse.is_dir():
        for w in layout.wheelhouse.iterdir():
            if os.stat(w).st_nlink <= 1:  # its cache entry is gone
                w.unlink()
    return gone


def _prune_env_backups(layout: Layout, kept: List[str]) -> List[str]:
    wanted = {release_env_sha(layout.release(r)) for r in kept}
    gone = []
    for b in backups(layout):
        if sha256_text(b.read_text(encoding="utf-8")) not in wanted:
            b.unlink()
            gone.append(b.name)
    return gone


def _prune_logs(layout: Layout, kept: List[str], days: int) -> List[str]:
    """Per-release logs of pruned releases, once older than the audit retention."""
    cutoff = time.time() - days * 86400
    gone = []
    if layout.log.is_dir():
        for d in layout.log.iterdir():
            if d.is_dir() and d.name not in kept and _mtime(d) < cutoff:
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d.name)
    return sorted(gone)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
