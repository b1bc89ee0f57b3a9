"""Settings, read from the environment. Every one has a default, so the service starts
with no configuration at all."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfigError", "Settings", "load_settings"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ConfigError(Exception):
    """The environment does not describe a valid configuration (names the variable)."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    #: where the notes live; relative paths are taken from the working directory
    data_dir: Path
    log_level: str

    @property
    def database(self) -> Path:
        return self.data_dir / "notes.sqlite3"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """:class:`Settings` from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    host = env.get("HOST", "127.0.0.1").strip()
    port = env.get("PORT", "8000").strip()
    data_dir = env.get("DATA_DIR", "data").strip()
    log_level = env.get("LOG_LEVEL", "info").strip().lower()
    if not host:
        raise ConfigError("HOST: must not be empty")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"PORT: {port!r} is not a port number (1..65535)")
    if not data_dir:
        raise ConfigError("DATA_DIR: must not be empty")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
    # resolved once at start: on a deployer host the working directory is the release,
    # where data/ links to the shared folder that outlives every release
    return Settings(host, int(port), Path(data_dir).resolve(), log_level)
