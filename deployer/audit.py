"""The controller's log bundle: one folder per deploy or rollback, masked, kept by CI.

```
deploy-logs/<UTC time>-<action>/        (--log-dir / DEPLOYER_LOG_DIR picks the parent)
  events.jsonl        every event and message the reporter showed, with its time
  summary.json        action, result, app, release, version, artifact, hosts, times, run link,
                      notifications sent (or why not)
  summary.md          the same for people; appended to $GITHUB_STEP_SUMMARY when set
  journal-<host>.txt  the service's journal kept on the host for the release (`deployer logs
                      --release`), when the release was started there
```

Everything written passes the redactor (once more at the end, when it knows the .env),
so the folder can be uploaded as it is. The host keeps its own audit (log/deploys.jsonl).
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal

import click

from deployer import notify
from deployer.config import Config
from deployer.errors import DeployerError
from deployer.output import Reporter
from deployer.report import iso_time, markdown, report, utc_now
from deployer.runinfo import RunInfo
from deployer.summary import JOURNALED, Summary

DEFAULT_LOG_DIR = "deploy-logs"

log_dir_option = click.option(
    "--log-dir",
    default=DEFAULT_LOG_DIR,
    show_default=True,
    envvar="DEPLOYER_LOG_DIR",
    type=click.Path(file_okay=False),
    help="Where this run's log bundle folder is written.",
)


class Bundle:
    """One run's folder: created at once, filled as the run goes, masked throughout."""

    def __init__(self, root: Path, action: str, redactor, started: datetime | None = None):
        self.redactor = redactor
        self.started = started or utc_now()
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = root / (f"{stamp}-{action}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        self.dir = path
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._file = open(self.dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (open for the run)

    def record(self, host: str, event: dict) -> None:
        """The reporter's sink: one event (or message) as one masked JSON line."""
        entry = {"time": iso_time(utc_now()), **({"host": host} if host else {}), **event}
        with self._lock:
            self._events.append(entry)
            if not self._file.closed:
                self._file.write(self._line(entry) + "\n")
                self._file.flush()

    def _line(self, entry: dict) -> str:
        return self.redactor(json.dumps(entry, default=str))

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(self.redactor(text), encoding="utf-8")
        return path

    def close(self) -> None:
        """Rewrite events.jsonl with everything the redactor knows by now."""
        with self._lock:
            self._file.close()
            self.write("events.jsonl", "".join(self._line(e) + "\n" for e in self._events))


class Recorder:
    """The bundle, the job summary and the notifications of one deploy or rollback.

    ``with Recorder(config, reporter, action, log_dir) as rec: ... rec.finish(summary)`` -
    an exception inside is recorded and notified as a failure, then goes on up. It writes
    files and sends notifications; it never connects to a host (the pipeline hands it
    the journal excerpts).
    """

    def __init__(self, config: Config, reporter: Reporter, action: str, log_dir: str, environ=None):
        self.config, self.reporter, self.redactor = config, reporter, reporter.redactor
        self.action = action
        self.environ = os.environ if environ is None else environ
        self.log_dir = Path(log_dir)
        self.bundle: Bundle | None = None
        self.finished = False

    def __enter__(self) -> Recorder:
        notify.register_secrets(self.config.notify, self.redactor, self.environ)
        try:
            self.bundle = Bundle(self.log_dir, self.action, self.redactor)
        except OSError as e:
            self.reporter.say(f"log bundle: cannot write {self.log_dir}: {e.strerror}")
            self.bundle = None
        if self.bundle:
            self.reporter.sink = self.bundle.record
        self.started = self.bundle.started if self.bundle else utc_now()
        return self

    def finish(self, summary: Summary, artifact: Path | None = None) -> None:
        """Journal excerpts, summary.json/.md, the job summary, notifications."""
        journals = self._journals(summary)
        self._close(
            report(summary, self.config.app.name, self._run(), self.started, artifact, None, self.environ),
            journals,
        )

    def __exit__(self, kind, exc, tb) -> Literal[False]:
        if exc is not None and not self.finished:
            if isinstance(exc, DeployerError):
                error = str(exc)
            elif isinstance(exc, KeyboardInterrupt):
                error = "interrupted"
            else:
                error = f"{type(exc).__name__}: {exc}"
            failed = Summary(self.action, None, None, seconds=(utc_now() - self.started).total_seconds())
            rep = report(
                failed,
                self.config.app.name,
                self._run(),
                self.started,
                None,
                self.redactor(error),
                self.environ,
            )
            self._close(rep, {})
        if self.reporter.sink and self.bundle and self.reporter.sink == self.bundle.record:
            self.reporter.sink = None
        return False

    # ------------------------------------------------------------------ helpers
    def _run(self) -> RunInfo:
        return RunInfo.from_env(self.environ)

    def _close(self, rep: dict, journals: dict) -> None:
        self.finished = True
        rep["journal"] = journals
        config = self.config
        deliveries = notify.send(
            config.notify, notify.compose(rep, self.redactor), self.redactor, self.environ
        )
        for d in deliveries:
            if not d.ok:
                click.echo(
                    self.redactor(f"deployer: notify {d.kind} ({d.variable}) failed: {d.detail}"),
                    err=True,
                )
        rep["notifications"] = [d.as_dict() for d in deliveries]
        text = markdown(rep)
        if self.bundle:
            try:
                self.bundle.write("summary.json", json.dumps(rep, indent=2, default=str) + "\n")
                self.bundle.write("summary.md", text)
                self.bundle.close()
            except OSError as e:  # a full disk loses the bundle, not the deploy
                click.echo(f"deployer: log bundle {self.bundle.dir}: {e.strerror}", err=True)
        summary_file = self.environ.get("GITHUB_STEP_SUMMARY")
        if summary_file:
            try:
                with open(summary_file, "a", encoding="utf-8") as f:
                    f.write(self.redactor(text) + "\n")
            except OSError:
                pass

    def _write_journal(self, label: str, lines: list) -> str:
        name = f"journal-{_safe(label)}.txt"
        assert self.bundle is not None
        self.bundle.write(name, "".join(line + "\n" for line in lines))
        return name

    def _journals(self, summary: Summary) -> dict:
        """The journal each host kept for the release it started (never fails the run).

        The pipeline asks the engine for it before ``bye`` (or after reconnecting). A host
        whose label is a secret (DEPLOYER_HOSTS_SECRET) is named by its place instead."""
        if self.bundle is None:
            return {}
        found = {}
        try:
            for n, h in enumerate(summary.hosts, 1):
                label = h.label if self.redactor(h.label) == h.label else f"host-{n}"
                if h.journal is not None:
                    found[label] = self._write_journal(label, h.journal)
                elif h.result in JOURNALED and h.release:
                    found[label] = "not read: the host kept no journal for this release"
        except OSError as e:  # the excerpt is a courtesy: it never fails a deploy
            found["error"] = f"journal not written: {e.strerror}"
        return {k: self.redactor(v) for k, v in found.items()}


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)
