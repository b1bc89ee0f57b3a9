"""The spec's measurable outcomes, computed from the hosts' audit logs (pure: no I/O).

Input: each host's records of ``log/deploys.jsonl`` in the order they were written (see
``host/activate.py``: a ``live`` record at the switch, then ``success``, ``reverted`` or
``revert-failed`` when the gate closes; a ``stage`` record ``failed`` when an install or
smoke test failed before any switch). Output: a plain dict (``Report.data``), its text
and its Markdown (a GitHub job summary, with Mermaid charts).

What counts:

- a **deploy** is an attempt to make a new release live: a ``deploy`` or ``install``
  whose gate closed (``success``, ``reverted``, ``revert-failed``), or a ``stage`` that
  ``failed``. Dry runs are not deploys; a ``live`` record with no verdict after it (the
  gate still open, or the engine killed) is counted as *unfinished* and in no rate.
- a **rollback** is any switch meant to restore health: a ``rollback`` command, or the
  automatic revert of a deploy whose gate failed. It restored health when the rollback
  ended ``success`` (or the revert ``reverted``); its time is from the switch (the
  ``live`` record) to healthy.
- **time to healthy** is the record's ``healthy_s`` (restart done -> unit active and the
  probe passing); **time to restore** is from the first failed deploy of a run of
  failures to the next ``success`` on that host; **lead time** is from the commit
  (``commit_time`` in the record, else the release id's commit stamp) to the switch.
- percentiles are nearest-rank (p95 of 20 values is the 19th smallest).

Criteria (a share meets its threshold when share >= threshold, in exact integers):

- SC-002: healthy within 60 s in >= 95% of deploys (a deploy that never became healthy
  did not pass within 60 s).
- SC-003: rollbacks restoring health within 300 s in >= 95% of rollbacks.
- SC-005: deploy success rate on main >= 98%: the deploys of releases built from the
  main branch (the record's ``branch``, see ``host/state.py: built_from``); a hotfix
  branch, a tag checked out by itself or an unknown branch is in the other numbers only.

A criterion with nothing to measure in the period is ``no-data``: neither met nor missed.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deployer.host.events import parse_time

MET, MISSED, NO_DATA = "met", "missed", "no-data"

DEPLOY_ACTIONS = ("deploy", "install")
VERDICTS = ("success", "reverted", "revert-failed")
FAILURES = ("reverted", "revert-failed", "failed")
RELEASE_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-")


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    percent: int  # the threshold: share >= percent / 100
    limit_s: float = 0.0  # the time limit, when there is one


CRITERIA = (
    Criterion("SC-002", "healthy within 60 s in >= 95% of deploys", 95, 60.0),
    Criterion("SC-003", "rollback restores health within 5 min in >= 95% of rollbacks", 95, 300.0),
    Criterion("SC-005", "deploy success rate on {branch} >= 98%", 98),  # no time limit
)
SC002, SC003, SC005 = CRITERIA


@dataclass
class Deploy:
    host: str
    time: datetime  # when its verdict was written
    result: str
    release: str | None
    healthy_s: float | None = None
    switched: datetime | None = None  # the live record's time
    commit_time: datetime | None = None
    branch: str | None = None  # the branch the release was built from, when known

    @property
    def ok(self) -> bool:
        return self.result == "success"

    @property
    def lead_s(self) -> float | None:
        if self.commit_time is None or not self.ok:
            return None
        return ((self.switched or self.time) - self.commit_time).total_seconds()


@dataclass
class Rollback:
    host: str
    time: datetime
    automatic: bool  # the revert of a failed deploy, not a `rollback` command
    restored: bool
    seconds: float | None  # switch -> healthy again; None when not measurable


@dataclass
class HostLog:
    """One host's deploys and rollbacks in the period, read from its records."""

    host: str
    deploys: list[Deploy] = field(default_factory=list)
    rollbacks: list[Rollback] = field(default_factory=list)
    unfinished: int = 0
    restores: list[float] = field(default_factory=list)  # seconds, failure -> next success
    unrestored: int = 0  # runs of failures with no success after them yet


def _time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def _commit_time(record: dict) -> datetime | None:
    t = _time(record.get("commit_time"))
    if t is None:
        m = RELEASE_STAMP.match(str(record.get("to") or ""))
        if m:
            t = datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return t


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_host(host: str, records: list[dict], since: datetime | None = None) -> HostLog:
    """A host's records (oldest first) -> its deploys, rollbacks and restores since ``since``."""
    log = HostLog(host)
    live: dict | None = None  # the switch whose verdict is still to come
    failing_since: datetime | None = None
    for r in records:
        if not isinstance(r, dict):
            continue
        t = _time(r.get("time"))
        if t is None:
            continue
        action, result = r.get("action"), r.get("result")
        in_period = since is None or t >= since
        if result == "live":
            if live is not None and _in(live, since):
                log.unfinished += 1
            live = r
            continue
        paired = live if live is not None and live.get("to") == r.get("to") and result in VERDICTS else None
        if result in VERDICTS:
            live = None
        switched = _time(paired.get("time")) if paired else None
        if action in DEPLOY_ACTIONS and result in VERDICTS or action == "stage" and result == "failed":
            if in_period:
                log.deploys.append(
                    Deploy(
                        host,
                        t,
                        result,
                        r.get("to"),
                        _num(r.get("healthy_s")),
                        switched,
                        _commit_time(r),
                        r.get("branch") if isinstance(r.get("branch"), str) else None,
                    )
                )
                if result in ("reverted", "revert-failed"):
                    seconds = (t - switched).total_seconds() if switched else None
                    log.rollbacks.append(Rollback(host, t, True, result == "reverted", seconds))
        elif action == "rollback" and result in VERDICTS and in_period:
            seconds = None
            if result == "success":
                healthy, gate = _num(r.get("healthy_s")), _num(r.get("gate_s"))
                if switched and healthy is not None and gate is not None:
                    seconds = (t - timedelta(seconds=gate - healthy) - switched).total_seconds()
                else:
                    seconds = healthy
            log.rollbacks.append(Rollback(host, t, False, result == "success", seconds))
        else:
            continue
        # time to restore: the first failure of a run -> the next success (deploy or rollback)
        if not in_period:
            continue
        if result in FAILURES and action != "rollback" and failing_since is None:
            failing_since = t
        elif result == "success" and failing_since is not None:
            log.restores.append((t - failing_since).total_seconds())
            failing_since = None
    if live is not None and _in(live, since):
        log.unfinished += 1
    if failing_since is not None:
        log.unrestored += 1
    return log


def _in(record: dict, since: datetime | None) -> bool:
    t = _time(record.get("time"))
    return t is not None and (since is None or t >= since)


# ---------------------------------------------------------------------- numbers


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _dist(values: list[float]) -> dict:
    return {
        "count": len(values),
        "median_s": round(statistics.median(values), 3) if values else None,
        "p95_s": round(v, 3) if (v := percentile(values, 95)) is not None else None,
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _verdict(c: Criterion, part: int, whole: int, **title) -> dict:
    status = NO_DATA if whole == 0 else MET if part * 100 >= c.percent * whole else MISSED
    return {
        "id": c.id,
        "title": c.title.format(**title),
        "threshold": c.percent / 100,
        "count": part,
        "of": whole,
        "share": _share(part, whole),
        "status": status,
    }


def measure(logs: list[HostLog], branch: str = "main") -> dict:
    """The numbers and the criteria over ``logs`` (one host's, or every host's); SC-005
    over the deploys built from ``branch``."""
    deploys = [d for log in logs for d in log.deploys]
    on_branch = [d for d in deploys if d.branch == branch]
    on_branch_ok = sum(1 for d in on_branch if d.ok)
    rollbacks = [r for log in logs for r in log.rollbacks]
    outcomes: dict[str, int] = {}
    for d in deploys:
        outcomes[d.result] = outcomes.get(d.result, 0) + 1
    ok = outcomes.get("success", 0)
    failed = sum(outcomes.get(k, 0) for k in FAILURES)
    healthy = [d.healthy_s for d in deploys if d.ok and d.healthy_s is not None]
    within = sum(1 for d in deploys if d.ok and d.healthy_s is not None and d.healthy_s <= SC002.limit_s)
    restored = [r for r in rollbacks if r.restored and r.seconds is not None]
    restored_in_time = sum(1 for r in restored if r.seconds is not None and r.seconds <= SC003.limit_s)
    leads = [s for d in deploys if (s := d.lead_s) is not None]
    criteria = [
        _verdict(SC002, within, len(deploys)),
        _verdict(SC003, restored_in_time, len(rollbacks)),
        _verdict(SC005, on_branch_ok, len(on_branch), branch=branch),
    ]
    return {
        "deploys": len(deploys),
        "outcomes": dict(sorted(outcomes.items())),
        "success": ok,
        "success_rate": _share(ok, len(deploys)),
        "change_failure_rate": _share(failed, len(deploys)),
        "on_branch": {
            "branch": branch,
            "deploys": len(on_branch),
            "success": on_branch_ok,
            "success_rate": _share(on_branch_ok, len(on_branch)),
        },
        "unfinished": sum(log.unfinished for log in logs),
        "time_to_healthy": _dist(healthy),
        "healthy_within_60s": _share(within, len(deploys)),
        "rollbacks": {
            "count": len(rollbacks),
            "automatic": sum(1 for r in rollbacks if r.automatic),
            "restored": sum(1 for r in rollbacks if r.restored),
            "time_to_healthy": _dist([r.seconds for r in restored if r.seconds is not None]),
        },
        "time_to_restore": {
            **_dist([s for log in logs for s in log.restores]),
            "unrestored": sum(log.unrestored for log in logs),
        },
        "lead_time": _dist(leads),
        "criteria": criteria,
    }


def per_day(logs: list[HostLog], since: datetime, until: datetime) -> list[dict]:
    """Deploys per UTC day of the period, by outcome: the chart's data."""
    days: dict[str, dict[str, int]] = {}
    day = since.date()
    while day <= until.date():
        days[day.isoformat()] = {}
        day += timedelta(days=1)
    for d in (d for log in logs for d in log.deploys):
        row = days.setdefault(d.time.date().isoformat(), {})
        row[d.result] = row.get(d.result, 0) + 1
    return [{"day": k, "deploys": sum(v.values()), **v} for k, v in sorted(days.items())]
