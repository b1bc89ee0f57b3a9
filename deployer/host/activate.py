"""Activation: .env, atomic switch of `current`, restart, health gate, revert on failure."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from deployer.errors import HealthError, HostError, RevertFailedError
from deployer.host import envfile
from deployer.host.contract import ACTIVATABLE, HostConfig, Outcome, State, Step
from deployer.host.events import Events
from deployer.host.health import HealthCheck
from deployer.host.layout import Layout
from deployer.host.service import Service
from deployer.host.state import (
    History,
    built_from,
    fsync_dir,
    get_state,
    release_manifest,
    replace_symlink,
    set_state,
    write_atomic,
)


def switch_current(layout: Layout, rid: Optional[str]) -> None:
    """Point `current` at ``releases/<rid>`` atomically (None removes it).

    A temporary symlink is renamed over `current` (``os.replace`` is atomic), then the
    directory is fsynced: at every instant `current` points at a complete release.
    """
    if rid is None:
        with contextlib.suppress(FileNotFoundError):
            layout.current.unlink()
        fsync_dir(layout.base)
        return
    replace_symlink(layout.current, f"releases/{rid}")


class EnvChange:
    """What activation does to shared/.env: replace it, restore a recorded one, or keep it."""

    def __init__(self, text: Optional[str] = None, restore_sha: Optional[str] = None):
        self.text, self.restore_sha = text, restore_sha

    def apply(self, layout: Layout, required: list) -> str:
        if self.text is not None:
            envfile.check_required(self.text, required)
            return envfile.install_env(layout, self.text)
        if self.restore_sha is not None:
            if not envfile.restore_env(layout, self.restore_sha):
                raise HostError("the .env this release ran with is no longer on the host")
            return "restored the .env this release ran with"
        current = envfile.current_env(layout)
        if current is None and required:
            raise HostError(f"no .env on the host and none given (required: {', '.join(required)})")
        if current is not None:
            envfile.check_required(current, required)
        return "kept"


class Activation:
    """One switch to a release with its health gate; reverts by itself on failure.

    After ``switch_current`` the outcome no longer depends on the controller: the gate
    is finished and recorded in the history even when nobody is listening.
    """

    def __init__(
        self,
        layout: Layout,
        config: HostConfig,
        service: Service,
        events: Events,
        history: History,
        record: dict,
        on_switched: Callable[[], None] = lambda: None,
        check_abort: Callable[[], None] = lambda: None,
    ):
        self.layout, self.config, self.service = layout, config, service
        self.events, self.history, self.record = events, history, record
        self.on_switched = on_switched
        self.check_abort = check_abort  # raises when the controller is gone

    def run(self, rid: str, env: EnvChange, action: str = "deploy") -> dict:
        rel = self.layout.release(rid)
        if get_state(rel) not in ACTIVATABLE:
            raise HostError(f"release {rid} is {get_state(rel) or 'not staged'}; cannot activate it")
        previous = self.layout.current_id()
        prev_env_sha = self._backup_env()
        manifest = release_manifest(rel)
        git = manifest.get("git")
        git = git if isinstance(git, dict) else {}
        base = {
            **self.record,
            "action": action,
            "from": previous,
            "to": rid,
            "version": manifest.get("version"),
            "commit_time": git.get("commit_time"),  # lead time, commit to live
            "branch": built_from(manifest),  # SC-005 counts the deploys of main
        }
        self._prepare_env(rel, env, prev_env_sha)
        self._switch(rid)
        self.history.append({**base, "result": Outcome.LIVE})
        started: Dict[str, str] = {}
        try:
            started = self._restart()
            healthy, gate = self._gate(started, base["version"])
        except HostError as e:
            self._save_journal(rid, started)
            raise self._reverted(e, rid, previous, prev_env_sha, base) from None
        set_state(rel, State.GOOD)
        self._save_journal(rid, started)
        return self.history.append(
            {
                **base,
                "result": Outcome.SUCCESS,
                "healthy_s": round(healthy, 3),
                "gate_s": round(healthy + gate, 3),
            }
        )

    def _backup_env(self) -> Optional[str]:
        """A backup of the current .env, which the revert needs whatever happens next; its sha."""
        prev_env = envfile.current_env(self.layout)
        if prev_env is None:
            return None
        prev_env_sha = envfile.sha256_text(prev_env)
        envfile.backup_env(self.layout, prev_env)
        return prev_env_sha

    def _prepare_env(self, rel: Path, env: EnvChange, prev_env_sha: Optional[str]) -> None:
        """Apply ``env``, record it with the release; a lost controller puts the old one back."""
        with self.events.step(Step.ENV) as r:
            r["detail"] = env.apply(self.layout, list(self.config.env_required))
            self.events.add_secrets(
                envfile.env_values(envfile.current_env(self.layout) or "", self.config.env_public)
            )
        envfile.record_env(rel, self.layout)
        try:
            self.check_abort()  # the last moment a lost controller still means "no switch"
        except HostError:
            envfile.restore_env(self.layout, prev_env_sha)
            raise

    def _switch(self, rid: str) -> None:
        """`current` -> the release: the point of no return."""
        with self.events.step(Step.SWITCH, f"current -> {rid}"):
            switch_current(self.layout, rid)
            set_state(self.layout.release(rid), State.LIVE)
        self.on_switched()

    def _restart(self) -> Dict[str, str]:
        """Restart the unit; its properties right after (the gate's starting point)."""
        with self.events.step(Step.RESTART, self.service.name):
            self.service.restart()
            return self.service.show()

    def _gate(self, started: Dict[str, str], version: Optional[str]) -> Tuple[float, float]:
        """Healthy, then the watch window: (seconds to healthy, seconds watched)."""
        check = HealthCheck(self.service, self.config.health, version)
        with self.events.step(Step.HEALTHY) as r:
            healthy = check.wait_healthy(started)
            r["detail"] = f"healthy in {healthy:.2f}s"
        watch = self.config.health.watch
        with self.events.step(Step.GATE, f"watching {watch:.0f}s", seconds=watch) as r:
            gate = check.watch(started, watch)
            r["detail"] = f"gate closed after {healthy + gate:.2f}s"
        return healthy, gate

    def _reverted(
        self, failure: HostError, rid: str, previous: Optional[str], prev_env_sha: Optional[str], base: dict
    ) -> HealthError:
        """Revert after a failed restart or gate and record it; the error to raise."""
        reason = str(failure)
        restored = self._revert(rid, previous, prev_env_sha, reason)
        self.history.append(
            {
                **base,
                "result": Outcome.REVERTED if restored else Outcome.REVERT_FAILED,
                "reason": self.events.mask(reason),
            }
        )
        if restored is None:
            return RevertFailedError(f"{reason}; switch back FAILED")
        return HealthError(f"{reason}; {restored}")

    def _revert(
        self, rid: str, previous: Optional[str], prev_env_sha: Optional[str], reason: str
    ) -> Optional[str]:
        """Back to the previous activation with its .env; None if that is not healthy either."""
        ev = self.events
        set_state(self.layout.release(rid), State.BAD)
        with ev.step(Step.REVERT, f"{rid} -> {previous or 'nothing'}") as r:
            if previous is None:
                switch_current(self.layout, None)
                self.service.stop()
                r["detail"] = "no previous release: service stopped"
                return "service stopped (no previous release)"
            switch_current(self.layout, previous)
            envfile.restore_env(self.layout, prev_env_sha)
            try:
                self.service.restart()
                started = self.service.show()
                prev_version = release_manifest(self.layout.release(previous)).get("version")
                HealthCheck(self.service, self.config.health, prev_version).wait_healthy(started)
            except HostError as e:
                r["detail"] = f"previous release {previous} is not healthy either: {e}"
                return None
            r["detail"] = f"switched back to {previous}, healthy"
            return f"switched back to {previous}"

    def _save_journal(self, rid: str, started: dict) -> Optional[Path]:
        inv = started.get("InvocationID", "")
        if not inv:
            return None
        try:
            lines = self.service.journal(inv)
        except HostError:
            return None
        path = self.layout.release_log(rid) / f"journal-{inv[:12]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self.events.mask("\n".join(lines) + "\n"), 0o640)
        return path
