"""The service's ``.env``: written at 0600, backed up, never printed.

It lives where ``Layout.env`` says: by default ``/etc/deployer/<app>/env``, a file the
deploy user owns in a folder only root can write, so nobody can swap it for a link that
systemd (reading it as root) would follow. There it is rewritten in place; elsewhere
(tests, a folder the engine may write) it is replaced atomically. Backups go to
``secrets/`` under the base path, which the service cannot write. Each release records
the sha256 of the ``.env`` it ran with (``env.sha256``), so a revert or rollback can put
that exact file back from the backups.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

from deployer.errors import HostError
from deployer.host.events import utc_now
from deployer.host.layout import Layout
from deployer.host.state import write_atomic

ENV_MODE = 0o600
ENV_SHA = "env.sha256"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_DOUBLE_QUOTE_ESCAPES = '"\\`$'


class EnvFile:
    """A .env read exactly as systemd reads ``EnvironmentFile=`` (its ``env-file.c``).

    ``KEY=VALUE`` lines; ``#`` or ``;`` start a comment; values may be single-quoted (no
    escapes), double-quoted (``\\`` escapes ``"\\`$``), or bare (a backslash escapes the
    next character, trailing whitespace is dropped); quotes may span lines and a
    backslash before a newline continues the line. ``assignments`` is what the service
    gets; ``rejected`` the raw text of lines systemd ignores (and echoes to the journal).
    """

    def __init__(self, text: str):
        self.assignments: List[Tuple[str, str]] = []
        self.rejected: List[str] = []
        for key, value, raw in _scan(text):
            if _NAME.match(key):
                self.assignments.append((key, value))
            else:
                self.rejected.append(raw)

    def keys(self) -> List[str]:
        return [k for k, _ in self.assignments]

    def secrets(self, public: Iterable[str] = ()) -> List[str]:
        """What to mask: every value but those of ``public`` keys, and rejected lines."""
        shown = set(public)
        return [v for k, v in self.assignments if k not in shown and v] + [
            r for r in self.rejected if r.strip()
        ]


def _scan(text: str) -> Iterator[Tuple[str, str, str]]:
    """(key, value, raw text) per assignment, systemd's state machine."""
    state, key, value, start = "pre_key", "", "", 0
    trailing = 0  # whitespace at the end of a bare value, dropped when it ends
    for i, c in enumerate(text + "\n"):
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in _WHITESPACE:
                state, key, start = "key", c, i
        elif state == "key":
            if c in _NEWLINE:
                yield key.strip(), "", text[start:i]
                state = "pre_key"
            elif c == "=":
                state, value, trailing = "pre_value", "", 0
            else:
                key += c
        elif state == "pre_value":
            if c in _NEWLINE:
                yield key.strip(), value, text[start:i]
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state, value, trailing = "value", value + c, 0
        elif state == "value":
            if c in _NEWLINE:
                yield key.strip(), value[: len(value) - trailing] if trailing else value, text[start:i]
                state = "pre_key"
            elif c == "\\":
                state, trailing = "value_escape", 0
            else:
                value += c
                trailing = trailing + 1 if c in _WHITESPACE else 0
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in _DOUBLE_QUOTE_ESCAPES:
                value += c
            elif c not in _NEWLINE:
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NEWLINE:
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    if state in ("single", "double", "double_escape"):  # an unclosed quote runs to the end
        yield key.strip(), value, text[start:]


def env_keys(text: str) -> List[str]:
    """The variable names a .env defines (values are never looked at)."""
    return EnvFile(text).keys()


def env_values(text: str, public: Iterable[str] = ()) -> List[str]:
    """What of a .env to mask in every output: see ``EnvFile.secrets``."""
    return EnvFile(text).secrets(public)


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
    """Every backup, oldest first (``shared/`` held them in an earlier layout)."""
    found: List[Path] = []
    for d in (layout.shared, layout.secrets):
        if d.is_dir():
            found += [p for p in d.glob(".env.bak.*") if not p.is_symlink() and p.is_file()]
    return sorted(found, key=lambda p: p.name)


def write_env(path: Path, text: str) -> None:
    """Put ``text`` in the .env at ``path``, 0600, never through a link.

    In a folder the engine may write, replaced atomically; in root's folder (where the
    deploy user may only rewrite the file setup made), rewritten in place."""
    if os.access(path.parent, os.W_OK):
        write_atomic(path, text, ENV_MODE)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise HostError(
            f"{path} does not exist: run `deployer host setup` (it makes the .env's place)"
        ) from None
    except OSError as e:
        raise HostError(f"{path}: cannot write the .env: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.truncate(0)
        f.write(text)
        f.flush()
        os.fchmod(f.fileno(), ENV_MODE)
        os.fsync(f.fileno())


def install_env(layout: Layout, text: str) -> str:
    """Back up the .env (if any and different), then write the new one, 0600.

    Returns what happened, for the step's event (never the contents).
    """
    old = current_env(layout)
    if old == text:
        return "unchanged"
    backup = backup_env(layout, old) if old is not None else None
    write_env(layout.env, text)
    return f"replaced (0600), backup {backup.name}" if backup else "written (0600)"


def backup_env(layout: Layout, text: str) -> Path:
    """Keep ``text`` as ``.env.bak.<timestamp>`` unless an identical backup exists."""
    digest = sha256_text(text)
    for b in backups(layout):
        if sha256_text(b.read_text(encoding="utf-8")) == digest:
            return b
    stamp = utc_now().replace(":", "").replace("-", "").replace(".", "")
    layout.secrets.mkdir(mode=0o700, exist_ok=True)
    path = layout.secrets / f".env.bak.{stamp}"
    write_atomic(path, text, ENV_MODE)
    return path


def env_text(layout: Layout, digest: Optional[str]) -> Optional[str]:
    """The .env whose sha256 is ``digest``: the current one or a backup (None if none is)."""
    if digest is None:
        return None
    now = current_env(layout)
    if now is not None and sha256_text(now) == digest:
        return now
    for b in reversed(backups(layout)):
        text = b.read_text(encoding="utf-8")
        if sha256_text(text) == digest:
            return text
    return None


def restore_env(layout: Layout, digest: Optional[str]) -> bool:
    """Put back the .env whose sha256 is ``digest`` (from a backup). False if none has it."""
    text = env_text(layout, digest)
    if text is None:
        return False
    if text != current_env(layout):
        install_env(layout, text)
    return True


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
