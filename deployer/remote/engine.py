"""The host engine seen from the controller: uploaded once, run one-shot or as a session."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from deployer.builder.manifest import host_config
from deployer.config import Config
from deployer.errors import HostError, RemoteError
from deployer.remote.session import EngineSession, OnEvent
from deployer.remote.ssh import Connection
from deployer.runinfo import RunInfo


def extract_engine(artifact: Path, dest: Path) -> Path:
    """The artifact's own engine: host and controller never disagree about versions."""
    with tarfile.open(artifact) as tar:
        member = tar.getmember("engine.pyz")
        dest.write_bytes(tar.extractfile(member).read())
    return dest


class RemoteEngine:
    def __init__(self, conn: Connection, config: Config, engine: Path, run: RunInfo):
        self.conn, self.config, self.engine, self.run = conn, config, engine, run
        self.host_config = host_config(config)
        digest = hashlib.sha256(engine.read_bytes()).hexdigest()[:16]
        self.incoming = f"{config.app.base}/incoming"
        self.remote_path = f"{self.incoming}/engine-{digest}.pyz"

    def ensure_uploaded(self) -> None:
        try:
            present = self.conn.exists(self.remote_path)
        except OSError:
            present = False
        if present:
            return
        if not self.conn.exists(self.incoming):
            raise RemoteError(
                f"{self.conn.target.label}: {self.incoming} does not exist: run "
                "`deployer host setup` once for this host"
            )
        self.conn.upload(self.engine, self.remote_path)

    def argv(self, *args: str) -> list[str]:
        return [
            self.config.target.interpreter,
            self.remote_path,
            "--config-json",
            json.dumps(self.host_config, separators=(",", ":")),
            "--actor",
            self.run.actor,
            *(["--run-url", self.run.url] if self.run.url else []),
            *args,
        ]

    def command(self, *args: str, timeout: float = 300) -> list[dict]:
        """Run one engine subcommand; its events, or HostError with its last error line."""
        self.ensure_uploaded()
        code, out, err = self.conn.run(self.argv(*args), timeout=timeout)
        events = []
        for line in out.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        if code != 0:
            failed = [e for e in events if e.get("status") == "fail"]
            detail = failed[-1]["detail"] if failed else (err.strip().splitlines() or ["failed"])[-1]
            raise HostError(f"{self.conn.target.label}: {args[0]}: {detail}")
        return events

    def session(self, on_event: OnEvent, lock_wait: float = 0.0) -> EngineSession:
        self.ensure_uploaded()
        session = EngineSession(self.conn, self.argv("--lock-wait", str(lock_wait), "serve"), on_event)
        session.wait_ready()
        return session
