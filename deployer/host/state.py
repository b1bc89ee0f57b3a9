"""Release states and the activation history (``log/deploys.jsonl``).

A release is ``staging`` while its venv is built, then ``staged``; ``live`` while it is
current and its health gate is open; ``good`` once a gate closed on it; ``bad`` when its
install, smoke test or health gate failed. "Previous release" always means the previous
*activation* in the history, never the previous id in sort order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Iterator, List, Optional

from deployer.host.contract import STATES, Outcome, State
from deployer.host.events import utc_now
from deployer.host.layout import Layout

STATE_FILE = ".state"


def write_atomic(path: Path, data: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` at once: a fresh file of a random name beside it,
    made with ``O_EXCL|O_NOFOLLOW`` (a link planted at a guessable temp name is never
    written through), fsynced, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` at once: a new link beside it is renamed over it
    (``os.replace`` is atomic), then the folder is fsynced."""
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(6)}.tmp")
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_state(release_dir: Path) -> Optional[str]:
    try:
        state = (release_dir / STATE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return state if state in STATES else None


def set_state(release_dir: Path, state: str) -> None:
    assert state in STATES, state
    write_atomic(release_dir / STATE_FILE, state + "\n")


def release_manifest(release_dir: Path) -> dict:
    try:
        return json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def built_from(manifest: dict) -> str | None:
    """The branch a release was built from, or None when it is not known.

    The build's own checkout when it was on a branch (``git.ref``); else the CI run's ref
    (``provenance.ref``, ``refs/heads/<branch>``) when the run built its own commit. A
    checkout of another commit (a manual deploy of a tag or of another branch's sha) has
    no branch: the run's ref is then where the workflow ran, not what it built."""
    git, prov = _table(manifest, "git"), _table(manifest, "provenance")
    ref, sha = git.get("ref"), git.get("sha")
    if isinstance(ref, str) and ref:
        return ref
    run_ref = prov.get("ref")
    if isinstance(run_ref, str) and run_ref.startswith("refs/heads/") and sha and prov.get("commit") == sha:
        return run_ref[len("refs/heads/") :]
    return None


def _table(doc: dict, key: str) -> dict:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


class History:
    """Append-only JSON lines: one per deploy, rollback or install attempt."""

    def __init__(self, layout: Layout):
        self.path = layout.history

    def append(self, record: dict) -> dict:
        record = {"time": utc_now(), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self) -> Iterator[dict]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a crash: skip it
        except FileNotFoundError:
            return

    def activations(self) -> List[dict]:
        """Records that left their release live: the order releases were current in."""
        return [
            r for r in self.records() if r.get("to") and r.get("result") in (Outcome.SUCCESS, Outcome.LIVE)
        ]

    def last_activation(self, rid: str) -> Optional[dict]:
        found = None
        for r in self.activations():
            if r["to"] == rid:
                found = r
        return found


def rollback_target(layout: Layout, history: History) -> Optional[str]:
    """The last good activation before `current`: never `current`, never a bad release."""
    current = layout.current_id()
    for record in reversed(history.activations()):
        rid = record["to"]
        if rid == current:
            continue
        rel = layout.release(rid)
        if rel.is_dir() and get_state(rel) == State.GOOD:
            return rid
    return None


def list_releases(layout: Layout, history: History) -> List[dict]:
    current = layout.current_id()
    rows = []
    for rid in layout.release_ids():
        rel = layout.release(rid)
        last = history.last_activation(rid)
        rows.append(
            {
                "id": rid,
                "version": release_manifest(rel).get("version"),
                "state": get_state(rel),
                "activated_at": last["time"] if last else None,
                "current": rid == current,
            }
        )
    return rows
