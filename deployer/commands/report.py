"""``deployer report``: the spec's measurable outcomes (SC-002, SC-003, SC-005) from the
hosts' audit logs, read with the engine's one-shot ``history --since``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click

from deployer.commands.common import host_option
from deployer.context import Context, pass_ctx
from deployer.errors import UsageError

MAX_DAYS = 3650


def parse_days(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise UsageError(f"--days {text}: a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


@click.command()
@click.option("--days", default="30", show_default=True, metavar="N", help="The period: the last N days.")
@click.option("--markdown", is_flag=True, help="Markdown for a GitHub job summary, with Mermaid charts.")
@click.option(
    "--branch",
    default="main",
    show_default=True,
    metavar="NAME",
    help="SC-005 counts the deploys of releases built from this branch.",
)
@host_option
@pass_ctx
def report(obj: Context, days: str, markdown: bool, branch: str, hosts) -> None:
    """Deploys, success rate, time to healthy, rollbacks, restore and lead time; each
    criterion met or missed (exit 1 when one is missed). ``--json``: the numbers as one object."""
    from deployer.commands.common import local_engine
    from deployer.scorecard import Report

    n = parse_days(days)
    if not branch.strip():
        raise UsageError("--branch: a branch name, e.g. main")
    if markdown and obj.reporter.mode == "json":
        raise UsageError("--json or --markdown, not both")
    now = datetime.now(UTC)
    since = (now - timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with local_engine() as engine:
        data, code = obj.pipeline().command(obj.hosts(hosts), engine, "history", "--since", since)
    records: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    for label, events in data.items():
        if isinstance(events, str):
            errors[label] = events
            continue
        records[label] = [
            e["record"] for e in events if e.get("step") == "history" and isinstance(e.get("record"), dict)
        ]
    result = Report(records, now, n, branch)
    payload = {**result.data, "errors": errors}
    if markdown:
        text = result.markdown() + "".join(f"\n**{h}**: not read: {msg}\n" for h, msg in errors.items())
    else:
        text = result.text() + "".join(f"\n{h}: error: {msg}" for h, msg in errors.items())
    obj.out(payload, text)
    sys.exit(max(result.exit_code, code, 1 if errors else 0))


def register(group: click.Group) -> None:
    group.add_command(report)
