"""The engine: every step that touches the host, as methods over one base path.

``Engine`` is used by the plain subcommands, by ``serve`` (one process per deploy,
driven by the controller) and by ``install`` (the air-gapped path); all three run the
very same steps. Staging and activation each have a class of their own, in stage.py
and activate.py.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import threading
from pathlib import Path
from typing import Dict, List, Optional

from deployer.errors import AbortedError, HostError
from deployer.host import retention
from deployer.host.activate import Activation, EnvChange
from deployer.host.artifact import read_signed
from deployer.host.contract import HostConfig, State, Step
from deployer.host.events import Events
from deployer.host.layout import Layout
from deployer.host.lock import DeployLock
from deployer.host.patterns import ENV_ROOT
from deployer.host.preflight import preflight
from deployer.host.service import Service
from deployer.host.signature import Signature, built_by, check, host_trust
from deployer.host.stage import Staging
from deployer.host.state import History, get_state, release_manifest, rollback_target
from deployer.host.unpack import missing_members


class Engine:
    #: where root keeps the keys this host trusts to sign each app's artifacts
    trust_root = ENV_ROOT

    def __init__(
        self,
        config: HostConfig,
        service: Service,
        events: Optional[Events] = None,
        abort: Optional[threading.Event] = None,
        actor: Optional[str] = None,
        run_url: Optional[str] = None,
    ):
        self.config = config
        self.layout = Layout.of(config)
        self.service = service
        self.events = events or Events()
        self.abort = abort or threading.Event()
        self.history = History(self.layout)
        self.lock = DeployLock(self.layout.lock, self.layout.lock_holder)
        self.switched = threading.Event()  # past the point of no return
        self._signed: Dict[str, Signature] = {}  # signatures this process verified, by what they signed
        self.record = {
            "actor": actor or os.environ.get("DEPLOYER_ACTOR") or _user(),
            "run_url": run_url or os.environ.get("DEPLOYER_RUN_URL"),
        }

    # ------------------------------------------------------------------ lock
    def acquire(self, release: Optional[str] = None, wait: float = 0.0) -> None:
        with self.events.step(Step.LOCK) as r:
            self.lock.acquire(
                {"who": self.record["actor"], "run_url": self.record["run_url"], "release": release},
                wait=wait,
            )
            r["detail"] = f"held by pid {os.getpid()}"
            r["current"] = self.layout.current_id()  # what the host runs, read under the lock

    def release_lock(self) -> None:
        self.lock.release()

    # ------------------------------------------------------------------ steps
    def preflight(self, manifest: dict, upload: bool = False, templates: Optional[dict] = None) -> dict:
        """Checks before anything is written; ``upload``: the missing files are still to
        come; ``templates``: also how the installed unit and launcher differ (``drift``)."""
        with self.events.step(Step.PREFLIGHT) as r:
            missing = missing_members(self.layout, manifest)
            incoming = sum(manifest["files"][n]["size"] for n in missing) if upload else 0
            result = preflight(
                self.layout, manifest, self.config.interpreter, incoming, self.service.problems()
            )
            result["missing"] = missing
            result["drift"] = self.drift(templates) if templates else []
            r["detail"] = (
                f"python {result['python']}, glibc {result['glibc']}, disk "
                f"{result['disk_needed'] >> 20} of {result['disk_free'] >> 20} MiB"
            )
        return result

    def check_signed(self, artifact: str) -> Optional[Signature]:
        """Before anything of ``artifact`` is unpacked: its manifest's signature against the
        keys this host trusts for the app (``SignatureError`` when unsigned or not by one of
        them). None when the host trusts no keys: then an unsigned artifact passes."""
        trust = host_trust(self.config, self.trust_root)
        if trust is None:
            return None
        signed = read_signed(artifact)
        what = (trust.text.encode(), signed.text, signed.signature or b"")
        seen = hashlib.sha256(b"\0".join(what)).hexdigest()
        if seen in self._signed:
            return self._signed[seen]
        with self.events.step(Step.SIGNATURE, artifact) as r:
            sig = check(signed, trust, artifact)
            r["detail"] = f"signed by {sig.fingerprint}, trusted in {trust.path}; {built_by(signed.manifest)}"
        self._signed[seen] = sig
        return sig

    def stage(self, artifact: str, expected: Optional[dict] = None) -> str:
        """Unpack, build the venv, check, smoke-test; the release ends ``staged``.

        ``expected``: the manifest the preflight checked. An upload must carry exactly
        it; the unpack then checks every member against it, so every byte sent is checked
        without a second pass over the whole upload.
        """
        self._check_abort()
        staging = Staging(
            self.layout,
            self.config,
            self.events,
            self.history,
            self.record,
            self.abort,
            check_abort=self._check_abort,
            check_signed=self.check_signed,
        )
        return staging.run(artifact, expected)

    def activate(self, rid: str, env: Optional[EnvChange] = None, action: str = "deploy") -> dict:
        self._check_abort()
        activation = Activation(
            self.layout,
            self.config,
            self.service,
            self.events,
            self.history,
            self.record,
            on_switched=self.switched.set,
            check_abort=self._check_abort,
        )
        return activation.run(rid, env or EnvChange(), action)

    def rollback(self, to: Optional[str] = None) -> dict:
        """Back to the last good activation before `current` (or ``to``), with its .env."""
        target = to or rollback_target(self.layout, self.history)
        if target is None:
            raise HostError("no earlier good release to roll back to")
        state = get_state(self.layout.release(target))
        if state is None:
            raise HostError(f"release {target} is not on this host")
        if state == State.BAD:
            raise HostError(f"release {target} is marked bad; refusing to roll back to it")
        if target == self.layout.current_id():
            raise HostError(f"release {target} is already current")
        from deployer.host.envfile import release_env_sha

        return self.activate(
            target, EnvChange(restore_sha=release_env_sha(self.layout.release(target))), action="rollback"
        )

    def prune(self, staging: Optional[str] = None) -> dict:
        """Retention; then the live release's spare venv for the next release to start from
        (after the gate: the time it takes is off every deploy's way to healthy)."""
        from deployer.host import seed

        with self.events.step(Step.PRUNE) as r:
            removed = retention.prune(
                self.layout,
                self.config.keep_releases,
                staging,
                self.config.audit_retention_days,
            )
            r["detail"] = ", ".join(f"{len(v)} {k}" for k, v in removed.items() if v) or "nothing"
            current = self.layout.current_id()
            if current and get_state(self.layout.release(current)) == State.GOOD:
                others = [self.layout.release(rid) for rid in self.layout.release_ids() if rid != current]
                seed.drop_spares(others)
                if seed.make_spare(self.layout.release(current), self.config.interpreter):
                    r["detail"] += "; the next release's venv is ready"
                r["detail"] += self._stand_by()
        return removed

    def _stand_by(self) -> str:
        """``[service] standby``: the release a rollback would go back to, started beside
        the live one; what the prune step says about it."""
        target = rollback_target(self.layout, self.history) if self.config.standby else None
        if target is None or not self.service.stand_by(target):
            return ""
        return f"; {target} stands by"

    def releases(self) -> List[dict]:
        from deployer.host.state import list_releases

        return list_releases(self.layout, self.history)

    def status(self) -> dict:
        """Unit state, the current release and its version, and the health probe now."""
        from deployer.host.health import HealthCheck

        props = self.service.show()
        current = self.layout.current_id()
        version = release_manifest(self.layout.release(current)).get("version") if current else None
        problem = (
            HealthCheck(self.service, self.config.health, version).probe()
            if current
            else "no current release"
        )
        return {
            "unit": props,
            "unit_name": self.service.name,
            "standby": self.service.standby(),
            "current": current,
            "version": version,
            "state": get_state(self.layout.release(current)) if current else None,
            "health": problem or "ok",
        }

    def logs(self, release: Optional[str], lines: int) -> List[str]:
        """The unit's journal now, or the excerpts kept for ``release``; masked."""
        from deployer.host.envfile import current_env, env_values

        self.events.add_secrets(env_values(current_env(self.layout) or "", self.config.env_public))
        if release:
            kept = sorted(self.layout.release_log(release).glob("journal-*.txt"))
            if not kept:
                raise HostError(f"no journal kept for release {release}")
            text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in kept)
            return [self.events.mask(line) for line in text.splitlines()[-lines:]]
        return [self.events.mask(line) for line in self.service.recent(lines)]

    def drift(self, templates: dict) -> List[str]:
        """The installed unit and launcher against ``templates`` rendered for this app."""
        from deployer.host.rootfiles import drift

        return drift(templates, self.config)

    def discard_upload(self, artifact: str) -> None:
        """Uploads live in incoming/ only until they are staged (or refused)."""
        path = Path(artifact).resolve()
        if self.layout.incoming.resolve() in path.parents:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ------------------------------------------------------------------ helpers
    def _check_abort(self) -> None:
        if self.abort.is_set() and not self.switched.is_set():
            raise AbortedError("the controller went away before the switch")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
