"""``serve``: one engine process per deploy, driven over stdin with a heartbeat (DESIGN §2).

Before the switch a lost controller (no heartbeat for 5 s, or end of input) means: abort,
clean up, free the lock, leave `current` alone. After the switch the engine finishes the
health gate alone and records the outcome. Each test drives a real engine subprocess
that deploys real releases of the example service.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from deployer.host.lock import DeployLock
from deployer.host.state import History, get_state
from tests.host.conftest import health
from tests.host.driver import EngineProcess, done, step
from tests.host.supervisor import alive, service_pid

pytestmark = pytest.mark.slow
EXIT_ABORTED = 3


def history(host) -> list[dict]:
    return list(History(host.engine().layout).records())


def lock_free(host) -> bool:
    return not DeployLock(host.base / ".lock", host.base / ".lock.holder").status()["held"]


def serve(host) -> EngineProcess:
    """A serve session with heartbeats on, once it holds the lock."""
    eng = EngineProcess(host.cli("serve"))
    eng.heartbeats(True)
    eng.wait_for(step("lock", "ok"), 30)
    return eng


def leftovers(host, rid: str) -> list[str]:
    releases = host.base / "releases"
    return sorted(p.name for p in releases.iterdir() if rid in p.name) if releases.is_dir() else []


def processes_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes() and alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def test_session_deploys_with_ticks_then_finishes_the_gate_alone_after_the_switch(host, variant_builds):
    v1, v2, crash = variant_builds("v1"), variant_builds("v2"), variant_builds("crash")
    id1, id2 = v1.manifest["release_id"], v2.manifest["release_id"]

    # a normal session: preflight -> stage -> activate (with the .env) -> bye
    with serve(host) as eng:
        eng.send({"cmd": "preflight", "manifest": v1.manifest})
        _, pre = eng.wait_for(done("preflight"), 30)
        assert pre["status"] == "ok" and pre["result"]["disk_needed"] > 0
        eng.send({"cmd": "stage", "artifact": str(v1.path)})
        _, staged = eng.wait_for(done("stage"), 120)
        assert staged["status"] == "ok" and staged["result"] == {"release": id1}
        eng.send({"cmd": "activate", "release": id1, "env": host.env_text()})
        _, act = eng.wait_for(done("activate"), 60)
        assert act["status"] == "ok" and act["result"]["result"] == "success", eng.transcript()
        eng.send({"cmd": "bye"})
        eng.wait_for(done("bye"), 10)
        assert eng.wait(10) == 0
        ticks = [t for t, e in eng.events if e["step"] == "tick"]
        span = eng.events[-1][0] - eng.events[0][0]
    assert len(ticks) >= int(span) - 1, "a tick every second"
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) < 1.6, f"ticks must come at least once a second: {max(gaps):.2f}s gap"
    for e in eng.steps():
        assert {"time", "step", "status", "detail"} <= set(e)
    assert os.readlink(host.base / "current") == f"releases/{id1}"
    assert get_state(host.base / "releases" / id1) == "good"
    assert health(host)["version"] == v1.manifest["version"]
    assert lock_free(host)

    # the controller goes away right after the switch: the gate is finished alone
    host.config["health"]["watch"] = 3.0
    with serve(host) as eng:
        eng.send({"cmd": "stage", "artifact": str(v2.path)})
        eng.wait_for(done("stage"), 120)
        eng.send({"cmd": "activate", "release": id2})
        eng.wait_for(step("switch", "ok"), 60)
        closed = eng.close_stdin()
        assert eng.wait(30) == 0, eng.transcript()
        gate_t, _ = eng.wait_for(step("gate", "ok"), 1)
        assert gate_t - closed > 2, "the gate ran on after the controller left"
    last = history(host)[-1]
    assert (last["action"], last["to"], last["result"]) == ("deploy", id2, "success")
    assert os.readlink(host.base / "current") == f"releases/{id2}"
    assert get_state(host.base / "releases" / id2) == "good"
    assert health(host)["version"] == v2.manifest["version"]
    assert lock_free(host)

    # the same with a release that crashes at start: reverted alone, recorded
    host.config["health"]["watch"] = 1.0
    with serve(host) as eng:
        eng.send({"cmd": "stage", "artifact": str(crash.path)})
        eng.wait_for(done("stage"), 120)
        eng.send({"cmd": "activate", "release": crash.manifest["release_id"]})
        eng.wait_for(step("switch", "ok"), 60)
        eng.close_stdin()
        assert eng.wait(60) == 0, eng.transcript()
        eng.wait_for(step("revert", "ok"), 1)
    last = history(host)[-1]
    assert (last["to"], last["result"]) == (crash.manifest["release_id"], "reverted")
    assert os.readlink(host.base / "current") == f"releases/{id2}"
    assert get_state(host.base / "releases" / crash.manifest["release_id"]) == "bad"
    assert health(host)["version"] == v2.manifest["version"]
    assert lock_free(host)


def test_controller_lost_before_the_switch_aborts_cleans_up_and_frees_the_lock(host, variant_builds):
    v1 = variant_builds("v1")
    rid = v1.manifest["release_id"]
    # a smoke test that imports the app, then outlasts the heartbeat timeout: the abort
    # must land while the release is being staged, and stop what is running
    marker = f"slow-smoke-{uuid.uuid4().hex[:8]}"
    host.config["smoke"] = {
        "command": ["{python}", "-c", f"import tg_video_streamer, time; m = '{marker}'; time.sleep(60)"],
        "timeout": 120,
    }

    # 1. heartbeats stop, stdin stays open: abort 5-6 s after the last line
    with serve(host) as eng:
        eng.send({"cmd": "stage", "artifact": str(v1.path)})
        eng.wait_for(step("venv", "start"), 60)
        eng.heartbeats(False)
        silent_since = eng.last_sent
        abort_t, abort = eng.wait_for(step("abort"), 15)
        assert abort["status"] == "fail" and "no heartbeat" in abort["detail"]
        assert 4.5 <= abort_t - silent_since <= 8, f"abort after {abort_t - silent_since:.1f}s"
        assert eng.wait(10) == EXIT_ABORTED
        _, stage = eng.wait_for(done("stage"), 1)
        assert stage["status"] == "fail" and stage["error"] == "AbortedError"
    assert leftovers(host, rid) == [], "no release dir, no partial"
    assert not (host.base / "current").exists()
    assert not processes_with(marker), "the smoke test was stopped"
    assert lock_free(host)
    engine = host.engine()
    engine.acquire()  # at once: no stale lock
    engine.release_lock()

    # 2. end of input (the SSH channel closed): abort within a second or two
    with serve(host) as eng:
        eng.send({"cmd": "stage", "artifact": str(v1.path)})
        eng.wait_for(step("smoke", "start"), 60)
        closed = eng.close_stdin()
        abort_t, abort = eng.wait_for(step("abort"), 10)
        assert "end of input" in abort["detail"]
        assert abort_t - closed < 3, f"abort {abort_t - closed:.1f}s after end of input"
        assert eng.wait(10) == EXIT_ABORTED
    assert leftovers(host, rid) == []
    assert not (host.base / "current").exists()
    assert not processes_with(marker)
    assert lock_free(host)
    assert not [r for r in history(host) if r.get("to") == rid], "nothing recorded as deployed"
    assert service_pid(host.base) is None, "nothing was started"
