"""``deployer check``: prove each host can take a deploy, writing nothing.

Connection and pinned host key, the sudo rights (``sudo -n -l``), unit drift against
the templates, and with an artifact: Python, glibc, wheel tags and disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from deployer.builder.manifest import host_config
from deployer.builder.release import build_engine, packaging_templates
from deployer.errors import DeployerError
from deployer.host.artifact import verify_artifact
from deployer.host.service import Systemd
from deployer.host.setup import TEMPLATES, compare, installed_paths, render
from deployer.remote.engine import RemoteEngine
from deployer.remote.ssh import Target


def sudo_rights(conn, unit: str) -> tuple[list[str], list[str]]:
    """(allowed lines we need, missing lines) from ``sudo -n -l`` as the deploy user."""
    code, out, _ = conn.run(["sudo", "-n", "-l"], timeout=30)
    needed = Systemd(unit).needed_rights()
    listed = out if code == 0 else ""
    return [n for n in needed if n in listed], [n for n in needed if n not in listed]


def unit_drift(conn, config, templates: dict) -> list[str]:
    """The installed unit and launcher (read over SFTP) against the rendered templates."""
    hc = host_config(config)
    paths = installed_paths(hc)
    installed = {key: conn.read_text(str(path)) for key, path in paths.items()}
    return compare(installed, render(templates, hc), paths)


def run_check(obj, targets: list[Target], artifact: Path | None) -> bool:
    config = obj.config()
    manifest = verify_artifact(str(artifact)) if artifact else None
    templates = {k: p.read_text() for k, p in _templates(obj).items()}
    pipeline = obj.pipeline()
    ok = True
    with tempfile.TemporaryDirectory(prefix="deployer-check-") as tmp:
        engine = build_engine(Path(tmp) / "engine.pyz")
        for t in targets:
            report = obj.reporter
            try:
                with report.step(t.label, "connect", f"{t.user}@{t.address}:{t.port}, host key pinned"):
                    conn = pipeline.connect(t)
                try:
                    allowed, missing = sudo_rights(conn, config.app.unit_name)
                    report.event(
                        t.label,
                        {
                            "step": "sudo",
                            "status": "fail" if missing else "ok",
                            "detail": ("missing: " + ", ".join(missing))
                            if missing
                            else "allowed: " + ", ".join(allowed),
                        },
                    )
                    problems = unit_drift(conn, config, templates)
                    report.event(
                        t.label,
                        {
                            "step": "unit",
                            "status": "fail" if problems else "ok",
                            "detail": "; ".join(problems) or "matches the template",
                        },
                    )
                    ok = ok and not missing and not problems
                    if manifest is not None:
                        remote = RemoteEngine(conn, config, engine, pipeline.run)
                        remote.ensure_uploaded()
                        code, out, _ = conn.run(
                            remote.argv("preflight", "-"), stdin=json.dumps(manifest).encode()
                        )
                        for line in out.splitlines():
                            try:
                                report.event(t.label, json.loads(line))
                            except ValueError:
                                continue
                        ok = ok and code == 0
                finally:
                    conn.close()
            except DeployerError as e:
                report.event(t.label, {"step": "check", "status": "fail", "detail": str(e)})
                ok = False
    obj.reporter.say("check passed" if ok else "check FAILED")
    return ok


def _templates(obj) -> dict:
    mapping = packaging_templates(obj.config(), obj.config_path)
    return {key: mapping[name] for key, name in TEMPLATES.items()}
