"""Staging: unpack a release into its dir, build its venv offline, check, smoke-test.

The release ends ``staged``; an id the host already has is re-checked, not rebuilt.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Callable, Optional

from deployer.errors import AbortedError, ArtifactError, HostError, InstallError
from deployer.host import install, retention
from deployer.host.artifact import read_manifest
from deployer.host.contract import ACTIVATABLE, HostConfig, Outcome, State, Status, Step
from deployer.host.events import Events
from deployer.host.layout import Layout
from deployer.host.state import History, built_from, get_state, release_manifest, set_state
from deployer.host.unpack import unpack


class Staging:
    """One artifact staged as a release: reuse check, unpack, venv, check, smoke test."""

    def __init__(
        self,
        layout: Layout,
        config: HostConfig,
        events: Events,
        history: History,
        record: dict,
        abort: threading.Event,
        check_abort: Callable[[], None] = lambda: None,
        check_signed: Callable[[str], object] = lambda artifact: None,
    ):
        self.layout, self.config, self.events = layout, config, events
        self.history, self.record = history, record
        self.abort = abort  # stops a running installer
        self.check_abort = check_abort  # raises when the controller is gone
        self.check_signed = check_signed  # raises unless the host's trusted keys vouch for it

    def run(self, artifact: str, expected: Optional[dict] = None) -> str:
        self.check_signed(artifact)  # before anything of it is reused or unpacked
        manifest = self._upload_manifest(artifact, expected)
        rid = manifest["release_id"]
        rel = self.layout.release(rid)
        if self._reusable(rel, manifest):
            self.events.emit(Step.STAGE, Status.OK, f"{rid} already on the host: re-checked, not rebuilt")
            return rid
        if rid == self.layout.current_id():
            raise HostError(f"release {rid} is current but damaged; deploy another release first")
        self._unpack(artifact, manifest, rel)
        log = self.layout.release_log(rid) / "install.log"
        try:
            installer = self._build_venv(rel, manifest, log)
            with self.events.step(Step.CHECK):
                install.check_venv(self.layout, rel, manifest, installer, log, self.abort)
            self.check_abort()
            self._smoke(rel, log)
        except AbortedError:
            shutil.rmtree(rel, ignore_errors=True)
            raise
        except InstallError:
            self._mark_bad(rel, manifest)
            raise
        set_state(rel, State.STAGED)
        return rid

    def _upload_manifest(self, artifact: str, expected: Optional[dict]) -> dict:
        """The artifact's manifest: exactly the one the preflight checked, with a sound id."""
        manifest = read_manifest(artifact)
        if expected is not None and manifest != expected:
            raise ArtifactError(
                f"upload {artifact}: its manifest is not the one the preflight checked (damaged in transit)"
            )
        return manifest  # its release id was checked with its shape (and again by Layout)

    def _reusable(self, rel: Path, manifest: dict) -> bool:
        """An id the host already has is re-checked and re-activated, not rebuilt."""
        if get_state(rel) not in ACTIVATABLE:
            return False
        if release_manifest(rel).get("files") != manifest["files"]:
            return False
        return install.venv_python(rel).exists()

    def _unpack(self, artifact: str, manifest: dict, rel: Path) -> None:
        """Into a partial dir, with the shared links, then renamed to ``rel``: ``staging``."""
        rid = manifest["release_id"]
        retention.prune_partials(self.layout)
        retention.prune_incoming(self.layout, keep=str(Path(artifact)))
        partial = self.layout.partial(rid)
        with self.events.step(Step.UNPACK, rid) as r:
            unpack(artifact, partial, self.layout)
            self._link_shared(partial)
            if rel.exists():
                shutil.rmtree(rel)
            os.replace(partial, rel)
            set_state(rel, "staging")
            r["detail"] = f"{len(manifest['files'])} files verified"

    def _link_shared(self, release_dir: Path) -> None:
        """The shared dirs, linked into the release by relative links, and ``.env`` to
        the .env's own place (outside the base path).

        Relative to ``releases/<id>/``, so they stay right when the partial dir is renamed.
        """
        any_release = self.layout.releases / "ID"
        for d in self.config.shared_dirs:
            target = self.layout.shared / d
            target.mkdir(parents=True, exist_ok=True)
            link = release_dir / d
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(target, (any_release / d).parent), link)
        os.symlink(str(self.layout.env), release_dir / ".env")

    def _build_venv(self, rel: Path, manifest: dict, log: Path) -> str:
        """The release's venv, seeded by the live one when there is one; says how it was built."""
        rid = manifest["release_id"]
        with self.events.step(Step.VENV) as r:
            installer = install.build_venv(
                self.layout,
                rel,
                manifest,
                self.config.interpreter,
                log,
                self.abort,
                seed=self._live_venv(rid),
            )
            r["detail"] = f"installed offline with {installer}"
        return installer

    def _live_venv(self, rid: str) -> Optional[Path]:
        """The venv `current` runs (a seed for the new one), if any and not this release."""
        current = self.layout.current_id()
        if current is None or current == rid:
            return None
        venv = self.layout.release(current) / install.VENV
        return venv if venv.is_dir() else None

    def _smoke(self, rel: Path, log: Path) -> None:
        """The smoke command, in an empty environment."""
        smoke = self.config.smoke
        with self.events.step(Step.SMOKE, " ".join(install.smoke_argv(rel, list(smoke.command)))):
            install.smoke(rel, list(smoke.command), smoke.timeout, log, self.abort)

    def _mark_bad(self, rel: Path, manifest: dict) -> None:
        """A failed install or smoke test: the release is never switched to; recorded."""
        set_state(rel, State.BAD)
        self.history.append(
            {
                **self.record,
                "action": "stage",
                "to": manifest["release_id"],
                "result": Outcome.FAILED,
                "version": manifest["version"],
                "branch": built_from(manifest),
                "reason": "install or smoke test",
            }
        )
