"""The report of a period, as data (``--json``), text and a GitHub job summary
(``--markdown``, with Mermaid charts), over what ``criteria.py`` measures (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deployer.criteria import MET, MISSED, NO_DATA, measure, per_day, read_host


class Report:
    """The period's report over every host (``data`` is what ``--json`` prints)."""

    def __init__(self, records: dict[str, list[dict]], now: datetime, days: int, branch: str = "main"):
        if days < 1:
            raise ValueError("days must be at least 1")
        self.now, self.days = now, days
        self.since = now - timedelta(days=days)
        self.logs = [read_host(host, recs, self.since) for host, recs in records.items()]
        overall = measure(self.logs, branch)
        self.data = {
            "since": _stamp(self.since),
            "until": _stamp(now),
            "days": days,
            "branch": branch,
            "hosts": {log.host: measure([log], branch) for log in self.logs},
            "overall": overall,
            "criteria": overall["criteria"],
            "per_day": per_day(self.logs, self.since, now),
            "met": all(c["status"] != MISSED for c in overall["criteria"]),
        }

    @property
    def exit_code(self) -> int:
        return 0 if self.data["met"] else 1

    # ------------------------------------------------------------------ text
    def text(self) -> str:
        d = self.data
        lines = [f"deploys from {d['since']} to {d['until']} ({d['days']} days), {len(d['hosts'])} host(s)"]
        for label, m in [*d["hosts"].items(), ("overall", d["overall"])]:
            lines.append(f"{label}: {summary_line(m)}")
        lines += [criterion_line(c) for c in d["criteria"]]
        return "\n".join(lines)

    # -------------------------------------------------------------- markdown
    def markdown(self) -> str:
        d, o = self.data, self.data["overall"]
        mark = {MET: "✅ met", MISSED: "❌ missed", NO_DATA: "➖ no data"}
        out = [
            f"## Deploy report: {d['days']} days to {d['until']}",
            "",
            "| criterion | target | measured | status |",
            "|---|---|---|---|",
        ]
        for c in d["criteria"]:
            measured = f"{c['count']}/{c['of']} ({_pct(c['share'])})" if c["of"] else "nothing to measure"
            out.append(f"| {c['id']} | {c['title']} | {measured} | {mark[c['status']]} |")
        out += [
            "",
            "| host | deploys | success rate | change failure | healthy p50 / p95 | within 60 s "
            "| rollbacks (restored) | rollback p95 | time to restore p50 | lead time p50 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, m in [*d["hosts"].items(), ("**overall**", o)]:
            th, rb = m["time_to_healthy"], m["rollbacks"]
            out.append(
                f"| {label} | {m['deploys']} | {_pct(m['success_rate'])} | {_pct(m['change_failure_rate'])} "
                f"| {_dur(th['median_s'])} / {_dur(th['p95_s'])} | {_pct(m['healthy_within_60s'])} "
                f"| {rb['count']} ({rb['restored']}) | {_dur(rb['time_to_healthy']['p95_s'])} "
                f"| {_dur(m['time_to_restore']['median_s'])} | {_dur(m['lead_time']['median_s'])} |"
            )
        if o["deploys"]:
            days = d["per_day"]
            top = max(r["deploys"] for r in days)
            labels = ", ".join(f'"{r["day"][5:]}"' for r in days)
            out += [
                "",
                "```mermaid",
                "xychart-beta",
                '    title "Deploys per day"',
                f"    x-axis [{labels}]",
                f'    y-axis "deploys" 0 --> {max(top, 1)}',
                f"    bar [{', '.join(str(r['deploys']) for r in days)}]",
                f"    line [{', '.join(str(r.get('success', 0)) for r in days)}]",
                "```",
                "",
                "Bars: deploys; line: the successful ones.",
                "",
                "```mermaid",
                "pie title Outcomes",
                *(f'    "{k}" : {v}' for k, v in o["outcomes"].items()),
                "```",
            ]
        return "\n".join(out) + "\n"


def summary_line(m: dict) -> str:
    th, rb, tr, lt = m["time_to_healthy"], m["rollbacks"], m["time_to_restore"], m["lead_time"]
    ob = m["on_branch"]
    parts = [
        f"{m['deploys']} deploys, {m['success']} succeeded ({_pct(m['success_rate'])}), "
        f"change failure rate {_pct(m['change_failure_rate'])}",
        f"{ob['deploys']} from {ob['branch']}, {ob['success']} succeeded",
        f"healthy median {_dur(th['median_s'])} p95 {_dur(th['p95_s'])}, "
        f"{_pct(m['healthy_within_60s'])} within 60 s",
        f"{rb['count']} rollbacks ({rb['automatic']} automatic), {rb['restored']} restored health, "
        f"median {_dur(rb['time_to_healthy']['median_s'])} p95 {_dur(rb['time_to_healthy']['p95_s'])}",
        f"time to restore median {_dur(tr['median_s'])}"
        + (f" ({tr['unrestored']} not restored yet)" if tr["unrestored"] else ""),
        f"lead time median {_dur(lt['median_s'])}",
    ]
    if m["unfinished"]:
        parts.append(f"{m['unfinished']} unfinished")
    return "; ".join(parts)


def criterion_line(c: dict) -> str:
    measured = f"{c['count']}/{c['of']} ({_pct(c['share'])})" if c["of"] else "nothing to measure"
    return f"{c['id']} {c['status']:<7} {c['title']}: {measured}"


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
