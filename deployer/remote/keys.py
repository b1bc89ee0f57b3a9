"""Host keys and the deploy key: what pins a host and what we authenticate with.

Host keys come from a known_hosts file or secret (``DEPLOYER_KNOWN_HOSTS``): an unknown
key is refused, trust-on-first-use only with ``accept_new``. The deploy key comes from
``DEPLOYER_SSH_KEY``, a key file, or else the ssh-agent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from deployer.errors import HostKeyError, UsageError

if TYPE_CHECKING:
    from deployer.remote.ssh import Credentials, Endpoint


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_name(t: Endpoint) -> str:
    return t.address if t.port == 22 else f"[{t.address}]:{t.port}"


def load_host_keys(creds: Credentials) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if creds.known_hosts_file:
        path = os.path.expanduser(creds.known_hosts_file)
        try:
            keys.load(path)
        except FileNotFoundError:
            if not creds.accept_new:
                raise UsageError(f"ssh.known_hosts: {path} does not exist") from None
        except (OSError, paramiko.SSHException) as e:
            raise UsageError(f"ssh.known_hosts: cannot read {path}: {e}") from None
    if creds.known_hosts_text:
        for line in creds.known_hosts_text.splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            if entry is not None:
                for name in entry.hostnames:
                    keys.add(name, entry.key.get_name(), entry.key)
    return keys


def load_private_key(creds: Credentials) -> paramiko.PKey | None:
    """The deploy key from a CI secret or a file; None means: ask the agent."""
    text = creds.key_text
    where = "DEPLOYER_SSH_KEY"
    if text is None and creds.key_file:
        where = f"ssh.key_file {creds.key_file}"
        try:
            text = Path(os.path.expanduser(creds.key_file)).read_text()
        except OSError as e:
            raise UsageError(f"{where}: {e.strerror}") from None
    if text is None:
        if not creds.agent_socket:
            raise UsageError(
                "no deploy key: set DEPLOYER_SSH_KEY or ssh.key_file "
                "(DEPLOYER_SSH_KEY_FILE), or add the key to an ssh-agent "
                "(SSH_AUTH_SOCK is not set)"
            )
        return None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=creds.passphrase)
        except paramiko.PasswordRequiredException:
            raise UsageError(f"{where}: the key is encrypted; set DEPLOYER_SSH_KEY_PASSPHRASE") from None
        except paramiko.SSHException:
            continue
    raise UsageError(f"{where}: not a private key paramiko can read (ed25519, ecdsa or rsa)")


class PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown keys unless accept_new; record a newly accepted key."""

    def __init__(self, target: Endpoint, accept_new: bool):
        self.target, self.accept_new = target, accept_new
        self.accepted: paramiko.PKey | None = None

    def missing_host_key(self, client, hostname, key):
        if self.accept_new:
            self.accepted = key
            return
        raise HostKeyError(
            f"{self.target.label} ({hostname}): host key {key.get_name()} "
            f"{fingerprint(key)} is not in known_hosts; pin it (ssh-keyscan, "
            "then check the fingerprint) or pass --accept-new"
        )
