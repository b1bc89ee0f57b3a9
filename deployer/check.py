"""``deployer check``: prove each host can take a deploy, writing nothing.

Connection and pinned host key, the sudo rights (``sudo -n -l``), unit drift against
the templates (computed by the engine on the host, as a deploy does), and with an
artifact: Python, glibc, wheel tags and disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from deployer.builder.engine import build_engine
from deployer.builder.release import packaging_templates
from deployer.config import Config
from deployer.errors import DeployerError
from deployer.host.artifact import verify_artifact
from deployer.host.contract import HostConfig, Status, Step
from deployer.host.rootfiles import TEMPLATES
from deployer.host.service import service_for
from deployer.output import Reporter
from deployer.pipeline import Pipeline
from deployer.remote.engine import RemoteEngine
from deployer.remote.ssh import Connection, Endpoint


def sudo_rights(conn: Connection, config: HostConfig) -> tuple[list[str], list[str]]:
    """(allowed lines we need, missing lines) from ``sudo -n -l`` as the deploy user."""
    result = conn.run(["sudo", "-n", "-l"], timeout=30, step="sudo")
    needed = service_for(config).needed_rights()
    listed = result.stdout if result.ok else ""
    return [n for n in needed if n in listed], [n for n in needed if n not in listed]


def run_check(
    config: Config,
    config_path: Path,
    pipeline: Pipeline,
    reporter: Reporter,
    targets: list[Endpoint],
    artifact: Path | None,
) -> bool:
    manifest = verify_artifact(str(artifact)) if artifact else None
    found = packaging_templates(config, config_path)
    templates = json.dumps({key: found[name].read_text() for key, name in TEMPLATES.items()}).encode()
    ok = True
    with tempfile.TemporaryDirectory(prefix="deployer-check-") as tmp:
        engine = build_engine(Path(tmp) / "engine.pyz")
        for t in targets:
            try:
                ok = check_host(config, pipeline, reporter, t, engine, templates, manifest) and ok
            except DeployerError as e:
                reporter.event(t.label, {"step": "check", "status": Status.FAIL, "detail": str(e)})
                ok = False
    reporter.say("check passed" if ok else "check FAILED")
    return ok


def check_host(
    config: Config,
    pipeline: Pipeline,
    reporter: Reporter,
    t: Endpoint,
    engine: Path,
    templates: bytes,
    manifest: dict | None,
) -> bool:
    """Check one host: connect, sudo rights, unit drift, and with a manifest its preflight.

    False when a sudo right is missing or the unit drifted; ``DeployerError`` when a
    step cannot run at all."""
    with reporter.step(t.label, "connect", f"{t.user}@{t.address}:{t.port}, host key pinned"):
        conn = pipeline.connect(t)
    try:
        allowed, missing = sudo_rights(conn, config.host_config())
        reporter.event(
            t.label,
            {
                "step": "sudo",
                "status": Status.FAIL if missing else Status.OK,
                "detail": ("missing: " + ", ".join(missing)) if missing else "allowed: " + ", ".join(allowed),
            },
        )
        remote = RemoteEngine(conn, config.host_config(), engine, pipeline.run)
        events = remote.command(Step.DRIFT, "-", stdin=templates)
        problems = [e["detail"] for e in events if e.get("step") == Step.DRIFT]
        reporter.event(
            t.label,
            {
                "step": "unit",
                "status": Status.FAIL if problems else Status.OK,
                "detail": "; ".join(problems) or "matches the template",
            },
        )
        if manifest is not None:
            for event in remote.command(Step.PREFLIGHT, "-", stdin=json.dumps(manifest).encode()):
                reporter.event(t.label, event)
        return not missing and not problems
    finally:
        conn.close()
