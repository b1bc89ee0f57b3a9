"""Get a staging guest ready for deploys the way an admin would: `deployer host setup`.

Root-only steps inside the guest go through the harness (nsenter), never through the
deploy user: the engine's ``setup`` runs as root there with the repo's templates.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from deployer.config import load_config
from deployer.provision import Trust, bundle, setup_argv

SETUP_DIR = "/root/deployer-setup"


def host_setup(
    staging, config_path: Path, authorized_key: str | None = None, trust: Trust | None = None
) -> list[dict]:
    """Run `deployer host setup` inside the guest as root; returns its events.

    ``authorized_key``: a public key to authorize for the deploy user as well (one CI
    key for several hosts). ``trust``: the keys trusted to sign artifacts (`--trust-key`,
    `--allow-unsigned`).
    """
    config = load_config(config_path, environ={})
    with tempfile.TemporaryDirectory() as tmp:
        root = bundle(config, config_path, Path(tmp))
        staging.exec(["mkdir", "-p", f"{SETUP_DIR}/packaging"])
        for f in sorted(root.rglob("*")):
            if f.is_file():
                staging.push(f"{SETUP_DIR}/{f.relative_to(root).as_posix()}", f.read_bytes())
    if authorized_key:
        staging.push(f"{SETUP_DIR}/authorized_key.pub", authorized_key.encode())
    trust = trust or Trust()
    for name, key in trust.files().items():
        staging.push(f"{SETUP_DIR}/{name}", key.read_bytes())
    argv = setup_argv("python3", SETUP_DIR, config.host_config(), authorized_key, trust)
    proc = staging.exec(argv, check=False, timeout=120)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        raise RuntimeError(f"host setup failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return events


def deploy_env(staging, extra: dict | None = None) -> dict:
    """Environment a CI job would set to deploy to this guest."""
    return {
        "DEPLOYER_HOSTS": f"{staging.user}@{staging.host}:{staging.port}",
        "DEPLOYER_SSH_KEY_FILE": staging.key_path,
        "DEPLOYER_KNOWN_HOSTS_FILE": staging.known_hosts_path,
        **(extra or {}),
    }
