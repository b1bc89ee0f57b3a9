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


class RequestLoop:
    """``request_loop.py`` running inside a guest while something else happens (a deploy):
    ``start()``, then ``stop()`` returns its rows (see request_loop.py)."""

    SCRIPT = "/root/request_loop.py"
    STOP = "/run/request-loop.stop"

    def __init__(self, staging, url: str, every: float = 0.02):
        self.staging, self.url, self.every = staging, url, every
        self._out: dict = {}
        self._thread = None

    def start(self) -> RequestLoop:
        import threading

        self.staging.push(self.SCRIPT, Path(__file__).with_name("request_loop.py").read_bytes())
        self.staging.exec(["rm", "-f", self.STOP])
        argv = ["python3", self.SCRIPT, self.url, "--every", str(self.every), "--until", self.STOP]

        def run() -> None:
            try:
                self._out["proc"] = self.staging.exec(argv, check=False, timeout=900)
            except Exception as e:  # handed to stop()
                self._out["error"] = e

        self._thread = threading.Thread(target=run, daemon=True, name="request-loop")
        self._thread.start()
        return self

    def stop(self) -> list[list]:
        self.staging.exec(["touch", self.STOP])
        assert self._thread is not None
        self._thread.join(timeout=60)
        if "error" in self._out:
            raise self._out["error"]
        proc = self._out.get("proc")
        if proc is None or proc.returncode != 0:
            raise RuntimeError(f"request loop failed: {getattr(proc, 'stderr', 'still running')}")
        return json.loads(proc.stdout)
