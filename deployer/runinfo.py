"""Who runs this deploy and where its log is: for the audit log, lock holder, notifications."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RunInfo:
    actor: str
    url: str | None = None
    ref: str | None = None

    @classmethod
    def from_env(cls, environ=None) -> RunInfo:
        env = os.environ if environ is None else environ
        url = None
        if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        actor = env.get("GITHUB_ACTOR") or _local_user()
        return cls(actor=actor, url=env.get("DEPLOYER_RUN_URL") or url, ref=env.get("GITHUB_REF"))


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
