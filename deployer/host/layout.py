"""Where everything lives under the base path (pure)::

current -> releases/<id>          the one thing the unit runs
slots/<slot> -> ../releases/<id>  [service] handover: the release each instance is started with
releases/<id>/                    manifest.json venv/ .state env.sha256 + shared links
releases/.<id>.partial/           being unpacked; never seen by `current`
secrets/.env.bak.*                0600 .env backups (a folder the service cannot write)
shared/.env.bak.*                 backups of an earlier layout (read for restores only)
cache/members/<sha256>/<name>     every artifact member, by content
(the .env itself: HostConfig.env_path, outside the base path, in a folder of root's)
shared/<dir>/                     state that survives deploys and pruning
cache/wheelhouse/<name>           hardlinks: one stable find-links dir (uv's cache keys on it)
cache/uv/  cache/tools/  cache/pex/
log/deploys.jsonl  log/<id>/      activation history + audit; journal excerpts, installer logs
incoming/                         uploads in flight
.lock  .lock.holder               flock held by the live engine; who holds it
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from deployer.host.contract import HANDOVER_POINTERS, HANDOVER_SLOTS, HostConfig
from deployer.host.patterns import RELEASE_ID, check_release_id


class Layout:
    """The paths of one app: under ``base``, and its ``.env`` (``env``) wherever the host
    config puts it (``HostConfig.env_path``: outside the base path, root's folder)."""

    def __init__(self, base: str | Path, env: str | Path | None = None):
        self.base = Path(base)
        self._env = Path(env) if env is not None else self.base / "secrets" / ".env"

    @classmethod
    def of(cls, config: HostConfig) -> Layout:
        return cls(config.base_path, config.env_path)

    @property
    def current(self) -> Path:
        return self.base / "current"

    def slot(self, name: str) -> Path:
        """The link naming the release handover instance ``name`` is started with."""
        if name not in HANDOVER_SLOTS:
            raise ValueError(f"no handover instance {name!r}")
        return self.base / HANDOVER_POINTERS / name

    def slot_release(self, name: str) -> str | None:
        """The release id ``slot(name)`` points at, or None."""
        return _linked_release(self.slot(name))

    @property
    def releases(self) -> Path:
        return self.base / "releases"

    def release(self, rid: str) -> Path:
        return self.releases / check_release_id(rid, "release")

    def partial(self, rid: str) -> Path:
        return self.releases / f".{check_release_id(rid, 'release')}.partial"

    @property
    def shared(self) -> Path:
        return self.base / "shared"

    @property
    def env(self) -> Path:
        """The .env systemd hands the service (``EnvironmentFile=``)."""
        return self._env

    @property
    def secrets(self) -> Path:
        """The deploy user's own folder for .env backups: not among the service's writable paths."""
        return self.base / "secrets"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    @property
    def members(self) -> Path:
        """The content-addressed cache of every artifact member (wheels, layers, tools)."""
        return self.cache / "members"

    def cached(self, member: str, meta: dict) -> Path:
        """Where the cache holds artifact member ``member`` (its manifest entry ``meta``):
        by content, under the member's own file name (pip and uv need wheel names)."""
        return self.members / meta["sha256"] / PurePosixPath(member).name

    @property
    def wheelhouse(self) -> Path:
        return self.cache / "wheelhouse"

    @property
    def uv_cache(self) -> Path:
        return self.cache / "uv"

    @property
    def tools(self) -> Path:
        return self.cache / "tools"

    def tool_dir(self, sha256: str) -> Path:
        """Where a shipped tool (uv) is extracted, by its wheel's sha256."""
        return self.tools / sha256[:16]

    @property
    def pex_root(self) -> Path:
        return self.cache / "pex"

    @property
    def log(self) -> Path:
        return self.base / "log"

    @property
    def history(self) -> Path:
        return self.log / "deploys.jsonl"

    def release_log(self, rid: str) -> Path:
        return self.log / check_release_id(rid, "release")

    @property
    def incoming(self) -> Path:
        return self.base / "incoming"

    @property
    def lock(self) -> Path:
        return self.base / ".lock"

    @property
    def lock_holder(self) -> Path:
        return self.base / ".lock.holder"

    def current_id(self) -> str | None:
        """The release `current` points at, or None."""
        return _linked_release(self.current)

    def release_ids(self) -> list[str]:
        """Complete release dirs (not .partial), oldest id first."""
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir() if p.is_dir() and RELEASE_ID.match(p.name))


def _linked_release(link: Path) -> str | None:
    """The release id the link ``link`` points at, or None (no link, not a release)."""
    try:
        name = Path(os.readlink(link)).name
    except OSError:
        return None
    return name if RELEASE_ID.match(name) else None
