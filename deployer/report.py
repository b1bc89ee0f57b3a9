"""What a run did, as data and as text: ``report`` (summary.json, notifications) and
``markdown`` (summary.md and the GitHub job summary). Pure: no files, no network."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from deployer.runinfo import RunInfo


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def report(
    summary,
    app: str,
    run: RunInfo,
    started: datetime,
    artifact: Path | None = None,
    error: str | None = None,
    environ=None,
) -> dict:
    """What a run did, as data: summary.json, the job summary and notifications read it."""
    env = os.environ if environ is None else environ
    hosts = [dict(h.__dict__) for h in summary.hosts] if summary is not None else []
    info = {
        "file": artifact.name if artifact else None,
        "id": env.get("DEPLOYER_ARTIFACT_ID") or None,
        "url": env.get("DEPLOYER_ARTIFACT_URL") or None,
    }
    return {
        "app": app,
        "action": summary.action if summary is not None else None,
        "ok": bool(summary is not None and summary.ok and not error),
        "release": summary.release if summary is not None else None,
        "version": summary.version if summary is not None else None,
        "seconds": round(summary.seconds, 2) if summary is not None else None,
        "started_at": iso_time(started),
        "finished_at": iso_time(utc_now()),
        "artifact": info,
        "hosts": hosts,
        "run": {"actor": run.actor, "url": run.url, "ref": run.ref},
        "error": error,
    }


def markdown(rep: dict) -> str:
    """The run as a GitHub job summary: a headline, the facts, one row per host."""
    mark = "✅" if rep.get("ok") else "❌"
    verb = "succeeded" if rep.get("ok") else "FAILED"
    out = [f"### {mark} {rep.get('app')} {rep.get('action')} {verb}", "", "| | |", "|---|---|"]
    art = rep.get("artifact") or {}
    artifact = " ".join(
        x
        for x in (
            f"[{art['id']}]({art['url']})" if art.get("id") and art.get("url") else art.get("id"),
            f"`{art['file']}`" if art.get("file") else None,
        )
        if x
    )
    run = rep.get("run") or {}
    facts = [
        ("release", f"`{rep['release']}`" if rep.get("release") else "-"),
        ("version", f"`{rep['version']}`" if rep.get("version") else "-"),
        ("artifact", artifact or "-"),
        ("duration", f"{rep['seconds']:.1f} s" if rep.get("seconds") is not None else "-"),
        ("started", rep.get("started_at") or "-"),
        (
            "run",
            (f"[logs]({run['url']})" if run.get("url") else "local")
            + (f" by {run['actor']}" if run.get("actor") else ""),
        ),
    ]
    if rep.get("error"):
        facts.append(("error", _cell(rep["error"])))
    out += [f"| {k} | {v} |" for k, v in facts]
    out += ["", "| host | result | release | healthy | gate closed | detail |", "|---|---|---|---|---|---|"]
    for h in rep.get("hosts") or []:
        out.append(
            "| {} | {} | {} | {} | {} | {} |".format(
                _cell(h.get("label")),
                _cell(h.get("result")),
                _cell(h.get("release") or "-"),
                _secs(h.get("healthy_s")),
                _secs(h.get("gate_s")),
                _cell(h.get("detail") or ""),
            )
        )
    if not rep.get("hosts"):
        out.append("| - | no host reached | - | - | - | - |")
    for n in rep.get("notifications") or []:
        if not n.get("ok"):
            out.append(f"\nnotification {n['kind']} ({n['variable']}) failed: {_cell(n['detail'])}")
    return "\n".join(out) + "\n"


def _cell(value) -> str:
    return re.sub(r"\s+", " ", str(value)).replace("|", "\\|").strip()


def _secs(value) -> str:
    return "-" if value is None else f"{value:.2f} s"
