"""deploy / rollback as named stages over hosts: connect, preflight, upload, stage, switch.

Every host is staged before any host is switched; hosts are then switched one after
another, stopping at the first that fails its health gate (the engine has already
reverted it). The controller never edits host files itself: the engine does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deployer.check import unit_drift
from deployer.config import Config, resolve
from deployer.errors import DeployerError, HealthError, RemoteError, UsageError
from deployer.host.artifact import verify_artifact
from deployer.output import Reporter
from deployer.remote.engine import RemoteEngine, extract_engine
from deployer.remote.session import EngineSession
from deployer.remote.ssh import Connection, Credentials, Target
from deployer.remote.upload import write_thin
from deployer.runinfo import RunInfo

OUTCOMES = ("success", "reverted", "revert-failed")


JOURNAL_LINES = 200


@dataclass
class HostResult:
    label: str
    result: str = "pending"  # staged | success | reverted | failed | not switched | unknown
    release: str | None = None
    version: str | None = None
    detail: str = ""
    healthy_s: float | None = None
    gate_s: float | None = None
    exit_code: int = 0
    journal: list[str] | None = None  # the excerpt the host kept for ``release``


def journal(session: EngineSession, release: str | None) -> list[str] | None:
    """The journal excerpt the host kept for ``release``, asked before ``bye``: no second
    connection for the audit log. None if there is none (the audit log says so)."""
    if not release:
        return None
    try:
        return session.call("logs", release=release, lines=JOURNAL_LINES)["lines"]
    except DeployerError:
        return None


@dataclass
class Summary:
    action: str
    release: str | None
    version: str | None
    hosts: list[HostResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        good = ("success", "staged")
        return bool(self.hosts) and all(h.result in good for h in self.hosts)

    @property
    def exit_code(self) -> int:
        """0 ok; 2 when a host was refused for bad input (host key); 1 otherwise."""
        if self.ok:
            return 0
        return max([h.exit_code for h in self.hosts] + [1])


def artifact_templates(artifact: Path) -> dict:
    """The unit, launcher and sudoers templates the artifact carries (packaging/*)."""
    import tarfile

    from deployer.host.setup import TEMPLATES

    with tarfile.open(artifact) as tar:
        return {key: tar.extractfile(f"packaging/{name}").read().decode() for key, name in TEMPLATES.items()}


def targets(config: Config, only: list[str] | None = None) -> list[Target]:
    if not config.hosts:
        raise UsageError("hosts: no hosts configured (deploy.toml [[hosts]] or DEPLOYER_HOSTS)")
    found = [Target(h.label, h.address, h.port, config.host_user(h)) for h in config.hosts]
    if only:
        unknown = [o for o in only if o not in {t.label for t in found} | {t.address for t in found}]
        if unknown:
            raise UsageError(f"--host {unknown[0]}: not among the configured hosts")
        found = [t for t in found if t.label in only or t.address in only]
    return found


def env_text(config: Config, config_path: Path, env_file: str | None) -> str | None:
    """The .env to install: --env-file, else env.file, else the variable env.from_variable."""
    if env_file or config.env.file:
        path = Path(env_file) if env_file else resolve(config_path, config.env.file)
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


class Pipeline:
    def __init__(
        self,
        config: Config,
        config_path: Path,
        reporter: Reporter,
        run: RunInfo | None = None,
        accept_new: bool = False,
    ):
        self.config, self.config_path, self.reporter = config, config_path, reporter
        self.run = run or RunInfo.from_env()
        ssh = config.ssh
        self.creds = Credentials.from_env(
            ssh.key_file, ssh.known_hosts, accept_new or ssh.accept_new_host_keys, ssh.connect_timeout
        )

    # ------------------------------------------------------------------ building blocks
    def connect(self, target: Target) -> Connection:
        conn = Connection(target, self.creds)
        if conn.accepted_key is not None:
            self._pin(target, conn.accepted_key)
        return conn

    def _pin(self, target: Target, key) -> None:
        from deployer.remote.ssh import fingerprint, host_key_name

        self.reporter.say(f"{target.label}: accepted new host key {fingerprint(key)} (--accept-new)")
        if self.creds.known_hosts_file:
            path = Path(os.path.expanduser(self.creds.known_hosts_file))
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{host_key_name(target)} {key.get_name()} {key.get_base64()}\n")

    def remote(self, conn: Connection, engine: Path) -> RemoteEngine:
        return RemoteEngine(conn, self.config, engine, self.run)

    def on_each(self, hosts: list[Target], fn: Callable[[Target], HostResult]) -> list[HostResult]:
        """Run ``fn`` for every host in parallel; errors become that host's failed result."""

        def guarded(t: Target) -> HostResult:
            try:
                return fn(t)
            except DeployerError as e:
                return HostResult(
                    t.label, "failed", detail=self.reporter.redactor(str(e)), exit_code=e.exit_code
                )

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            return list(pool.map(guarded, hosts))

    # ------------------------------------------------------------------ deploy
    def deploy(
        self,
        artifact: Path,
        env: str | None,
        hosts: list[Target],
        dry_run: bool = False,
        lock_wait: float = 0.0,
    ) -> Summary:
        started = time.monotonic()
        # shape, lock and sizes at once; every hash while the hosts connect, and before
        # anything is sent to them
        manifest = verify_artifact(str(artifact), hash_all=False)
        rid, version = manifest["release_id"], manifest["version"]
        if env is not None:
            self.reporter.redactor.add_env(env)
        summary = Summary("dry-run" if dry_run else "deploy", rid, version)
        sessions: dict = {}
        with (
            tempfile.TemporaryDirectory(prefix="deployer-") as tmp,
            ThreadPoolExecutor(max_workers=1) as hashing,
        ):
            verified = hashing.submit(verify_artifact, str(artifact))
            engine = extract_engine(artifact, Path(tmp) / "engine.pyz")

            templates = artifact_templates(artifact)

            def stage(t: Target) -> HostResult:
                conn = self.connect(t)
                drift = unit_drift(conn, self.config, templates)
                if drift:  # `check` fails on drift; a deploy only warns
                    self.reporter.event(
                        t.label, {"step": "unit", "status": "info", "detail": "WARNING: " + "; ".join(drift)}
                    )
                remote = self.remote(conn, engine)
                session = remote.session(self.reporter.event, lock_wait)
                sessions[t.label] = (conn, session, remote)
                pre = session.call("preflight", manifest=manifest, upload=True)
                verified.result()
                # a host that lacks every file gets the artifact itself, not a copy of it
                thin = (
                    artifact
                    if len(pre["missing"]) == len(manifest["files"])
                    else write_thin(artifact, pre["missing"], Path(tmp) / f"{t.label}.tar")
                )
                upload = f"{remote.incoming}/{rid}.tar"
                with self.reporter.step(
                    t.label, "upload", f"{len(pre['missing'])} files, {thin.stat().st_size / 1e6:.1f} MB"
                ):
                    conn.upload(thin, upload)
                session.call("stage", artifact=upload)
                return HostResult(t.label, "staged", rid, version)

            try:
                summary.hosts = self.on_each(hosts, stage)
                verified.result()  # a damaged artifact fails the deploy, whatever the hosts did
                staged_all = all(h.result == "staged" for h in summary.hosts)
                if not dry_run and staged_all:
                    self._switch_in_turn(summary, sessions, env)
                elif not dry_run:
                    for h in summary.hosts:
                        if h.result == "staged":
                            h.result, h.detail = "not switched", "another host failed to stage"
            finally:
                for conn, session, _ in sessions.values():
                    session.close(bye=session.dead is None)
                    conn.close()
        summary.seconds = time.monotonic() - started
        return summary

    def _switch_in_turn(self, summary: Summary, sessions: dict, env: str | None) -> None:
        stop = False
        for h in summary.hosts:
            if stop:
                h.result, h.detail = "not switched", "stopped after a failed host"
                continue
            conn, session, remote = sessions[h.label]
            try:
                record = session.call("activate", release=h.release, env=env)
                h.result, h.healthy_s, h.gate_s = "success", record.get("healthy_s"), record.get("gate_s")
                h.journal = journal(session, h.release)
                session.call("prune")
            except HealthError as e:
                h.result, h.detail, stop = "reverted", self.reporter.redactor(str(e)), True
                h.journal = journal(session, h.release)
                session.call("prune")  # a bad release never holds a slot a good one needs
            except RemoteError as e:
                if not any(ev.get("step") == "switch" and ev.get("status") == "ok" for ev in session.lines):
                    h.result, h.detail, stop = "failed", str(e), True
                    continue
                self.reporter.say(
                    f"{h.label}: link lost after the switch; the engine finishes "
                    "the health gate alone - reading its outcome"
                )
                self._outcome_after_loss(h, conn.target, remote.engine)
                stop = h.result != "success"
            except DeployerError as e:
                h.result, h.detail, stop = "failed", self.reporter.redactor(str(e)), True

    def _outcome_after_loss(self, h: HostResult, target: Target, engine: Path) -> None:
        health = self.config.health
        deadline = time.monotonic() + health.timeout + health.watch + 60
        last_error = ""
        while time.monotonic() < deadline:
            try:
                conn = self.connect(target)
                try:
                    events = self.remote(conn, engine).command("history", "--last", "10")
                finally:
                    conn.close()
                records = [ev.get("record", {}) for ev in events]
                # the outcome of THIS activation: recorded after its last "live" record
                lives = [
                    i for i, r in enumerate(records) if r.get("to") == h.release and r.get("result") == "live"
                ]
                for rec in records[lives[-1] + 1 :] if lives else []:
                    if rec.get("to") == h.release and rec.get("result") in OUTCOMES:
                        h.result = rec["result"]
                        h.healthy_s, h.gate_s = rec.get("healthy_s"), rec.get("gate_s")
                        h.detail = f"outcome read back after reconnecting: {rec['result']}" + (
                            f" ({rec['reason']})" if rec.get("reason") else ""
                        )
                        return
            except DeployerError as e:
                last_error = str(e)
            time.sleep(2)
        h.result, h.detail = "unknown", f"no recorded outcome yet: {last_error}"

    # ------------------------------------------------------------------ rollback
    def rollback(
        self, to: str | None, hosts: list[Target], lock_wait: float = 0.0, engine: Path | None = None
    ) -> Summary:
        started = time.monotonic()
        summary = Summary("rollback", to, None)

        def roll(t: Target) -> HostResult:
            conn = self.connect(t)
            try:
                session: EngineSession = self.remote(conn, engine).session(self.reporter.event, lock_wait)
                try:
                    record = session.call("rollback", to=to)
                    kept = journal(session, record.get("to"))
                finally:
                    session.close()
            except HealthError as e:
                return HostResult(t.label, "reverted", detail=self.reporter.redactor(str(e)))
            finally:
                conn.close()
            return HostResult(
                t.label,
                "success",
                record.get("to"),
                record.get("version"),
                healthy_s=record.get("healthy_s"),
                gate_s=record.get("gate_s"),
                journal=kept,
            )

        summary.hosts = self.on_each(hosts, roll)
        summary.seconds = time.monotonic() - started
        return summary

    # ------------------------------------------------------------------ one-shot
    def command(self, hosts: list[Target], engine: Path, *args: str) -> tuple[dict, int]:
        """Run one engine subcommand on every host.

        Returns (label -> its events, or its error line; the exit code: 0, or the worst
        failure's).
        """
        out = {}
        code = 0

        def one(t: Target) -> HostResult:
            conn = self.connect(t)
            try:
                out[t.label] = self.remote(conn, engine).command(*args)
            finally:
                conn.close()
            return HostResult(t.label, "success")

        for r in self.on_each(hosts, one):
            if r.result == "failed":
                out[r.label] = r.detail
                code = max(code, r.exit_code or 1)
        return out, code
