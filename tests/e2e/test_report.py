"""`deployer report` against what really happened on a staging guest."""

from __future__ import annotations

import json

from tests.e2e.conftest import BASE, sh
from tests.staging.guest import host_setup

GUEST = 11  # this file's own guest: its audit log holds exactly the deploys made here


def test_report_counts_what_happened_and_names_the_missed_criteria(
    staging_host_factory, deployer_cli_for, variant_builds
):
    """Two good deploys, one that fails its health check (reverted by itself) and a
    rollback: the report counts each, times them, and misses SC-002 and SC-005 (2 of 3
    deploys) while SC-003 is met (both rollbacks restored health in seconds)."""
    guest = staging_host_factory(GUEST)
    cli = deployer_cli_for(guest)
    host_setup(guest, cli.config)
    v1, v2, bad = variant_builds("v1"), variant_builds("v2"), variant_builds("unhealthy")
    cli("deploy", str(v1.path))
    cli("deploy", str(v2.path))
    assert cli("deploy", str(bad.path), check=False).returncode == 1
    cli("rollback")
    assert sh(guest, "readlink", f"{BASE}/current").endswith(v1.manifest["release_id"])

    proc = cli("report", "--json", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["errors"] == {} and len(data["hosts"]) == 1
    o = data["overall"]
    assert o["deploys"] == 3 and o["outcomes"] == {"reverted": 1, "success": 2}
    assert o["success_rate"] == round(2 / 3, 4) and o["change_failure_rate"] == round(1 / 3, 4)
    assert o["unfinished"] == 0
    assert o["time_to_healthy"]["count"] == 2 and 0 < o["time_to_healthy"]["p95_s"] < 60
    rb = o["rollbacks"]
    assert rb["count"] == 2 and rb["automatic"] == 1 and rb["restored"] == 2
    assert 0 < rb["time_to_healthy"]["p95_s"] < 300
    # the revert's time covers the failed gate (health timeout 10 s), the rollback's only its restart
    assert o["time_to_restore"]["count"] == 1 and o["time_to_restore"]["unrestored"] == 0
    # the commit time is in the activation record: from the fixed commit dates to now
    assert o["lead_time"]["count"] == 2 and o["lead_time"]["median_s"] > 3600
    status = {c["id"]: (c["status"], c["count"], c["of"]) for c in data["criteria"]}
    assert status == {"SC-002": ("missed", 2, 3), "SC-003": ("met", 2, 2), "SC-005": ("missed", 2, 3)}
    assert data["per_day"][-1]["deploys"] == 3 and sum(d["deploys"] for d in data["per_day"]) == 3

    text = cli("report", check=False)
    print(text.stdout)  # shown with -s: the report of a real host
    assert text.returncode == 1
    assert "SC-005 missed" in text.stdout and "SC-003 met" in text.stdout, text.stdout
    md = cli("report", "--markdown", "--days", "7", check=False)
    print(md.stdout)
    assert md.returncode == 1 and "```mermaid" in md.stdout and "xychart-beta" in md.stdout
    assert "| SC-003 |" in md.stdout and "❌ missed" in md.stdout

    bad_days = cli("report", "--days", "0", check=False)
    assert bad_days.returncode == 2 and len(bad_days.stderr.strip().splitlines()) == 1, bad_days.stderr
    assert "--days 0" in bad_days.stderr
