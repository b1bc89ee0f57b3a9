"""No step prints a secret: every .env value and secret input is masked everywhere."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from deployer.host.envfile import env_values
from deployer.host.events import redact

# environment variables whose values are secrets whenever they are set
SECRET_VARIABLES = (
    "DEPLOYER_SSH_KEY",
    "DEPLOYER_SSH_KEY_PASSPHRASE",
    "DEPLOYER_DOTENV",
    "DEPLOYER_KNOWN_HOSTS",
)
MIN_SECRET = 4


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set = set()
        self.add(secrets)

    def add(self, values: Iterable[str]) -> None:
        for v in values:
            if v and len(v) >= MIN_SECRET:
                self.secrets.add(v)
                self.secrets.add(json.dumps(v)[1:-1])
                for line in v.splitlines():  # multi-line secrets (keys) line by line too
                    if len(line.strip()) >= 8:
                        self.secrets.add(line.strip())

    def add_env(self, text: str) -> None:
        self.add(env_values(text))

    def add_from_environ(self, names: Iterable[str], environ=None) -> None:
        env = os.environ if environ is None else environ
        self.add(env[n] for n in names if env.get(n))

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)  # the same masking the host engine applies

    def github_masks(self) -> list[str]:
        """``::add-mask::`` lines announcing every secret to GitHub Actions."""
        return [f"::add-mask::{v}" for v in sorted(self.secrets) if "\n" not in v]
