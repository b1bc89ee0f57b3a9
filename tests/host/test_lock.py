"""The deploy lock: an flock held by a live engine process, never a stale file."""

from __future__ import annotations

import os
import signal
import time

import pytest

from deployer.errors import LockHeldError
from tests.host.driver import EngineProcess, done, run_cli, step

pytestmark = pytest.mark.slow  # the host fixture's config comes from the example build
HOLDER = {"DEPLOYER_ACTOR": "ci-deployer", "DEPLOYER_RUN_URL": "https://ci.example.invalid/runs/42"}


def lock_status(host) -> dict:
    rc, events, stderr = run_cli(host.cli("lock"), timeout=30)
    assert rc == 0 and len(events) == 1, stderr
    return events[0]


def test_a_live_engine_holds_the_lock_and_a_killed_one_frees_it(host):
    with EngineProcess(host.cli("serve"), env=HOLDER) as holder:
        holder.heartbeats(True)  # else it gives up after 5 s without a controller
        holder.wait_for(step("lock", "ok"), 30)

        # another engine in this process: refused at once, told who holds it
        engine = host.engine()
        with pytest.raises(LockHeldError) as e:
            engine.acquire(release="20261126T101500Z-0000000")
        assert f"ci-deployer (pid {holder.pid})" in str(e.value)
        assert HOLDER["DEPLOYER_RUN_URL"] in str(e.value)
        assert not engine.lock.held

        status = lock_status(host)
        assert status["step"] == "lock" and status["held"] is True
        assert status["holder"]["who"] == "ci-deployer" and status["holder"]["pid"] == holder.pid
        assert f"ci-deployer (pid {holder.pid})" in status["detail"]

        # --lock-wait waits that long, then fails naming the holder
        t0 = time.monotonic()
        rc, events, _ = run_cli(host.cli("--lock-wait", "2", "prune"), timeout=30)
        waited = time.monotonic() - t0
        assert rc == LockHeldError.exit_code
        assert events[-1]["error"] == "LockHeldError"
        assert f"pid {holder.pid}" in events[-1]["detail"] and "waited 2s" in events[-1]["detail"]
        assert 2.0 <= waited < 6.0, f"waited {waited:.1f}s"

        # a second serve session is refused the same way, and says so as its answer
        with EngineProcess(host.cli("serve")) as second:
            _, refused = second.wait_for(done("lock"), 30)
            assert refused["status"] == "fail" and refused["error"] == "LockHeldError"
            assert second.wait(10) == LockHeldError.exit_code

        # the holder dies without any clean-up: the kernel frees the lock
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(10) == -signal.SIGKILL
        status = lock_status(host)
        assert status["held"] is False and status["detail"] == "free"
    t0 = time.monotonic()
    engine.acquire(wait=10)
    assert time.monotonic() - t0 < 0.5, "no stale lock to wait for"
    assert engine.lock.holder()["pid"] == os.getpid()
    assert lock_status(host)["held"] is True
    engine.release_lock()
    assert lock_status(host)["held"] is False
