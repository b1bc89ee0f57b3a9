"""What a run works on, from the config and the command line: the hosts and the .env."""

from __future__ import annotations

import os
from pathlib import Path

from deployer.config import Config, resolve
from deployer.errors import UsageError
from deployer.remote.ssh import Endpoint


def endpoints(config: Config, only: list[str] | None = None) -> list[Endpoint]:
    """The configured hosts (or ``only`` those named) as SSH endpoints."""
    if not config.hosts:
        raise UsageError("hosts: no hosts configured (deploy.toml [[hosts]] or DEPLOYER_HOSTS)")
    found = [Endpoint(h.label, h.address, h.port, config.host_user(h)) for h in config.hosts]
    if only:
        unknown = [o for o in only if o not in {t.label for t in found} | {t.address for t in found}]
        if unknown:
            raise UsageError(f"--host {unknown[0]}: not among the configured hosts")
        found = [t for t in found if t.label in only or t.address in only]
    return found


def env_text(config: Config, config_path: Path, env_file: str | None) -> str | None:
    """The .env to install: --env-file, else env.file, else the variable env.from_variable."""
    if env_file or config.env.file:
        path = Path(env_file) if env_file else resolve(config_path, config.env.file or "")
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            key = "--env-file" if env_file else "env.file"
            raise UsageError(f"{key}: {path}: {e.strerror}") from None
    if config.env.from_variable:
        value = os.environ.get(config.env.from_variable)
        if not value:
            raise UsageError(f"env.from_variable: {config.env.from_variable} is not set")
        return value
    return None
