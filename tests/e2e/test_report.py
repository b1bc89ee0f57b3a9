"""`deployer report` against what really happened on a staging guest."""

from __future__ import annotations

import json

from tests.conftest import build_variant
from tests.e2e.conftest import BASE, sh
from tests.staging.guest import host_setup

GUEST = 11  # this file's own guest: its audit log holds exactly the deploys made here


def test_report_counts_what_happened_and_names_the_missed_criteria(
    staging_host_factory, deployer_cli_for, variant_builds, service_repo, tmp_path
):
    """Two good deploys of main, one that fails its health check (reverted by itself) and
    a rollback; then one more of a branch, that fails too. The report counts each, times
    them, and misses SC-002 (2 of 4 deploys healthy in 60 s) and SC-005 (2 of 3 deploys
    of main), while SC-003 is met (all three rollbacks restored health in seconds). Asked
    about the branch, SC-005 is 0 of 1."""
    guest = staging_host_factory(GUEST)
    cli = deployer_cli_for(guest)
    # before `host setup`: the engine is not there and cannot be put there; one line says why
    for argv in (["rollback"], ["report"]):  # an engine session, a one-shot engine command
        proc = cli(*argv, check=False)
        said = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in said, said
        assert "/incoming does not exist: run `deployer host setup` once for this host" in said, said
    host_setup(guest, cli.config)
    v1, v2, bad = variant_builds("v1"), variant_builds("v2"), variant_builds("unhealthy")
    cli("deploy", str(v1.path))
    cli("deploy", str(v2.path))
    assert cli("deploy", str(bad.path), check=False).returncode == 1
    cli("rollback")
    assert sh(guest, "readlink", f"{BASE}/current").endswith(v1.manifest["release_id"])
    hotfix = build_variant(service_repo, "unhealthy", tmp_path, branch="hotfix/try")
    assert cli("deploy", str(hotfix.path), check=False).returncode == 1
    history = [json.loads(x) for x in sh(guest, "cat", f"{BASE}/log/deploys.jsonl").splitlines()]
    assert {r["to"]: r["branch"] for r in history if r["action"] == "deploy"} == {
        v1.manifest["release_id"]: "main",
        v2.manifest["release_id"]: "main",
        bad.manifest["release_id"]: "main",
        hotfix.manifest["release_id"]: "hotfix/try",
    }

    proc = cli("report", "--json", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["errors"] == {} and len(data["hosts"]) == 1
    o = data["overall"]
    assert o["deploys"] == 4 and o["outcomes"] == {"reverted": 2, "success": 2}
    assert o["success_rate"] == 0.5 and o["change_failure_rate"] == 0.5
    assert o["on_branch"] == {"branch": "main", "deploys": 3, "success": 2, "success_rate": round(2 / 3, 4)}
    assert o["unfinished"] == 0
    assert o["time_to_healthy"]["count"] == 2 and 0 < o["time_to_healthy"]["p95_s"] < 60
    rb = o["rollbacks"]
    assert rb["count"] == 3 and rb["automatic"] == 2 and rb["restored"] == 3
    assert 0 < rb["time_to_healthy"]["p95_s"] < 300
    # the revert's time covers the failed gate (health timeout 10 s), the rollback's only its restart
    assert o["time_to_restore"]["count"] == 1 and o["time_to_restore"]["unrestored"] == 1
    # the commit time is in the activation record: from the fixed commit dates to now
    assert o["lead_time"]["count"] == 2 and o["lead_time"]["median_s"] > 3600
    status = {c["id"]: (c["status"], c["count"], c["of"]) for c in data["criteria"]}
    assert status == {"SC-002": ("missed", 2, 4), "SC-003": ("met", 3, 3), "SC-005": ("missed", 2, 3)}
    assert data["per_day"][-1]["deploys"] == 4 and sum(d["deploys"] for d in data["per_day"]) == 4

    text = cli("report", check=False)
    print(text.stdout)  # shown with -s: the report of a real host
    assert text.returncode == 1
    assert "SC-005 missed  deploy success rate on main >= 98%: 2/3" in text.stdout, text.stdout
    assert "SC-003 met" in text.stdout, text.stdout
    branch = cli("report", "--branch", "hotfix/try", check=False)
    assert "SC-005 missed  deploy success rate on hotfix/try >= 98%: 0/1" in branch.stdout, branch.stdout
    md = cli("report", "--markdown", "--days", "7", check=False)
    print(md.stdout)
    assert md.returncode == 1 and "```mermaid" in md.stdout and "xychart-beta" in md.stdout
    assert "| SC-003 |" in md.stdout and "❌ missed" in md.stdout

    bad_days = cli("report", "--days", "0", check=False)
    assert bad_days.returncode == 2 and len(bad_days.stderr.strip().splitlines()) == 1, bad_days.stderr
    assert "--days 0" in bad_days.stderr
