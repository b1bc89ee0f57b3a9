"""The host engine seen from the controller: run one-shot or as a session, uploaded the
first time a start finds it missing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from deployer.errors import HOST_ERRORS, HostError, RemoteError
from deployer.host.contract import HostConfig, Status, engine_argv, parse_events
from deployer.remote.session import EngineSession, OnEvent
from deployer.remote.ssh import Connection
from deployer.runinfo import RunInfo

#: python3's exit status when the script it is given cannot be opened (or a usage error:
#: which of the two is asked of the host only then)
PYTHON_CANNOT_OPEN = 2


class RemoteEngine:
    """One engine zipapp on one host, started with this deploy's host config."""

    def __init__(self, conn: Connection, config: HostConfig, engine: Path, run: RunInfo):
        self.conn, self.config, self.engine, self.run = conn, config, engine, run
        digest = hashlib.sha256(engine.read_bytes()).hexdigest()[:16]
        self.incoming = f"{config.base_path}/incoming"
        self.remote_path = f"{self.incoming}/engine-{digest}.pyz"

    def upload(self) -> None:
        """Put the engine on the host (once: its name is its digest)."""
        if not self.conn.exists(self.incoming):
            raise RemoteError(
                f"{self.incoming} does not exist: run `deployer host setup` once for this host",
                host=self.conn.target.label,
            )
        self.conn.upload(self.engine, self.remote_path)

    def _missing(self, exit_code: int | None) -> bool:
        """Whether a start that failed before any event failed because the engine is not on
        the host yet: asked only then, so a start costs no round trip to check first."""
        if exit_code != PYTHON_CANNOT_OPEN:
            return False
        try:
            return not self.conn.exists(self.remote_path)
        except OSError:
            return True

    def argv(self, *args: str) -> list[str]:
        return engine_argv(
            self.config.interpreter,
            self.remote_path,
            self.config,
            *args,
            actor=self.run.actor,
            run_url=self.run.url,
        )

    def command(self, *args: str, stdin: bytes | None = None, timeout: float = 300) -> list[dict]:
        """Run one engine subcommand; its events, or its error (the engine's last failure)."""

        def run():
            result = self.conn.run(self.argv(*args), timeout=timeout, stdin=stdin, step=args[0])
            return result, parse_events(result.stdout)

        result, events = run()
        if not result.ok and not events and self._missing(result.exit_code):
            self.upload()
            result, events = run()
        if not result.ok:
            failed = [e for e in events if e.get("status") == Status.FAIL]
            if not failed:
                result.check()
            cls = HOST_ERRORS.get(failed[-1].get("error", ""), HostError)
            raise cls(str(failed[-1].get("detail")), host=self.conn.target.label, step=args[0])
        return events

    def session(self, on_event: OnEvent, lock_wait: float = 0.0) -> EngineSession:
        argv = self.argv("--lock-wait", str(lock_wait), "serve")
        session = EngineSession(self.conn, argv, on_event)
        try:
            session.wait_ready()
        except RemoteError:
            if session.lines or not self._missing(session.exit_code()):
                raise
            session.close(bye=False)
            self.upload()
            session = EngineSession(self.conn, argv, on_event)
            session.wait_ready()
        return session
