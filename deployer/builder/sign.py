"""Signing the manifest: ``ssh-keygen -Y sign`` in deployer's own namespace.

The key is a private key file (passphrase asked on the terminal, if it has one), or a
public key whose private half an ssh-agent holds (``SSH_AUTH_SOCK``). An ed25519 or RSA
signature of the same bytes by the same key is the same, so a signed build stays
byte-reproducible.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from deployer.errors import BuildError, UsageError
from deployer.host.contract import SIGNATURE_NAMESPACE
from deployer.host.signature import Signature, parse_signature


def signing_key(path: str | os.PathLike, where: str) -> Path:
    """The key file ``where`` (an option or a config key) names, or ``UsageError``."""
    key = Path(os.path.expanduser(path))
    if not key.is_file():
        raise UsageError(f"{where}: {key}: no such key file")
    return key


def sign(data: bytes, key: Path) -> bytes:
    """The armored signature of ``data`` by ``key`` (``BuildError`` with ssh-keygen's reason)."""
    argv = ["ssh-keygen", "-q", "-Y", "sign", "-n", SIGNATURE_NAMESPACE, "-f", str(key)]
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise BuildError("ssh-keygen is not installed: signing needs OpenSSH (>= 8.2)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"ssh-keygen -Y sign -f {key}: no answer in 120 s") from None
    said = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not proc.stdout.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        reason = said[-1] if said else f"exit {proc.returncode}"
        raise BuildError(f"signing with {key} failed: {reason}")
    return proc.stdout


def describe(armored: bytes) -> Signature:
    """What the signature just made says of its key (for the build's report)."""
    return parse_signature(armored, "the new signature")
