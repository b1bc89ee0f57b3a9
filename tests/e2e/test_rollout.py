"""Rollouts on four staging guests: the canary first, then the rest in waves, each wave
switched and gated at once; the first wave with a failure is the last. The tests run in
order on one fleet and each starts from where the one before left it.

To make one host fail, its health check (a script on every guest, the module's
``[health] command``) fails on that host only, for the version named in ``FAIL_FILE``;
to make one fail to stage, its smoke test (``[smoke] command``, the service's own
``--selfcheck`` behind a script) fails while ``SMOKE_FAIL_FILE`` exists there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import BASE, Deployer, sh
from tests.staging.guest import host_setup

GUESTS = (32, 33, 34, 35)  # A (the canary), B, C, D
FAIL_FILE = "/etc/rollout-fail"  # on a guest: the version its health check refuses
CHECK = "/usr/local/bin/rollout-health"
CHECK_SCRIPT = f"""#!/bin/sh
# /health answers ok, and not with the version this guest is told to refuse ({FAIL_FILE})
body=$(curl -sf --max-time 2 http://127.0.0.1:8080/health) || exit 1
fail=$(cat {FAIL_FILE} 2>/dev/null)
if [ -n "$fail" ] && printf '%s' "$body" | grep -qF "\\"$fail\\""; then
  echo "this host refuses $fail" >&2
  exit 1
fi
"""
SMOKE_FAIL_FILE = "/etc/rollout-smoke-fail"
SMOKE = "/usr/local/bin/rollout-smoke"
SMOKE_SCRIPT = f"""#!/bin/sh
# the service's own smoke test, failed on a guest told to ({SMOKE_FAIL_FILE})
if [ -e {SMOKE_FAIL_FILE} ]; then
  echo "this host cannot stage" >&2
  exit 1
fi
exec "$1" -m tg_video_streamer --selfcheck
"""


class Fleet(Deployer):
    """The CLI for the four guests, health-checked by ``CHECK``, with ``[rollout]``."""

    def __init__(self, repo: Path, guests: list, workdir: Path):
        super().__init__(repo, guests, workdir)
        text = self.config.read_text()
        text = text.replace('http_url = "http://127.0.0.1:8080/health"', f'command = ["{CHECK}"]')
        text = text.replace("timeout = 10", "timeout = 4")  # a refused host fails fast
        self.base_config = text + f'\n[smoke]\ncommand = ["{SMOKE}", "{{python}}"]\n'
        self.rollout()

    def rollout(self, **keys: int) -> None:
        lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
        self.config.write_text(self.base_config + f"\n[rollout]\n{lines}")

    def json(self, *args: str) -> tuple[int, dict, list[dict]]:
        """``deployer --json ARGS``: exit code, the summary, the events (each with its host)."""
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "--json", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
            cwd=self.config.parent,
        )
        self.outputs.append(proc.stdout + proc.stderr)
        events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        lines = proc.stdout.strip().splitlines()
        assert lines, f"no summary on stdout:\n{proc.stderr[-3000:]}"
        return proc.returncode, json.loads(lines[-1]), events


def current(guest) -> str:
    return os.path.basename(sh(guest, "readlink", f"{BASE}/current"))


def index(events: list[dict], host: str, step: str, status: str) -> int:
    """Where ``host``'s first ``step`` event with ``status`` came among every host's events."""
    return next(
        i
        for i, e in enumerate(events)
        if e.get("host") == host and (e.get("step"), e.get("status")) == (step, status)
    )


def started_at(events: list[dict], host: str, step: str, status: str) -> str:
    """The engine's time of ``host``'s first ``step`` event with ``status``."""
    return events[index(events, host, step, status)]["time"]


def invocation(guest) -> str:
    return sh(guest, "systemctl", "show", "-p", "InvocationID", "--value", "tg_video_streamer")


@pytest.fixture(scope="module")
def fleet(staging_host_factory, service_repo, variant_builds, tmp_path_factory):
    """Four guests set up, v1 live on every one by a deploy with the default plan."""
    with ThreadPoolExecutor(max_workers=2) as pool:  # two boots at a time: the machine has 2 cores
        guests = list(pool.map(staging_host_factory, GUESTS))
    ci_key = Path(guests[0].key_path + ".pub").read_text()  # one deploy key for every host

    def prepare(g) -> None:
        host_setup(g, service_repo / "deploy.toml", authorized_key=ci_key)
        g.push(CHECK, CHECK_SCRIPT.encode(), 0o755)
        g.push(SMOKE, SMOKE_SCRIPT.encode(), 0o755)

    with ThreadPoolExecutor(max_workers=len(guests)) as pool:
        list(pool.map(prepare, guests))
    cli = Fleet(service_repo, guests, tmp_path_factory.mktemp("rollout"))
    v1 = variant_builds("v1")
    code, summary, events = cli.json("deploy", str(v1.path))
    assert code == 0, summary
    cli.first = (summary, events)
    yield cli
    for g in guests:
        g.exec(["rm", "-f", FAIL_FILE, SMOKE_FAIL_FILE])


def test_the_default_plan_switches_the_canary_then_every_other_host_at_once(fleet, variant_builds):
    summary, events = fleet.first
    a, b, c, d = (g.host for g in fleet.guests)
    rid = variant_builds("v1").manifest["release_id"]
    assert summary["waves"] == [[a], [b, c, d]]
    assert summary["runs"] == {a: rid, b: rid, c: rid, d: rid}
    assert [h["wave"] for h in summary["hosts"]] == [1, 2, 2, 2]
    canary_gated = started_at(events, a, "gate", "ok")
    restarts = [started_at(events, h, "restart", "start") for h in (b, c, d)]
    assert all(canary_gated < t for t in restarts), "the rest waits for the canary's gate"
    gates = [(started_at(events, h, "gate", "start"), started_at(events, h, "gate", "ok")) for h in (b, c, d)]
    assert max(s for s, _ in gates) < min(e for _, e in gates), "the second wave is gated at once"
    assert any(
        e.get("message", "").startswith(f"rollout: canary {a}; then wave 2 {b}, {c}, {d}") for e in events
    )
    # the others stage while the canary's gate is watched: once its new release answered
    for h in (b, c, d):
        assert index(events, a, "healthy", "ok") < index(events, h, "upload", "start")
        assert index(events, h, "upload", "start") < index(events, a, "gate", "ok")


def test_a_failed_canary_leaves_every_other_host_on_the_old_release(fleet, variant_builds):
    """The canary fails its health gate: its engine switches it back; no other host is
    switched (nor restarted, nor even sent the release: it never answered on the canary),
    and the summary says every host runs the old release."""
    a, b, c, d = fleet.guests
    v1, bad = variant_builds("v1"), variant_builds("unhealthy")  # /health answers 503 everywhere
    rid, bad_id = v1.manifest["release_id"], bad.manifest["release_id"]
    before = {g.host: invocation(g) for g in (b, c, d)}
    proc = fleet("deploy", str(bad.path), check=False)
    assert proc.returncode == 1
    assert [current(g) for g in fleet.guests] == [rid] * 4
    assert {g.host: invocation(g) for g in (b, c, d)} == before, "the others were never restarted"
    for g in (b, c, d):
        assert g.exec(["test", "-e", f"{BASE}/releases/{bad_id}"], check=False).returncode == 1
    assert sh(a, "cat", f"{BASE}/releases/{bad_id}/.state") == "bad"
    out = proc.stdout
    assert f"{a.host}: reverted {bad_id}" in out and "switched back to" in out
    for g in (b, c, d):
        assert f"{g.host}: not switched {bad_id}" in out
    assert out.count(f"the canary failed ({a.host}): not switched") == 3
    assert f"runs: {rid} on {a.host}, {b.host}, {c.host}, {d.host}" in out
    assert out.count(f"    runs {rid} (wave ") == 4


def test_a_failing_second_wave_stops_with_the_first_wave_live_and_its_failed_hosts_reverted(
    fleet, variant_builds
):
    """canary 1, waves of 2: [A] [B C] [D]. C refuses the new version: B (its wave-mate)
    and the canary stay live on it, C is switched back by its engine, D is not switched."""
    a, b, c, d = fleet.guests
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    old, new = v1.manifest["release_id"], v2.manifest["release_id"]
    c.exec(["sh", "-c", f"printf %s '{v2.manifest['version']}' > {FAIL_FILE}"])
    fleet.rollout(canary=1, wave=2)
    code, summary, events = fleet.json("deploy", str(v2.path))
    assert code == 1 and summary["ok"] is False
    assert summary["waves"] == [[a.host], [b.host, c.host], [d.host]]
    hosts = {h["label"]: h for h in summary["hosts"]}
    assert [hosts[g.host]["result"] for g in fleet.guests] == [
        "success",
        "success",
        "reverted",
        "not switched",
    ]
    assert summary["runs"] == {a.host: new, b.host: new, c.host: old, d.host: old}
    assert [current(g) for g in fleet.guests] == [new, new, old, old]
    assert (
        "this host refuses" in hosts[c.host]["detail"] or "health command exited 1" in hosts[c.host]["detail"]
    )
    assert hosts[d.host]["detail"] == f"wave 2 failed ({c.host}): not switched"
    assert started_at(events, a.host, "gate", "ok") < started_at(events, b.host, "restart", "start")
    b_gate, c_restart = (
        started_at(events, b.host, "gate", "start"),
        started_at(events, c.host, "restart", "start"),
    )
    assert c_restart < started_at(events, b.host, "gate", "ok") and b_gate < started_at(
        events, c.host, "revert", "ok"
    )
    assert not any(e.get("host") == d.host and e["step"] == "switch" for e in events if "step" in e)
    bundle = sorted((fleet.config.parent / "deploy-logs").glob("*-deploy"))[-1]
    recorded = json.loads((bundle / "summary.json").read_text())
    assert {h["label"]: h["running"] for h in recorded["hosts"]} == summary["runs"]


def test_a_rollback_follows_the_same_plan(fleet, variant_builds):
    """After the failed wave: A and B run v2, C and D v1 with nothing good before it. The
    rollback, same plan: the canary A back to v1; then B back to v1 while C refuses (no
    earlier good release); D, in the wave after, is left as it is."""
    a, b, c, d = fleet.guests
    old = variant_builds("v1").manifest["release_id"]
    code, summary, _ = fleet.json("rollback")
    assert code == 1
    hosts = {h["label"]: h for h in summary["hosts"]}
    assert [hosts[g.host]["result"] for g in fleet.guests] == ["success", "success", "failed", "not switched"]
    assert "no earlier good release" in hosts[c.host]["detail"]
    assert hosts[d.host]["detail"] == f"wave 2 failed ({c.host}): not switched"
    assert summary["runs"] == {g.host: old for g in fleet.guests}
    assert [current(g) for g in fleet.guests] == [old] * 4


def test_a_host_that_cannot_be_opened_stops_the_deploy_before_any_host_stages(fleet, variant_builds):
    """Every host is connected, locked and preflighted before the canary stages: D's deploy
    lock is held, so nothing is staged or switched anywhere."""
    a, b, c, d = fleet.guests
    old, new = variant_builds("v1").manifest["release_id"], variant_builds("v3").manifest["release_id"]
    d.exec(["systemd-run", "--unit=rollout-hold-lock", "flock", f"{BASE}/.lock", "sleep", "120"])
    try:
        code, summary, _ = fleet.json("deploy", str(variant_builds("v3").path))
    finally:
        d.exec(["systemctl", "stop", "rollout-hold-lock"], check=False)
    assert code != 0 and summary["ok"] is False
    hosts = {h["label"]: h for h in summary["hosts"]}
    assert "another deploy holds the lock" in hosts[d.host]["detail"]
    for g in (a, b, c):
        assert hosts[g.host]["result"] == "not switched"
        assert hosts[g.host]["detail"] == "another host failed before any switch: not switched"
        assert g.exec(["test", "-e", f"{BASE}/releases/{new}"], check=False).returncode == 1, "never staged"
    # D's engine never took its lock, so the run does not know what D runs (it is untouched)
    assert summary["runs"] == {a.host: old, b.host: old, c.host: old, d.host: None}
    assert [current(g) for g in fleet.guests] == [old] * 4


def test_a_host_that_fails_to_stage_fails_its_wave_with_the_canary_live(fleet, variant_builds):
    """canary 1, waves of 2: [A] [B C] [D]. The hosts after the canary stage while it is
    switched and gated; C's smoke test fails. A stays live on the new release; C never
    switches, nor does B (its wave-mate) or D; the summary names every host's release."""
    a, b, c, d = fleet.guests
    old, v3 = variant_builds("v1").manifest["release_id"], variant_builds("v3")
    new = v3.manifest["release_id"]
    assert [current(g) for g in fleet.guests] == [old] * 4
    before = {g.host: invocation(g) for g in (b, c, d)}
    c.exec(["touch", SMOKE_FAIL_FILE])
    fleet.rollout(canary=1, wave=2)
    try:
        code, summary, events = fleet.json("deploy", str(v3.path))
    finally:
        c.exec(["rm", "-f", SMOKE_FAIL_FILE])
    assert code == 1 and summary["ok"] is False
    hosts = {h["label"]: h for h in summary["hosts"]}
    assert [hosts[g.host]["result"] for g in fleet.guests] == [
        "success",
        "not switched",
        "failed",
        "not switched",
    ]
    assert "smoke test" in hosts[c.host]["detail"]
    assert hosts[b.host]["detail"] == hosts[d.host]["detail"] == f"wave 2 failed ({c.host}): not switched"
    assert summary["runs"] == {a.host: new, b.host: old, c.host: old, d.host: old}
    assert [current(g) for g in fleet.guests] == [new, old, old, old]
    assert {g.host: invocation(g) for g in (b, c, d)} == before, "none of the others restarted"
    assert sh(c, "cat", f"{BASE}/releases/{new}/.state") == "bad"
    for g in (b, d):  # staged while the canary was gated, left for the next deploy
        assert sh(g, "cat", f"{BASE}/releases/{new}/.state") == "staged"
    assert index(events, a.host, "healthy", "ok") < index(events, c.host, "smoke", "start")
    assert not any(e.get("host") in (b.host, c.host, d.host) and e.get("step") == "switch" for e in events)
