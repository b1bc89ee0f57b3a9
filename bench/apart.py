"""Measured apart from the deploys, in the same run: where the controller's time before
the engine's first event goes, and the engine's venv and smoke steps taken apart on the
host (bench/host_steps.py, run there as the deploy user)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.baseline import BASE
from bench.common import BenchError, Stopwatch, say
from deployer.config import load_config


def controller(bench, reps: int) -> None:
    """Where the controller's time before the engine's first event goes."""
    from deployer.artifact import Artifact
    from deployer.host.artifact import verify_artifact
    from deployer.remote.engine import RemoteEngine
    from deployer.remote.ssh import Connection, Credentials, Endpoint
    from deployer.runinfo import RunInfo

    art = bench.builds["v1"].path
    manifest = bench.builds["v1"].manifest
    config = load_config(bench.config, environ=bench.env)
    g = bench.guest
    target = Endpoint(g.host, g.host, g.port, g.user)
    creds = Credentials(key_file=g.key_path, known_hosts_file=g.known_hosts_path)
    app_only = [manifest["app_wheel"]]
    for rep in range(1, reps + 1):
        sw = Stopwatch()
        with sw("python startup (bare)"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        with sw("python startup + import deployer.cli, pipeline, audit"):
            subprocess.run(
                [sys.executable, "-c", "import deployer.cli, deployer.pipeline, deployer.audit"], check=True
            )
        with sw("verify artifact (hash every member: `deployer verify`)"):
            verify_artifact(str(art))
        with sw("check artifact (a deploy's: lock hashed, members listed and sized)"):
            verify_artifact(str(art), hash_all=False)
        with tempfile.TemporaryDirectory(dir=bench.work) as tmp:
            with sw("extract engine.pyz"):
                engine = Artifact(art).engine(Path(tmp) / "engine.pyz")
            with sw("thin tar, app wheel only (code-only)"):
                Artifact(art).thin(app_only, Path(tmp) / "thin.tar")
            with sw("SSH connect + auth (paramiko)"):
                conn = Connection(target, creds)
            try:
                remote = RemoteEngine(conn, config.host_config(), engine, RunInfo.from_env())
                with sw("engine start on the host until lock ok"):
                    session = remote.session(lambda *_: None)
                with sw("engine bye + close"):
                    session.close()
            finally:
                conn.close()
        bench.record({"kind": "controller", "rep": rep, "steps": sw.steps})
    say("controller breakdown measured")


def host_steps(bench, reps: int) -> None:
    """The engine's venv and smoke steps taken apart, on the host, as the deploy user."""
    if reps < 1:
        return
    script = (Path(__file__).with_name("host_steps.py")).read_bytes()
    bench.guest.push("/tmp/bench-host-steps.py", script)
    proc = bench.guest.exec(
        ["runuser", "-u", bench.guest.user, "--", "python3", "/tmp/bench-host-steps.py", BASE, str(reps)],
        timeout=600,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [r["step"] for r in rows if r["rc"] != 0]
    if failed:
        raise BenchError(f"host steps failed: {failed}")
    for rep in sorted({r["rep"] for r in rows}):
        bench.record(
            {
                "kind": "host-steps",
                "rep": rep,
                "steps": {r["step"]: r["seconds"] for r in rows if r["rep"] == rep},
            }
        )
    say("host-side venv/smoke breakdown measured")
