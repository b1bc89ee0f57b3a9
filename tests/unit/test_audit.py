"""The controller's log bundle: masked events, summary.json/.md, the GitHub job summary."""

from __future__ import annotations

import io
import json
from datetime import UTC
from pathlib import Path

import pytest

from deployer.audit import Bundle, Recorder, markdown, report
from deployer.errors import RemoteError
from deployer.output import Reporter
from deployer.redact import Redactor
from deployer.runinfo import RunInfo
from deployer.summary import HostResult, Summary

SECRET = "sup3r-s3cret-api-token-9f1c"


def test_bundle_masks_every_event_even_secrets_learned_late(tmp_path):
    red = Redactor()
    reporter = Reporter("plain", red, stream=io.StringIO())
    bundle = Bundle(tmp_path, "deploy", red)
    reporter.sink = bundle.record
    reporter.event("prod-1", {"step": "upload", "status": "ok", "detail": "3 files"})
    reporter.event("prod-1", {"step": "tick"})  # heartbeats are not kept
    reporter.say(f"the .env says API_TOKEN={SECRET}")  # before the redactor knows it
    red.add_env(f"API_TOKEN={SECRET}\n")
    reporter.event("prod-1", {"step": "smoke", "status": "fail", "detail": f"saw {SECRET}"})
    bundle.close()
    lines = [json.loads(x) for x in (bundle.dir / "events.jsonl").read_text().splitlines()]
    assert [e.get("step") or "message" for e in lines] == ["upload", "message", "smoke"]
    assert lines[0]["host"] == "prod-1" and lines[0]["time"].endswith("Z")
    assert SECRET not in (bundle.dir / "events.jsonl").read_text()
    assert "***" in lines[1]["message"] and "***" in lines[2]["detail"]


def test_two_runs_in_one_second_get_two_folders(tmp_path):
    first, second = Bundle(tmp_path, "deploy", Redactor()), Bundle(tmp_path, "deploy", Redactor())
    assert first.dir != second.dir and first.dir.name.endswith("-deploy")
    assert second.dir.name.startswith(first.dir.name.rsplit("-", 1)[0])


def test_report_and_markdown_carry_the_facts():
    summary = Summary(
        "deploy",
        "20261126T101500Z-3f2a9c1",
        "1.2.3",
        [
            HostResult("prod-1", "success", "20261126T101500Z-3f2a9c1", "1.2.3", healthy_s=1.5, gate_s=61.0),
            HostResult(
                "prod-2",
                "reverted",
                "20261126T101500Z-3f2a9c1",
                "1.2.3",
                detail="health | probe failed\nTraceback",
            ),
        ],
        seconds=88.25,
    )
    run = RunInfo("octocat", "https://github.com/acme/svc/actions/runs/7", "refs/tags/v1.2.3")
    env = {"DEPLOYER_ARTIFACT_ID": "555", "DEPLOYER_ARTIFACT_URL": "https://x.invalid/a/555"}
    from datetime import datetime

    rep = report(
        summary,
        "svc",
        run,
        datetime(2026, 11, 26, tzinfo=UTC),
        Path("dist/svc-20261126T101500Z-3f2a9c1.tar"),
        environ=env,
    )
    assert rep["ok"] is False and rep["artifact"] == {
        "file": "svc-20261126T101500Z-3f2a9c1.tar",
        "id": "555",
        "url": "https://x.invalid/a/555",
    }
    md = markdown(rep)
    assert md.startswith("### ❌ svc deploy FAILED")
    assert "| artifact | [555](https://x.invalid/a/555) `svc-20261126T101500Z-3f2a9c1.tar` |" in md
    assert "| duration | 88.2 s |" in md or "| duration | 88.3 s |" in md
    assert "[logs](https://github.com/acme/svc/actions/runs/7) by octocat" in md
    assert "| prod-1 | success | 20261126T101500Z-3f2a9c1 | 1.50 s | 61.00 s |  |" in md
    assert "health \\| probe failed Traceback" in md  # one table row, pipes escaped


class _Ctx:
    """What Recorder needs of the CLI's context: config, redactor, reporter."""

    def __init__(self, tmp_path: Path):
        from deployer.config import load_config

        (tmp_path / "deploy.toml").write_text('[app]\nname = "svc"\n')
        self._config = load_config(tmp_path / "deploy.toml", environ={})
        self.redactor = Redactor([SECRET])
        self.reporter = Reporter("plain", self.redactor, stream=io.StringIO())

    def config(self):
        return self._config


def test_recorder_writes_bundle_and_appends_the_job_summary(tmp_path):
    ctx = _Ctx(tmp_path)
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("### artifact\n")
    env = {"GITHUB_STEP_SUMMARY": str(step_summary), "GITHUB_ACTOR": "octocat"}
    summary = Summary(
        "rollback",
        None,
        None,
        [HostResult("prod-1", "success", "r1", "1.0", detail=f"x {SECRET}")],
        seconds=3,
    )
    with Recorder(ctx.config(), ctx.reporter, "rollback", str(tmp_path / "logs"), environ=env) as rec:
        ctx.reporter.event("prod-1", {"step": "rollback", "status": "ok", "detail": "r2 -> r1"})
        rec.finish(summary)
    assert ctx.reporter.sink is None
    [bundle] = (tmp_path / "logs").iterdir()
    assert sorted(p.name for p in bundle.iterdir()) == ["events.jsonl", "summary.json", "summary.md"]
    rep = json.loads((bundle / "summary.json").read_text())
    assert rep["ok"] is True and rep["action"] == "rollback" and rep["notifications"] == []
    assert rep["run"]["actor"] == "octocat"
    text = step_summary.read_text()
    assert text.startswith("### artifact\n") and "### ✅ svc rollback succeeded" in text
    assert SECRET not in text + (bundle / "summary.json").read_text()


@pytest.mark.parametrize(
    "exc, said",
    [(RemoteError("prod-1: link lost"), "prod-1: link lost"), (KeyboardInterrupt(), "interrupted")],
)
def test_an_error_inside_is_recorded_as_a_failure_and_goes_on_up(tmp_path, exc, said):
    ctx = _Ctx(tmp_path)
    with (
        pytest.raises(type(exc)),
        Recorder(ctx.config(), ctx.reporter, "deploy", str(tmp_path / "logs"), environ={}),
    ):
        raise exc
    [bundle] = (tmp_path / "logs").iterdir()
    rep = json.loads((bundle / "summary.json").read_text())
    assert rep["ok"] is False and rep["error"] == said and rep["hosts"] == []
    assert "no host reached" in (bundle / "summary.md").read_text()


def test_an_unwritable_log_dir_does_not_stop_the_run(tmp_path):
    ctx = _Ctx(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with Recorder(ctx.config(), ctx.reporter, "deploy", str(blocker / "logs"), environ={}) as rec:
        rec.finish(Summary("deploy", "r1", "1.0", [HostResult("h", "success")]))
    assert "cannot write" in ctx.reporter.stream.getvalue()


def test_a_secret_hosts_journal_is_named_by_its_place_not_its_address(tmp_path):
    """DEPLOYER_HOSTS from a secret: the log bundle's file names carry no address either."""
    ctx = _Ctx(tmp_path)
    ctx.redactor.add_secret_hosts(
        {"DEPLOYER_HOSTS": "203.0.113.10,203.0.113.11", "DEPLOYER_HOSTS_SECRET": "1"}
    )
    summary = Summary(
        "deploy",
        "r1",
        "1.0",
        [
            HostResult(address, "success", "r1", "1.0", journal=[f"started on {address}"])
            for address in ("203.0.113.10", "203.0.113.11")
        ]
        + [HostResult("prod-3", "success", "r1", "1.0", journal=["ok"])],  # a named host keeps its name
    )
    with Recorder(ctx.config(), ctx.reporter, "deploy", str(tmp_path / "logs"), environ={}) as rec:
        ctx.reporter.event(
            "203.0.113.10", {"step": "switch", "status": "ok", "detail": "203.0.113.10 switched"}
        )
        rec.finish(summary)
    [bundle] = (tmp_path / "logs").iterdir()
    names = sorted(p.name for p in bundle.iterdir())
    assert names == [
        "events.jsonl",
        "journal-host-1.txt",
        "journal-host-2.txt",
        "journal-prod-3.txt",
        "summary.json",
        "summary.md",
    ]
    everything = "".join(p.read_text() for p in bundle.iterdir()) + ctx.reporter.stream.getvalue()
    assert "203.0.113.1" not in everything and "***" in everything
    assert json.loads((bundle / "summary.json").read_text())["journal"] == {
        "host-1": "journal-host-1.txt",
        "host-2": "journal-host-2.txt",
        "prod-3": "journal-prod-3.txt",
    }
