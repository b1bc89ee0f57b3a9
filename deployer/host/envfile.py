"""The service's ``.env``: replaced atomically at 0600, backed up, never printed.

Each release records the sha256 of the ``.env`` it ran with (``env.sha256``), so a
revert or rollback can put that exact file back from the backups.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import List, Optional

from deployer.errors import HostError
from deployer.host.events import utc_now
from deployer.host.layout import Layout
from deployer.host.state import write_atomic

ENV_MODE = 0o600
ENV_SHA = "env.sha256"
_KEY_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def env_keys(text: str) -> List[str]:
    """The variable names a .env defines (values are never looked at)."""
    return [m.group(1) for m in map(_KEY_RE.match, text.splitlines()) if m]


def env_values(text: str) -> List[str]:
    """The values of a .env, for masking them in every output."""
    values = []
    for line in text.splitlines():
        m = _KEY_RE.match(line)
        if m:
            value = line[m.end() :].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if value:
                values.append(value)
    return values


def check_required(text: str, required: List[str]) -> None:
    missing = [k for k in required if k not in set(env_keys(text))]
    if missing:
        raise HostError(f".env lacks required keys: {', '.join(missing)}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_env(layout: Layout) -> Optional[str]:
    try:
        return layout.env.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def backups(layout: Layout) -> List[Path]:
    if not layout.shared.is_dir():
        return []
    return sorted(layout.shared.glob(".env.bak.*"))


def install_env(layout: Layout, text: str) -> str:
    """Back up shared/.env (if any and different), then replace it atomically, 0600.

    Returns what happened, for the step's event (never the contents).
    """
    layout.shared.mkdir(parents=True, exist_ok=True)
    old = current_env(layout)
    if old == text:
        os.chmod(layout.env, ENV_MODE)
        return "unchanged"
    backup = backup_env(layout, old) if old is not None else None
    write_atomic(layout.env, text, ENV_MODE)
    return f"replaced (0600), backup {backup.name}" if backup else "written (0600)"


def backup_env(layout: Layout, text: str) -> Path:
    """Keep ``text`` as ``.env.bak.<timestamp>`` unless an identical backup exists."""
    digest = sha256_text(text)
    for b in backups(layout):
        if sha256_text(b.read_text(encoding="utf-8")) == digest:
            return b
    stamp = utc_now().replace(":", "").replace("-", "").replace(".", "")
    path = layout.shared / f".env.bak.{stamp}"
    write_atomic(path, text, ENV_MODE)
    return path


def restore_env(layout: Layout, digest: Optional[str]) -> bool:
    """Put back the .env whose sha256 is ``digest`` (from a backup). False if none has it."""
    if digest is None:
        return False
    now = current_env(layout)
    if now is not None and sha256_text(now) == digest:
        return True
    for b in reversed(backups(layout)):
        text = b.read_text(encoding="utf-8")
        if sha256_text(text) == digest:
            install_env(layout, text)
            return True
    return False


def record_env(release_dir: Path, layout: Layout) -> Optional[str]:
    """Write which .env this release runs with (its sha256) into the release."""
    text = current_env(layout)
    digest = sha256_text(text) if text is not None else None
    write_atomic(release_dir / ENV_SHA, (digest or "none") + "\n")
    return digest


def release_env_sha(release_dir: Path) -> Optional[str]:
    try:
        value = (release_dir / ENV_SHA).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return None if value == "none" else value
