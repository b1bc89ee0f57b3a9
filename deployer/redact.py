"""No step prints a secret: every .env value and secret input is masked everywhere."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from deployer.host.envfile import env_values
from deployer.host.masking import mask, secret_forms

# environment variables whose values are secrets whenever they are set
SECRET_VARIABLES = (
    "DEPLOYER_SSH_KEY",
    "DEPLOYER_SSH_KEY_PASSPHRASE",
    "DEPLOYER_DOTENV",
    "DEPLOYER_KNOWN_HOSTS",
)
# set (1) by CI when DEPLOYER_HOSTS came from a secret: every host and address is masked
HOSTS_SECRET = "DEPLOYER_HOSTS_SECRET"


def host_values(spec: str) -> list[str]:
    """Each ``[user@]address[:port]`` of a DEPLOYER_HOSTS value, and its address."""
    from deployer.config import parse_hosts
    from deployer.errors import ConfigError

    values = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        values.append(item)
        with contextlib.suppress(ConfigError):  # unparsable: masked whole (loading names the error)
            values += [h["address"] for h in parse_hosts(item)]
    return values


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set = set()
        self.add(secrets)

    def add(self, values: Iterable[str]) -> None:
        for v in values:
            self.secrets |= secret_forms(v)  # the engine's rule: one admission for both halves

    def add_env(self, text: str, public: Iterable[str] = ()) -> None:
        """Every value of a .env but those of ``public`` keys, as systemd would read them."""
        self.add(env_values(text, public))

    def add_from_environ(self, names: Iterable[str], environ=None) -> None:
        env = os.environ if environ is None else environ
        self.add(env[n] for n in names if env.get(n))

    def add_secret_hosts(self, environ=None) -> None:
        """Every host and address of DEPLOYER_HOSTS, when DEPLOYER_HOSTS_SECRET says it is a secret."""
        env = os.environ if environ is None else environ
        if env.get(HOSTS_SECRET, "").lower() in ("1", "true") and env.get("DEPLOYER_HOSTS"):
            self.add(host_values(env["DEPLOYER_HOSTS"]))

    def __call__(self, text: str) -> str:
        return mask(text, self.secrets)  # the same masking the host engine applies
