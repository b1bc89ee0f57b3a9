"""The measurable outcomes (deployer/criteria.py) on synthetic 30-day audit logs, each
criterion at, just inside and just outside its threshold."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest

from deployer.criteria import percentile, read_host
from deployer.host.state import built_from
from deployer.scorecard import Report

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=29, hours=23)  # inside the 30-day window


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


class Log:
    """A host's deploys.jsonl built in code, as activate.py and stage.py write it."""

    def __init__(self, start: datetime = START):
        self.t = start
        self.records: list[dict] = []
        self.n = 0

    def _rid(self) -> str:
        self.n += 1
        return f"{(self.t - timedelta(hours=2)).strftime('%Y%m%dT%H%M%SZ')}-{self.n:07x}"

    def _add(self, **r) -> None:
        self.records.append({"time": stamp(self.t), "actor": "ci", "run_url": None, **r})

    def deploy(
        self,
        healthy: float = 2.0,
        result: str = "success",
        action: str = "deploy",
        gap: float = 3600,
        branch: str | None = "main",
    ):
        """A switch, ``healthy`` seconds to healthy, a 60 s watch window; or a failed gate."""
        rid = self._rid()
        commit = stamp(self.t - timedelta(hours=2))
        base = {"action": "deploy", "from": "prev", "to": rid, "version": "1.0", "commit_time": commit}
        base["branch"] = branch
        self._add(**base, result="live")
        if result == "success":
            self.t += timedelta(seconds=1 + healthy + 60)  # restart, healthy, watch
            self._add(**base, result="success", healthy_s=healthy, gate_s=healthy + 60)
        else:
            self.t += timedelta(seconds=40)  # the failed gate and the revert
            self._add(**base, result=result, reason="health: 503")
        self.t += timedelta(seconds=gap)
        return rid

    def failed_stage(self, gap: float = 3600, branch: str | None = "main") -> None:
        self._add(
            action="stage",
            to=self._rid(),
            result="failed",
            version="1.0",
            branch=branch,
            reason="install or smoke test",
        )
        self.t += timedelta(seconds=gap)

    def rollback(self, seconds: float = 5.0, result: str = "success", gap: float = 3600) -> None:
        """A rollback command healthy ``seconds`` after its switch (restart included)."""
        base = {"action": "rollback", "from": "cur", "to": "20261101T000000Z-0000000", "version": "0.9"}
        self._add(**base, result="live")
        if result == "success":
            healthy = seconds - 1  # the restart took 1 s
            self.t += timedelta(seconds=seconds + 60)
            self._add(**base, result="success", healthy_s=healthy, gate_s=healthy + 60)
        else:
            self.t += timedelta(seconds=seconds)
            self._add(**base, result=result)
        self.t += timedelta(seconds=gap)

    def report(self, days: int = 30, branch: str = "main") -> Report:
        return Report({"prod-1": self.records}, NOW, days, branch)


def status(report: Report) -> dict:
    return {c["id"]: c["status"] for c in report.data["criteria"]}


def line(report: Report, cid: str) -> str:
    return next(x for x in report.text().splitlines() if x.startswith(cid))


# ---------------------------------------------------------------------- SC-005


@pytest.mark.parametrize(
    ("good", "bad", "expect"),
    [(49, 1, "met"), (98, 2, "met"), (99, 1, "met"), (48, 2, "missed"), (97, 3, "missed")],
)
def test_sc005_success_rate_at_and_around_98_percent(good, bad, expect):
    log = Log()
    gap = 29 * 86400 / (good + bad)
    for i in range(good + bad):
        if i < bad:
            log.deploy(result="reverted", gap=gap) if i % 2 else log.failed_stage(gap=gap)
        else:
            log.deploy(gap=gap)
    r = log.report()
    o = r.data["overall"]
    assert o["deploys"] == good + bad and o["success"] == good
    assert o["change_failure_rate"] == round(bad / (good + bad), 4)
    assert status(r)["SC-005"] == expect
    assert line(r, "SC-005") == (
        f"SC-005 {expect:<7} deploy success rate on main >= 98%: {good}/{good + bad} "
        f"({good / (good + bad) * 100:.1f}%)"
    )
    assert r.exit_code == (0 if all(s != "missed" for s in status(r).values()) else 1)


def test_sc005_counts_only_the_deploys_built_from_main():
    """49 good deploys of main, then failures of a hotfix branch, of a tag checked out by
    itself (no branch) and of an old engine's records (no field): SC-005 stays met at 49/49,
    while the success and change failure rates count all 53 deploys."""
    log = Log()
    for _ in range(49):
        log.deploy(gap=7200)
    log.deploy(result="reverted", branch="hotfix/login")
    log.failed_stage(branch="hotfix/login")
    log.deploy(result="revert-failed", branch=None)
    log.deploy(result="reverted")
    del log.records[-1]["branch"], log.records[-2]["branch"]  # written before records had one
    r = log.report()
    o = r.data["overall"]
    assert o["deploys"] == 53 and o["success"] == 49 and o["change_failure_rate"] == round(4 / 53, 4)
    assert o["on_branch"] == {"branch": "main", "deploys": 49, "success": 49, "success_rate": 1.0}
    assert status(r)["SC-005"] == "met"
    assert line(r, "SC-005") == "SC-005 met     deploy success rate on main >= 98%: 49/49 (100.0%)"
    assert "49 from main, 49 succeeded" in r.text()
    # the same log, asked about the hotfix branch: 0 of 2
    h = log.report(branch="hotfix/login")
    assert status(h)["SC-005"] == "missed" and h.exit_code == 1
    assert line(h, "SC-005") == "SC-005 missed  deploy success rate on hotfix/login >= 98%: 0/2 (0.0%)"


# ---------------------------------------------------------------------- SC-002


@pytest.mark.parametrize(
    ("times", "expect"),
    [
        ([2.0] * 18 + [60.0, 61.0], "met"),  # 19/20 = 95%: 60 s exactly is within
        ([2.0] * 19 + [60.01], "met"),
        ([2.0] * 18 + [60.01, 75.0], "missed"),  # 18/20 = 90%
        ([2.0] * 38 + [90.0, 90.0], "met"),  # 38/40 = 95%
        ([2.0] * 37 + [90.0, 90.0, 90.0], "missed"),  # 37/40 = 92.5%
    ],
)
def test_sc002_healthy_within_60_s_at_and_around_95_percent(times, expect):
    log = Log()
    for t in times:
        log.deploy(healthy=t, gap=29 * 86400 / len(times))
    r = log.report()
    assert status(r)["SC-002"] == expect, line(r, "SC-002")
    within = sum(t <= 60 for t in times)
    assert f": {within}/{len(times)} (" in line(r, "SC-002")
    th = r.data["overall"]["time_to_healthy"]
    assert th["median_s"] == 2.0 and th["p95_s"] == sorted(times)[int(len(times) * 0.95) - 1]


def test_sc002_a_deploy_that_never_became_healthy_did_not_pass_within_60_s():
    log = Log()
    for _ in range(19):
        log.deploy(healthy=3.0)
    log.deploy(result="reverted")
    r = log.report()
    assert status(r)["SC-002"] == "met"  # 19/20
    log.failed_stage()
    assert status(log.report())["SC-002"] == "missed"  # 19/21


# ---------------------------------------------------------------------- SC-003


@pytest.mark.parametrize(
    ("seconds", "expect"),
    [
        ([5.0] * 19 + [300.0], "met"),  # 300 s exactly is within
        ([5.0] * 19 + [300.5], "met"),  # 19/20 = 95%
        ([5.0] * 18 + [300.5, 301.0], "missed"),  # 18/20
    ],
)
def test_sc003_rollback_restores_health_within_5_minutes_at_and_around_95_percent(seconds, expect):
    log = Log()
    for s in seconds:
        log.deploy(gap=600)
        log.rollback(seconds=s, gap=600)
    r = log.report()
    rb = r.data["overall"]["rollbacks"]
    assert rb["count"] == len(seconds) and rb["automatic"] == 0 and rb["restored"] == len(seconds)
    assert rb["time_to_healthy"]["median_s"] == pytest.approx(5.0)
    assert status(r)["SC-003"] == expect, line(r, "SC-003")


def test_sc003_counts_automatic_reverts_and_a_rollback_that_failed():
    log = Log()
    for _ in range(18):
        log.deploy()
        log.rollback()
    log.deploy(result="reverted")  # restored by itself, 40 s after the switch
    log.rollback(result="revert-failed")  # did not restore health
    r = log.report()
    rb = r.data["overall"]["rollbacks"]
    assert rb == {**rb, "count": 20, "automatic": 1, "restored": 19}
    assert status(r)["SC-003"] == "met"  # 19/20
    log.deploy(result="revert-failed")
    r = log.report()
    assert status(r)["SC-003"] == "missed" and line(r, "SC-003").endswith(": 19/21 (90.5%)")


def test_a_criterion_with_nothing_to_measure_is_no_data_and_not_missed():
    log = Log()
    for _ in range(10):
        log.deploy()
    r = log.report()
    assert status(r) == {"SC-002": "met", "SC-003": "no-data", "SC-005": "met"}
    assert r.exit_code == 0
    assert line(r, "SC-003") == (
        "SC-003 no-data rollback restores health within 5 min in >= 95% of rollbacks: nothing to measure"
    )
    empty = Report({"prod-1": []}, NOW, 30)
    assert set(status(empty).values()) == {"no-data"} and empty.exit_code == 0


# ---------------------------------------------------------------------- the rest


def test_only_the_period_counts_and_open_gates_are_unfinished():
    log = Log(start=NOW - timedelta(days=45))
    for _ in range(10):
        log.deploy(result="reverted", gap=86400)  # days 45..36: outside
    log.t = START
    for _ in range(5):
        log.deploy()
    log._add(action="deploy", to="x", result="live")  # a gate still open
    log._add(action="dry-run", to="y", result="staged")
    r = log.report()
    o = r.data["overall"]
    assert o["deploys"] == 5 and o["outcomes"] == {"success": 5} and o["unfinished"] == 1
    assert r.exit_code == 0 and len(r.data["per_day"]) == 31
    assert sum(d["deploys"] for d in r.data["per_day"]) == 5


def test_time_to_restore_runs_from_the_first_failure_to_the_next_success():
    log = Log()
    log.deploy()
    failed_at = log.t
    log.failed_stage(gap=600)
    log.deploy(result="reverted", gap=1200)
    log.deploy(healthy=2.0)  # healthy 1800 s + 40 s + 1 + 2 + 60 after the first failure
    log.deploy(result="revert-failed")
    r = log.report()
    tr = r.data["overall"]["time_to_restore"]
    success_at = datetime.strptime(log.records[-3]["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert tr["count"] == 1 and tr["median_s"] == (success_at - failed_at).total_seconds()
    assert tr["unrestored"] == 1 and "(1 not restored yet)" in r.text()


def test_lead_time_from_the_records_commit_time_or_else_the_release_id():
    log = Log()
    log.deploy()
    log.deploy()
    for rec in log.records[-2:]:
        del rec["commit_time"]  # an older engine's record: the release id carries the commit time
    r = log.report()
    lt = r.data["overall"]["lead_time"]
    assert lt["count"] == 2 and lt["median_s"] == pytest.approx(7200, abs=0.01)


def test_per_host_and_overall():
    a, b = Log(), Log()
    for _ in range(10):
        a.deploy()
        b.deploy(healthy=70.0)
    r = Report({"a": a.records, "b": b.records}, NOW, 30)
    assert r.data["hosts"]["a"]["criteria"][0]["status"] == "met"
    assert r.data["hosts"]["b"]["criteria"][0]["status"] == "missed"
    assert r.data["overall"]["deploys"] == 20 and status(r)["SC-002"] == "missed"
    assert r.exit_code == 1
    assert r.text().splitlines()[1].startswith("a: 10 deploys, 10 succeeded (100.0%)")
    json.dumps(r.data)  # --json prints it as is


def test_markdown_is_a_job_summary_with_mermaid_charts():
    log = Log()
    for i in range(20):
        log.deploy(result="reverted" if i == 3 else "success", gap=86400 * 1.4)
    md = log.report().markdown()
    assert "| SC-005 | deploy success rate on main >= 98% | 19/20 (95.0%) | ❌ missed |" in md
    assert (
        "| SC-003 | rollback restores health within 5 min in >= 95% of rollbacks | 1/1 (100.0%) | ✅ met |"
        in md
    )
    assert "➖ no data" in Report({"h": []}, NOW, 30).markdown()
    chart = md.split("```mermaid\n")[1].split("```")[0]
    assert chart.startswith("xychart-beta\n") and 'x-axis ["11-01", "11-02"' in chart
    assert "pie title Outcomes" in md and '"reverted" : 1' in md and '"success" : 19' in md
    assert "```mermaid" not in Report({"h": []}, NOW, 30).markdown()


def test_percentile_is_nearest_rank():
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([float(i) for i in range(1, 101)], 50) == 50.0


def test_garbage_records_are_skipped():
    log = Log()
    log.deploy()
    records = [*log.records, "nope", {"time": "yesterday", "result": "success"}, {"result": "failed"}]
    h = read_host("h", records)
    assert len(h.deploys) == 1 and h.deploys[0].ok


def test_bad_days_is_refused():
    with pytest.raises(ValueError):
        Report({}, NOW, 0)
    from deployer.commands.report import parse_days
    from deployer.errors import UsageError

    for bad in ("0", "-1", "x", "3651", ""):
        with pytest.raises(UsageError, match="--days"):
            parse_days(bad)
    assert parse_days("7") == 7


# ---------------------------------------------------------------------- the engine's side


class _Engine:
    def __init__(self, records):
        self.history = argparse.Namespace(records=lambda: iter(records))
        self.emitted: list[dict] = []
        self.events = argparse.Namespace(emit=lambda step, status, detail, **kw: self.emitted.append(kw))


def test_engine_history_since_keeps_the_records_at_or_after_the_time():
    from deployer.errors import UsageError
    from deployer.host.commands import _history

    times = [
        "2026-11-01T00:00:00.00Z",
        "2026-11-15T10:00:00.50Z",
        "2026-11-15T10:00:01Z",
        "2026-11-30T00:00:00Z",
    ]
    records = [{"time": t, "result": "success"} for t in times]

    def run(**kw):
        engine = _Engine(records)
        _history(argparse.Namespace(**{"last": None, "since": None, **kw}), engine)
        return [e["record"]["time"] for e in engine.emitted]

    assert run(since="2026-11-15T10:00:00.5Z") == times[1:]
    assert run(since="2026-11-15T10:00:00Z", last=1) == times[-1:]
    assert run() == times  # the last 20 without --since
    assert run(last=2) == times[-2:]
    with pytest.raises(UsageError, match="--since"):
        run(since="last week")


SHA, OTHER = "a" * 40, "b" * 40


@pytest.mark.parametrize(
    ("git", "provenance", "branch"),
    [
        ({"sha": SHA, "ref": "main"}, {"ref": None, "commit": SHA}, "main"),  # a local build on main
        ({"sha": SHA, "ref": None}, {"ref": "refs/heads/main", "commit": SHA}, "main"),  # CI, sha checkout
        (
            {"sha": SHA, "ref": None},
            {"ref": "refs/heads/main", "commit": OTHER},
            None,
        ),  # dispatched from main
        ({"sha": SHA, "ref": None}, {"ref": "refs/tags/v1.0", "commit": SHA}, None),  # a tag's run
        ({"sha": SHA, "ref": "hotfix/x"}, {"ref": "refs/heads/main", "commit": OTHER}, "hotfix/x"),
        ({"sha": SHA, "ref": None}, None, None),  # no provenance (an older artifact)
        (None, {"ref": "refs/heads/main", "commit": None}, None),
        ("garbage", ["x"], None),
    ],
)
def test_the_branch_a_release_was_built_from(git, provenance, branch):
    assert built_from({"git": git, "provenance": provenance}) == branch
