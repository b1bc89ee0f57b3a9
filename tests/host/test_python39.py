"""The engine shipped in the artifact runs on the oldest Python a host may have (3.9)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile

import pytest

from deployer.errors import PreflightError
from deployer.host.artifact import iter_verified
from deployer.host.lock import DeployLock
from tests.conftest import find_python
from tests.host.driver import run_cli

pytestmark = pytest.mark.slow
RID = "20261126T101500Z-abcdef0"


@pytest.fixture(scope="module")
def python39() -> str:
    found = find_python("3.9")
    if not found:
        pytest.skip("no python3.9 on this machine")
    return found


@pytest.fixture(scope="module")
def engine_pyz(example_build, tmp_path_factory):
    """The artifact's own engine.pyz member, as a host receives it."""
    dest = tmp_path_factory.mktemp("engine") / "engine.pyz"
    for member, reader, manifest in iter_verified(str(example_build.path)):
        if member.name == manifest["engine"]:
            dest.write_bytes(reader.read())
    return dest


def test_every_engine_module_imports_on_39(python39, engine_pyz):
    with zipfile.ZipFile(engine_pyz) as z:
        names = sorted(
            n[:-3].replace("/", ".")
            for n in z.namelist()
            if n.startswith("deployer/host/") and n.endswith(".py")
        )
    code = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1]); "
        "[importlib.import_module(m) for m in sys.argv[2:]]; print(sys.version_info[:2])"
    )
    proc = subprocess.run(
        [python39, "-c", code, str(engine_pyz), *names], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 9)"
    assert "deployer.host.serve" in names and "deployer.host.cli" in names


def test_engine_commands_on_39(python39, engine_pyz, example_build, tmp_path):
    base = tmp_path / "opt" / "tg_video_streamer"
    config = dict(example_build.manifest["config"], base_path=str(base))
    config["interpreter"] = find_python("3.11") or config["interpreter"]
    # a host with one release, and the config its last run kept
    rel = base / "releases" / RID
    rel.mkdir(parents=True)
    (rel / ".state").write_text("good\n")
    (rel / "manifest.json").write_text(json.dumps({"release_id": RID, "version": "1.0"}))
    os.symlink(f"releases/{RID}", base / "current")
    (base / "log").mkdir()
    (base / "log" / "deploys.jsonl").write_text(
        json.dumps({"time": "2026-11-26T10:20:00.00Z", "action": "deploy", "to": RID, "result": "success"})
        + "\n"
    )
    (base / "deploy.json").write_text(json.dumps(config))
    engine = [python39, str(engine_pyz)]

    rc, events, stderr = run_cli([*engine, "--base", str(base), "releases"])
    assert rc == 0, stderr
    assert [(e["id"], e["state"], e["current"], e["version"]) for e in events] == [(RID, "good", True, "1.0")]

    rc, events, stderr = run_cli([*engine, "--base", str(base), "lock"])
    assert rc == 0 and events[0]["held"] is False and events[0]["detail"] == "free", stderr
    with DeployLock(base / ".lock", base / ".lock.holder") as lock:
        lock.acquire({"who": "tester"})
        rc, events, stderr = run_cli([*engine, "--base", str(base), "lock"])
        assert rc == 0 and events[0]["held"] is True, stderr
        assert events[0]["holder"]["pid"] == os.getpid()

    rc, events, stderr = run_cli([*engine, "verify", str(example_build.path)])
    assert rc == 0 and events[-1]["status"] == "ok", stderr

    # preflight on this machine runs every check (interpreter, glibc, wheels, disk) and
    # then asks systemd for the unit, which is not installed here
    config_file = tmp_path / "host-config.json"
    config_file.write_text(json.dumps(config))
    rc, events, stderr = run_cli(
        [*engine, "--config", str(config_file), "preflight", str(example_build.path)]
    )
    assert "Traceback" not in stderr, stderr
    outcome = [e for e in events if e["step"] == "preflight" and e["status"] != "start"]
    assert len(outcome) == 1, events
    if rc != 0:
        assert rc == PreflightError.exit_code and events[-1]["error"] == "PreflightError"
        assert re.search(r"unit \S+ is not installed|sudo does not allow", outcome[0]["detail"])
