"""deploy / rollback as named stages over hosts, read like the engine's own steps.

    plan -> open every host (in parallel) -> stage the first wave -> switch it; once it
    answers, stage the others while its gate is watched -> the later waves -> close

Opening a host is: connect, start its engine (only once the artifact's every hash is
checked), preflight, unit drift; staging it: upload what its cache lacks, stage. No host
is switched until every host is open and preflighted and the first wave (the canary) is
staged; the canary is then switched, and once its new release answers, the other hosts
stage while its gate is watched: their uploads and smoke tests take the gate's time
instead of adding to it, and a release that never answers reaches no other host. Hosts
are switched in the waves of ``rollout.py``: each wave switched and gated in parallel
once its hosts are staged, stopping at the first wave with a failure (its failed hosts'
engines have already reverted them; a host that failed to stage fails its wave before
any of it is switched; later waves are not switched). A rollback locks every host first
and follows the same plan. The controller never edits host files itself: the engine does.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deployer.artifact import Artifact
from deployer.config import Config
from deployer.errors import DeployerError, HealthError, RemoteError, RevertFailedError
from deployer.host.contract import (
    JOURNAL_LINES,
    Command,
    Status,
    Step,
)
from deployer.host.patterns import check_release_id
from deployer.output import Reporter
from deployer.recovery import read_back_outcome
from deployer.remote.engine import RemoteEngine
from deployer.remote.session import EngineSession
from deployer.remote.ssh import Connection, Credentials, Endpoint, fingerprint, host_key_name
from deployer.remote.trust import check_trusted
from deployer.rollout import describe, roll_out, waves
from deployer.runinfo import RunInfo
from deployer.summary import HostResult, Result, Summary


def journal(session: EngineSession, release: str | None) -> list[str] | None:
    """The journal excerpt the host kept for ``release``, asked before ``bye``: no second
    connection for the audit log. None if there is none (the audit log says so)."""
    if not release:
        return None
    try:
        return session.call(Command.LOGS, release=release, lines=JOURNAL_LINES)["lines"]
    except DeployerError:
        return None


def _first(answer: Future, value: bool) -> None:
    """``answer`` is ``value`` unless it has one already."""
    with contextlib.suppress(InvalidStateError):
        answer.set_result(value)


@dataclass
class HostRun:
    """One host's part in a deploy or rollback: its connection, engine session, the
    release it ran when the lock was taken, and its result so far."""

    endpoint: Endpoint
    result: HostResult
    conn: Connection | None = None
    remote: RemoteEngine | None = None
    session: EngineSession | None = None
    current: str | None = None  # `current` on the host when its engine took the lock
    missing: list[str] = field(default_factory=list)  # the artifact's files its cache lacks (preflight)
    #: whether the new release answered its health check after the switch (the engine's
    #: first ``healthy`` event: ok or fail); False when the switch ended without one
    came_up: Future = field(default_factory=Future)
    activated: bool = False  # an activation ended on it, its session still open (journal, prune)

    def settle(self) -> None:
        """Name the release the host runs now that its part is over: the new one when it
        succeeded; else the one it ran before (an engine that failed its gate switched
        back to it); unknown when the outcome could not be read back."""
        h = self.result
        if h.result == Result.SUCCESS:
            h.running = h.release
        elif h.result != Result.UNKNOWN:
            h.running = self.current

    def close(self) -> None:
        if self.session is not None:
            self.session.close(bye=self.session.dead is None)
        if self.conn is not None:
            self.conn.close()


@dataclass
class Plan:
    """What a deploy works from: the artifact, its engine and templates, the .env."""

    artifact: Artifact
    engine: Path
    templates: dict[str, str]
    env: str | None
    verified: Future
    workdir: Path
    lock_wait: float


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
    def connect(self, target: Endpoint) -> Connection:
        conn = Connection(target, self.creds)
        if conn.accepted_key is not None:
            self._pin(target, conn.accepted_key)
        return conn

    def _pin(self, target: Endpoint, key) -> None:
        self.reporter.say(f"{target.label}: accepted new host key {fingerprint(key)} (--accept-new)")
        if self.creds.known_hosts_file:
            path = Path(os.path.expanduser(self.creds.known_hosts_file))
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{host_key_name(target)} {key.get_name()} {key.get_base64()}\n")

    def remote(self, conn: Connection, engine: Path) -> RemoteEngine:
        return RemoteEngine(conn, self.config.host_config(), engine, self.run)

    def failed(self, h: HostResult, error: DeployerError) -> HostResult:
        """``h`` marked failed by ``error``; what else it says (its release, its wave) is kept."""
        h.result, h.detail, h.exit_code = Result.FAILED, self.reporter.redactor(str(error)), error.exit_code
        return h

    def on_each(self, hosts: list[Endpoint], fn: Callable[[Endpoint], HostResult]) -> list[HostResult]:
        """Run ``fn`` for every host in parallel; errors become that host's failed result."""

        def guarded(t: Endpoint) -> HostResult:
            try:
                return fn(t)
            except DeployerError as e:
                return self.failed(HostResult(t.label), e)

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            return list(pool.map(guarded, hosts))

    # ------------------------------------------------------------------ deploy
    def deploy(
        self,
        artifact: Path,
        env: str | None,
        hosts: list[Endpoint],
        dry_run: bool = False,
        lock_wait: float = 0.0,
    ) -> Summary:
        started = time.monotonic()
        opened = Artifact(artifact)  # shape, lock and sizes; every hash below, in parallel
        if env is not None:
            self.reporter.redactor.add_env(env, self.config.env.public)
        summary = Summary("dry-run" if dry_run else "deploy", opened.release_id, opened.version)
        runs = [HostRun(t, HostResult(t.label)) for t in hosts]
        with (
            tempfile.TemporaryDirectory(prefix="deployer-") as tmp,
            ThreadPoolExecutor(max_workers=1) as hashing,
        ):
            plan = Plan(
                artifact=opened,
                engine=opened.engine(Path(tmp) / "engine.pyz"),
                templates=opened.templates(),
                env=env,
                verified=hashing.submit(opened.verify),
                workdir=Path(tmp),
                lock_wait=lock_wait,
            )
            try:
                self._each(runs, lambda run: self._open(plan, run))
                plan.verified.result()  # a damaged artifact fails the deploy, whatever the hosts did
                if dry_run:
                    locked = [r for r in runs if r.result.result == Result.LOCKED]
                    self._each(locked, lambda run: self._stage(plan, run))
                else:
                    summary.waves = self._stage_and_switch(plan, runs)
                    self._tidy(runs)
            finally:
                for r in runs:
                    r.close()
        return self._settled(summary, runs, started)

    def _stage_and_switch(self, plan: Plan, runs: list[HostRun]) -> list[list[str]]:
        """Stage the first wave; switch it, and once its new release answers on every host
        of it, stage every other host while its gate is watched; then the later waves, each
        once its hosts are staged. Returns the plan, as labels."""
        order = self._waves(runs)
        if self._all_ready(runs, Result.LOCKED):
            first, later = order[0], [r for wave in order[1:] for r in wave]
            self._each(first, lambda run: self._stage(plan, run))

            def stage_once_first_wave_up(run: HostRun) -> None:
                if all(r.came_up.result() for r in first):  # a release that never answered goes nowhere else
                    self._each([run], lambda run: self._stage(plan, run))

            with ThreadPoolExecutor(max_workers=max(1, len(later))) as pool:
                staging: dict[int, Future] = {}
                if all(r.result.result == Result.STAGED for r in first):
                    staging = {id(r): pool.submit(stage_once_first_wave_up, r) for r in later}

                def staged(run: HostRun) -> bool:  # waits for the host's staging to end
                    if id(run) in staging:
                        staging[id(run)].result()
                    return run.result.result == Result.STAGED

                self._roll_out(order, lambda run: self._switch(plan, run), staged)
        return self._labels(order)

    def _each(self, runs: list[HostRun], fn: Callable[[HostRun], None]) -> None:
        """``fn`` for every host's run in parallel; an error becomes that host's failed result."""

        def guarded(run: HostRun) -> None:
            try:
                fn(run)
            except DeployerError as e:
                self.failed(run.result, e)

        if runs:
            with ThreadPoolExecutor(max_workers=len(runs)) as pool:
                list(pool.map(guarded, runs))

    def _open(self, plan: Plan, run: HostRun) -> None:
        """Connect, start the engine (its lock taken), preflight, check the unit."""
        label, art = run.endpoint.label, plan.artifact
        run.conn = self.connect(run.endpoint)
        run.remote = self.remote(run.conn, plan.engine)
        plan.verified.result()  # nothing the artifact carries runs before every hash is checked
        # nor on a host that trusts keys, unless one of them signed it: checked here, before
        # the engine it carries starts there (which checks again)
        check_trusted(run.conn, art.signed(), str(art.path), self.config.app.name)
        run.session = session = run.remote.session(self._watching(run), plan.lock_wait)
        run.current = session.current
        pre = session.call(Command.PREFLIGHT, manifest=art.manifest, upload=True, templates=plan.templates)
        drift = pre["drift"]  # one round trip: the unit is compared with the artifact's templates too
        if drift:  # `check` fails on drift; a deploy only warns
            self.reporter.event(
                label, {"step": "unit", "status": Status.INFO, "detail": "WARNING: " + "; ".join(drift)}
            )
        run.missing = pre["missing"]
        h = run.result
        h.result, h.release, h.version = Result.LOCKED, art.release_id, art.version

    def _watching(self, run: HostRun) -> Callable[[str, dict], None]:
        """The reporter's event handler, noting when the host's new release first answers
        (or fails to) its health check after the switch."""

        def on_event(label: str, event: dict) -> None:
            if event.get("step") == Step.HEALTHY and event.get("status") in (Status.OK, Status.FAIL):
                _first(run.came_up, event["status"] == Status.OK)
            self.reporter.event(label, event)

        return on_event

    def _stage(self, plan: Plan, run: HostRun) -> None:
        """Upload what the host's cache lacks (its preflight said), stage."""
        label, art, session = run.endpoint.label, plan.artifact, run.session
        assert run.conn is not None and run.remote is not None and session is not None
        upload = art.thin(run.missing, plan.workdir / f"{label}.tar")
        remote_tar = f"{run.remote.incoming}/{art.release_id}.tar"
        with self.reporter.step(
            label, "upload", f"{len(run.missing)} files, {upload.stat().st_size / 1e6:.1f} MB"
        ):
            run.conn.upload(
                upload, remote_tar, callback=lambda done, total: self.reporter.progress(label, done, total)
            )
        session.call(Command.STAGE, artifact=remote_tar)
        run.result.result = Result.STAGED

    def _waves(self, runs: list[HostRun]) -> list[list[HostRun]]:
        """The hosts in the waves they are switched in (``rollout.waves``), each numbered."""
        rollout = self.config.rollout
        order = waves(runs, rollout.canary, rollout.wave)
        for n, wave in enumerate(order, 1):
            for r in wave:
                r.result.wave = n
        return order

    @staticmethod
    def _labels(order: list[list[HostRun]]) -> list[list[str]]:
        return [[r.endpoint.label for r in wave] for wave in order]

    @staticmethod
    def _all_ready(runs: list[HostRun], ready: str) -> bool:
        """True when every host is ``ready``; else the ready ones are marked not switched."""
        if all(r.result.result == ready for r in runs):
            return True
        for r in runs:
            if r.result.result == ready:
                r.result.result = Result.NOT_SWITCHED
                r.result.detail = "another host failed before any switch: not switched"
        return False

    def _roll_out(
        self,
        order: list[list[HostRun]],
        switch: Callable[[HostRun], bool],
        ready: Callable[[HostRun], bool] = lambda _: True,
    ) -> None:
        """Switch wave by wave, every host of a wave at once once it is ``ready`` (``switch``
        is True when the host is live and its gate closed); stop at the first wave with a
        failure: the hosts it never switched are marked so, once ``ready`` says where they are."""
        canary = self.config.rollout.canary
        if sum(map(len, order)) > 1:
            self.reporter.say(describe(self._labels(order), canary))
        stop, untouched = roll_out(order, switch, lambda r: r.endpoint.label, canary > 0, ready)
        for r in untouched:
            assert stop is not None
            ready(r)  # a host still staging ends first: staged, or failed
            if r.result.result != Result.FAILED:
                r.result.result, r.result.detail = Result.NOT_SWITCHED, stop.reason

    def _switch(self, plan: Plan, run: HostRun) -> bool:
        """Activate the release on one host; True when it is live and its gate closed."""
        try:
            return self._activate(plan, run)
        finally:
            _first(run.came_up, False)  # the switch ended before its release answered

    def _activate(self, plan: Plan, run: HostRun) -> bool:
        h, session = run.result, run.session
        assert session is not None and h.release is not None
        try:
            record = session.call(Command.ACTIVATE, release=h.release, env=plan.env)
            h.result, h.healthy_s, h.gate_s = Result.SUCCESS, record.get("healthy_s"), record.get("gate_s")
        except HealthError as e:
            self._reverted(h, e)
        except RemoteError as e:
            if not session.switched:
                h.result, h.detail = Result.FAILED, self.reporter.redactor(str(e))
                return False
            self.reporter.say(
                f"{h.label}: link lost after the switch; the engine finishes the health gate alone"
                " - reading its outcome"
            )
            self._outcome_after_loss(h, run.endpoint, plan.engine)
            return h.result == Result.SUCCESS
        except DeployerError as e:
            h.result, h.detail = Result.FAILED, self.reporter.redactor(str(e))
            return False
        run.activated = True
        return h.result == Result.SUCCESS

    def _reverted(self, h: HostResult, e: HealthError) -> None:
        """The gate failed: the engine switched back (or could not: ``RevertFailedError``)."""
        h.result = Result.REVERT_FAILED if isinstance(e, RevertFailedError) else Result.REVERTED
        h.detail = self.reporter.redactor(str(e))

    def _tidy(self, runs: list[HostRun], prune: bool = True) -> None:
        """After every wave, on each host an activation ended on (in parallel, off the
        waves' path): the journal excerpt of its release, and retention."""

        def tidy(run: HostRun) -> None:
            h, session = run.result, run.session
            assert session is not None
            h.journal = journal(session, h.release)
            if not prune:
                return
            try:
                session.call(Command.PRUNE)  # a bad release never holds a slot a good one needs
            except DeployerError as e:
                h.detail = "; ".join(filter(None, (h.detail, self.reporter.redactor(f"prune failed: {e}"))))

        self._each([r for r in runs if r.activated], tidy)

    def _outcome_after_loss(self, h: HostResult, target: Endpoint, engine: Path) -> None:
        """Reconnect until the host's history records how THIS activation ended."""
        health = self.config.health

        def connect() -> tuple[Connection, RemoteEngine]:
            conn = self.connect(target)
            return conn, self.remote(conn, engine)

        read_back_outcome(connect, h, time.monotonic() + health.timeout + health.watch + 60)

    # ------------------------------------------------------------------ rollback
    def rollback(
        self,
        to: str | None,
        hosts: list[Endpoint],
        lock_wait: float = 0.0,
        engine: Path | None = None,
    ) -> Summary:
        """Every host locked first (what it runs, from the lock's event), then rolled back in the
        deploy's waves; a host that fails stops the rollout like a failed gate."""
        if to is not None:
            check_release_id(to, "--to")
        started = time.monotonic()
        summary = Summary("rollback", to, None)
        assert engine is not None
        runs = [HostRun(t, HostResult(t.label)) for t in hosts]

        def lock(run: HostRun) -> None:
            run.conn = self.connect(run.endpoint)
            run.session = self.remote(run.conn, engine).session(self.reporter.event, lock_wait)
            run.current = run.session.current
            run.result.result = Result.LOCKED

        try:
            self._each(runs, lock)
            order = self._waves(runs)
            if self._all_ready(runs, Result.LOCKED):
                self._roll_out(order, lambda run: self._roll(run, to))
            summary.waves = self._labels(order)
            self._tidy(runs, prune=False)
        finally:
            for r in runs:
                r.close()
        return self._settled(summary, runs, started)

    @staticmethod
    def _settled(summary: Summary, runs: list[HostRun], started: float) -> Summary:
        """The run's summary once every host's part is over: each host's release named."""
        for r in runs:
            r.settle()
        summary.hosts = [r.result for r in runs]
        summary.seconds = time.monotonic() - started
        return summary

    def _roll(self, run: HostRun, to: str | None) -> bool:
        """Roll one locked host back; True when it is live on the target and its gate closed."""
        h, session = run.result, run.session
        assert session is not None
        try:
            record = session.call(Command.ROLLBACK, to=to)
        except HealthError as e:
            self._reverted(h, e)
            return False
        except DeployerError as e:
            h.result, h.detail, h.exit_code = Result.FAILED, self.reporter.redactor(str(e)), e.exit_code
            return False
        h.result, h.release, h.version = Result.SUCCESS, record.get("to"), record.get("version")
        h.healthy_s, h.gate_s = record.get("healthy_s"), record.get("gate_s")
        run.activated = True  # its journal excerpt is read after the last wave (no prune: as before)
        return True

    # ------------------------------------------------------------------ one-shot
    def command(
        self, hosts: list[Endpoint], engine: Path, *args: str, stdin: bytes | None = None
    ) -> tuple[dict, int]:
        """Run one engine subcommand on every host.

        Returns (label -> its events, or its error line; the exit code: 0, or the worst
        failure's).
        """
        out: dict = {}
        code = 0

        def one(t: Endpoint) -> HostResult:
            conn = self.connect(t)
            try:
                out[t.label] = self.remote(conn, engine).command(*args, stdin=stdin)
            finally:
                conn.close()
            return HostResult(t.label, Result.SUCCESS)

        for r in self.on_each(hosts, one):
            if r.result == Result.FAILED:
                out[r.label] = r.detail
                code = max(code, r.exit_code or 1)
        return out, code
