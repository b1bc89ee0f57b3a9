"""``engine.pyz install``: the air-gapped path, through the engine's own command line."""

from __future__ import annotations

import os
import re
import shutil
import stat

import pytest

from deployer.host.state import History, get_state
from tests.host.driver import run_cli
from tests.host.supervisor import alive, service_pid, stop_pid

pytestmark = pytest.mark.slow
STAGE_STEPS = ["lock", "preflight", "unpack", "venv", "check", "smoke"]
SWITCH_STEPS = ["env", "switch", "restart", "healthy", "gate", "prune"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# loopback only (the service's health endpoint); refuse to run if any other link exists
NO_NETWORK = 'ip link set lo up || exit 97; [ "$(ip -o link show | wc -l)" -eq 1 ] || exit 98; exec "$@"'


def ok_steps(events: list[dict]) -> list[str]:
    return [e["step"] for e in events if e["status"] == "ok"]


def assert_event_lines(events: list[dict]) -> None:
    assert events
    for e in events:
        assert {"time", "step", "status", "detail"} <= set(e), e
        assert TIME_RE.match(e["time"]), e["time"]
        if e["status"] in ("ok", "fail") and e["step"] not in ("error", "dry-run"):
            assert isinstance(e["duration"], float) and e["duration"] >= 0, e


def test_offline_install_in_a_network_namespace(host, example_build, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a network namespace")
    rid = example_build.manifest["release_id"]
    env_file = tmp_path / "prod.env"
    env_file.write_text(host.env_text())
    argv = [
        "unshare",
        "--net",
        "sh",
        "-c",
        NO_NETWORK,
        "sh",
        *host.cli("install", str(example_build.path), "--env-file", str(env_file)),
    ]
    rc, events, stderr = run_cli(argv, timeout=180)
    try:
        assert rc == 0, stderr + "\n".join(map(str, events[-5:]))
        assert_event_lines(events)
        assert ok_steps(events) == STAGE_STEPS + SWITCH_STEPS
        assert "installed offline with uv" in next(
            e["detail"] for e in events if e["step"] == "venv" and e["status"] == "ok"
        )
        base = host.base
        assert os.readlink(base / "current") == f"releases/{rid}"
        assert get_state(base / "releases" / rid) == "good"
        last = list(History(host.engine().layout).records())[-1]
        assert (last["action"], last["to"], last["result"]) == ("install", rid, "success")
        assert host.env_path.read_text() == host.env_text()
        assert stat.S_IMODE(host.env_path.stat().st_mode) == 0o600
        assert (base / "deploy.json").is_file(), "the config is kept for later runs"
        assert not (base / ".lock.holder").exists()
        # the service the supervisor started inside the namespace outlives the engine
        pid = service_pid(base)
        assert pid is not None, "the installed service is running"
    finally:
        left = service_pid(host.base)
        if left is not None:
            stop_pid(left)
    assert not alive(pid)


def test_dry_run_stages_and_smokes_then_stops_and_prune_removes_it(host, example_build, tmp_path):
    rid = example_build.manifest["release_id"]
    base = host.base
    # left by interrupted deploys (of another release, and of this one): the next stage
    # removes them, under the lock
    leftovers = [
        base / "releases" / ".20261120T000000Z-0000000.partial",
        base / "releases" / f".{rid}.partial",
    ]
    for leftover in leftovers:
        (leftover / "wheels").mkdir(parents=True)
        (leftover / "wheels" / ".half-a-wheel.whl.tmp").write_bytes(b"PK")
    (base / "shared" / "sessions").mkdir(parents=True)
    (base / "shared" / "sessions" / "bot.session").write_text("session state")
    env_file = tmp_path / "prod.env"
    env_file.write_text(host.env_text())

    rc, events, stderr = run_cli(
        host.cli("install", "--dry-run", str(example_build.path), "--env-file", str(env_file)), timeout=180
    )
    assert rc == 0, stderr
    assert_event_lines(events)
    assert ok_steps(events) == STAGE_STEPS + ["dry-run"]
    assert not (base / "current").exists() and not os.path.lexists(base / "current")
    assert not host.env_path.exists(), "a dry run writes no .env"
    assert get_state(base / "releases" / rid) == "staged"
    # the dependencies' .pyc came from the artifact: even a module the smoke test never
    # imports has one, and the host compiled nothing
    venv = next(e["detail"] for e in events if e["step"] == "venv" and e["status"] == "ok")
    assert f"bytecode of {len(example_build.manifest['bytecode']['layers'])} wheels" in venv
    plugin = next(
        (base / "releases" / rid / "venv").glob(
            "lib/python3*/site-packages/aiohttp/__pycache__/pytest_plugin.cpython-3*.pyc"
        ),
        None,
    )
    assert plugin is not None
    assert not any(p.exists() for p in leftovers)
    assert not list((base / "releases").glob(".*"))
    steps = [e["step"] for e in events]
    assert steps.index("lock") < steps.index("unpack"), "partials are removed under the lock"
    last = list(History(host.engine().layout).records())[-1]
    assert (last["action"], last["to"], last["result"]) == ("dry-run", rid, "staged")
    assert service_pid(base) is None, "nothing was started"

    rc, events, stderr = run_cli(host.cli("prune"))
    assert rc == 0, stderr
    assert not (base / "releases" / rid).exists(), "a dry run's staged release goes first"
    assert not list((base / "cache" / "members").iterdir()), "no release uses those wheels"
    assert not list((base / "cache" / "wheelhouse").iterdir())
    assert (base / "shared" / "sessions" / "bot.session").read_text() == "session state"
