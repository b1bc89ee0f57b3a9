"""Notifications sent for real, through apprise, to receivers on 127.0.0.1.

Payloads are checked for what a person needs (release, version, result, link to the
run's logs) and for the absence of every secret: .env values, secret variables, the
channel's own token. A receiver that is down is reported, never raised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from deployer.config import validate_config
from deployer.notify import Message, compose, send, url_secrets
from deployer.redact import Redactor

SECRETS = ("sup3r-s3cret-api-token-9f1c", "tg-bot-token-123456:AAE-xYz")
DOTENV = f"HTTP_PORT=8080\nAPI_TOKEN={SECRETS[0]}\nTG_NOTE='{SECRETS[1]}'\n"
HOOK_TOKEN = "hk-7Qz81Xw0PpLm2Rr4"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RUN_URL = "https://github.com/acme/svc/actions/runs/4242"


def redactor() -> Redactor:
    r = Redactor()
    r.add_env(DOTENV)
    return r


def config(*channels: dict):
    return validate_config({"app": {"name": "tg_video_streamer"}, "notify": list(channels)})


def a_report(ok: bool = True, leak: bool = True) -> dict:
    """A run report as deployer.audit.report makes it; host details carry secrets to mask."""
    detail = f"health: token {SECRETS[0]} refused" if leak else ""
    return {
        "app": "tg_video_streamer",
        "action": "deploy",
        "ok": ok,
        "release": "20261126T101500Z-3f2a9c1",
        "version": "0.1.0.dev1795688100+g3f2a9c1",
        "seconds": 42.5,
        "artifact": {
            "file": "tg_video_streamer-20261126T101500Z-3f2a9c1.tar",
            "id": "987654",
            "url": "https://github.com/acme/svc/actions/runs/4242/artifacts/987654",
        },
        "hosts": [
            {
                "label": "prod-1",
                "result": "success" if ok else "reverted",
                "release": "20261126T101500Z-3f2a9c1",
                "detail": "" if ok else detail,
                "healthy_s": 1.25,
                "gate_s": 61.5,
            }
        ],
        "run": {"actor": "octocat", "url": RUN_URL, "ref": "refs/heads/main"},
        "error": None if ok else f"deploy failed; {SECRETS[1]} in a message",
    }


def assert_no_secrets(text: str, *more: str) -> None:
    for s in (*SECRETS, *more):
        assert s not in text, f"secret {s[:6]}... leaked"


def test_webhook_gets_release_version_result_and_link_never_a_secret(webhook):
    url = f"json://127.0.0.1:{webhook.port}/hooks/{HOOK_TOKEN}"
    r = redactor()
    msg = compose(a_report(ok=False), r)
    out = send(
        config({"kind": "webhook", "url_from_variable": "DEPLOY_HOOK"}).notify,
        msg,
        r,
        environ={"DEPLOY_HOOK": url},
    )
    assert [d.ok for d in out] == [True], out
    [req] = webhook.requests
    assert req["path"] == f"/hooks/{HOOK_TOKEN}"
    payload = req["json"]
    assert payload["type"] == "failure"
    assert "deploy FAILED" in payload["title"] and "0.1.0.dev1795688100+g3f2a9c1" in payload["title"]
    body = payload["message"]
    for needed in (
        "result: failure",
        "release: 20261126T101500Z-3f2a9c1",
        "version: 0.1.0.dev1795688100+g3f2a9c1",
        "artifact: 987654",
        f"logs: {RUN_URL}",
        "prod-1: reverted",
        "by: octocat",
    ):
        assert needed in body, needed
    assert "***" in body  # the leaking detail and error were masked, not dropped
    assert_no_secrets(req["body"], HOOK_TOKEN)


def test_success_goes_only_to_channels_that_ask_for_it(webhook):
    url = f"json://127.0.0.1:{webhook.port}/ok"
    channels = config(
        {"kind": "webhook", "url_from_variable": "ON_FAIL", "on": ["failure"]},
        {"kind": "webhook", "url_from_variable": "ON_BOTH"},
    ).notify
    env = {"ON_FAIL": url + "/fail", "ON_BOTH": url + "/both"}
    r = redactor()
    send(channels, compose(a_report(ok=True), r), r, environ=env)
    assert [q["path"] for q in webhook.requests] == ["/ok/both"]
    assert webhook.requests[0]["json"]["type"] == "success"
    assert "result: success" in webhook.requests[0]["json"]["message"]
    send(channels, compose(a_report(ok=False), r), r, environ=env)
    assert sorted(q["path"] for q in webhook.requests[1:]) == ["/ok/both", "/ok/fail"]


def test_form_webhook_from_the_notify_file(webhook, tmp_path):
    urls = tmp_path / "notify"
    urls.write_text(f"# NAME=apprise URL\nexport TEAM_HOOK='form://127.0.0.1:{webhook.port}/f'\n")
    r = redactor()
    out = send(
        config({"kind": "webhook", "url_from_variable": "TEAM_HOOK"}).notify,
        compose(a_report(), r),
        r,
        environ={"DEPLOYER_NOTIFY_FILE": str(urls)},
    )
    assert out[0].ok, out
    [req] = webhook.requests
    assert "release" in req["body"] and "20261126T101500Z-3f2a9c1" in req["body"]
    assert "application/x-www-form-urlencoded" in req["headers"].get("Content-Type", "")


def test_email_through_a_local_smtp_server(mailbox):
    password = "smtp-pa55word-Zx9"
    url = (
        f"mailto://deployer:{password}@127.0.0.1:{mailbox.port}"
        "?to=ops@example.com&from=deployer@example.com&mode=insecure"
    )
    r = redactor()
    out = send(
        config({"kind": "email", "url_from_variable": "MAIL_URL"}).notify,
        compose(a_report(ok=True), r),
        r,
        environ={"MAIL_URL": url},
    )
    assert out[0].ok, out
    [mail] = mailbox.messages
    assert mail["to"] == ["ops@example.com"]
    assert mail["subject"].startswith("tg_video_streamer deploy ok")
    for needed in (
        "result: success",
        "release: 20261126T101500Z-3f2a9c1",
        "version: 0.1.0.dev1795688100+g3f2a9c1",
        f"logs: {RUN_URL}",
        "prod-1: success 20261126T101500Z-3f2a9c1 (healthy 1.25s, gate closed 61.50s)",
    ):
        assert needed in mail["text"], needed
    assert mailbox.logins == [("PLAIN", b"deployer", password.encode())]  # used to log in...
    assert_no_secrets(mail["raw"], password)  # ...never in the mail


def test_a_receiver_that_is_down_is_reported_not_raised(refused_port):
    url = f"json://127.0.0.1:{refused_port}/hooks/{HOOK_TOKEN}"
    r = redactor()
    out = send(
        config({"kind": "webhook", "url_from_variable": "DEPLOY_HOOK"}).notify,
        compose(a_report(), r),
        r,
        environ={"DEPLOY_HOOK": url},
    )
    [d] = out
    assert not d.ok and "connection" in d.detail.lower()
    assert_no_secrets(json.dumps(d.as_dict()), HOOK_TOKEN)


def test_unset_variable_and_wrong_kind_are_reported_and_nothing_is_sent(webhook):
    channels = config(
        {"kind": "slack", "url_from_variable": "SLACK_WEBHOOK_URL"},
        {"kind": "telegram", "url_from_variable": "TG_URL"},
    ).notify
    r = redactor()
    out = send(
        channels,
        Message("t", "b", "success"),
        r,
        environ={"SLACK_WEBHOOK_URL": f"json://127.0.0.1:{webhook.port}/x"},
    )
    assert [(d.kind, d.ok) for d in out] == [("slack", False), ("telegram", False)]
    assert "not a slack URL" in out[0].detail and "TG_URL is not set" in out[1].detail
    assert webhook.requests == []


def test_tokens_of_channel_urls_are_known_secrets():
    assert "T1JJ3T3L2" in url_secrets("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops")
    assert "AAHxyzabcdefghijkl" in url_secrets("tgram://123456789:AAHxyzabcdefghijkl/-1001234")
    mail = url_secrets("mailto://bot:p4ssw0rd!@smtp.example.com:587?to=ops@example.com")
    assert "p4ssw0rd!" in mail and "example.com" not in mail


# ---------------------------------------------------------------------- through the CLI
def test_a_failed_deploy_notifies_writes_the_bundle_and_the_job_summary(webhook, tmp_path):
    """`deployer deploy` of a corrupt artifact: exit 1, failure notified, all masked."""
    (tmp_path / "prod.env").write_text(DOTENV)
    (tmp_path / "deploy.toml").write_text(
        '[app]\nname = "tg_video_streamer"\n[env]\nfile = "prod.env"\n'
        '[[hosts]]\naddress = "127.0.0.1"\nport = 9\n'
        '[[notify]]\nkind = "webhook"\nurl_from_variable = "DEPLOY_HOOK"\n'
    )
    bad = tmp_path / "tg_video_streamer-20261126T101500Z-3f2a9c1.tar"
    with tarfile.open(bad, "w") as t:
        info = tarfile.TarInfo("manifest.json")
        data = b'{"not": "a manifest"}'
        info.size = len(data)
        import io

        t.addfile(info, io.BytesIO(data))
    ssh_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtZmFrZS1rZXk=\n"
    summary = tmp_path / "step-summary.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DEPLOYER_"))}
    env.update(
        {
            "DEPLOY_HOOK": f"json://127.0.0.1:{webhook.port}/hooks/{HOOK_TOKEN}",
            "DEPLOYER_SSH_KEY": ssh_key,
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/svc",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_ACTOR": "octocat",
            "DEPLOYER_ARTIFACT_ID": "987654",
        }
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "--plain",
            "deploy",
            "--log-dir",
            str(tmp_path / "logs"),
            str(bad),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    [bundle] = (tmp_path / "logs").iterdir()
    assert bundle.name.endswith("-deploy")
    report = json.loads((bundle / "summary.json").read_text())
    assert report["ok"] is False and report["error"] and report["artifact"]["id"] == "987654"
    assert report["run"]["url"] == RUN_URL
    assert report["notifications"] == [
        {"kind": "webhook", "variable": "DEPLOY_HOOK", "ok": True, "detail": "sent"}
    ]
    [req] = webhook.requests
    assert req["json"]["type"] == "failure" and f"logs: {RUN_URL}" in req["json"]["message"]
    assert "❌ tg_video_streamer deploy FAILED" in summary.read_text()
    everything = (
        "".join(p.read_text() for p in bundle.iterdir())
        + req["body"]
        + summary.read_text()
        + proc.stdout
        + proc.stderr
    )
    assert_no_secrets(everything, HOOK_TOKEN, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUtZmFrZS1rZXk=")


@pytest.mark.parametrize("mode", ["plain", "json"])
def test_the_notify_error_line_is_one_masked_line_on_stderr(refused_port, tmp_path, mode):
    from deployer.audit import Recorder
    from deployer.summary import HostResult, Summary

    ctx = _ctx(tmp_path, mode, f"json://127.0.0.1:{refused_port}/hooks/{HOOK_TOKEN}")
    summary = Summary("deploy", "20261126T101500Z-3f2a9c1", "0.1.0", [HostResult("prod-1", "success")])
    err = _capture_stderr(lambda: _run_recorder(Recorder, ctx, tmp_path, summary))
    lines = [ln for ln in err.splitlines() if "notify" in ln]
    assert len(lines) == 1 and lines[0].startswith("deployer: notify webhook (DEPLOY_HOOK) failed")
    assert HOOK_TOKEN not in err
    [bundle] = (tmp_path / "logs").iterdir()
    report = json.loads((bundle / "summary.json").read_text())
    assert report["ok"] is True and report["notifications"][0]["ok"] is False


def _ctx(tmp_path: Path, mode: str, url: str):
    from deployer.cli import Context

    (tmp_path / "deploy.toml").write_text(
        '[app]\nname = "tg_video_streamer"\n[[notify]]\nkind = "webhook"\nurl_from_variable = "DEPLOY_HOOK"\n'
    )
    os.environ["DEPLOY_HOOK"] = url
    return Context(str(tmp_path / "deploy.toml"), mode)


def _run_recorder(recorder, ctx, tmp_path, summary):
    with recorder(ctx.config(), ctx.reporter, "deploy", str(tmp_path / "logs")) as rec:
        rec.finish(summary)


def _capture_stderr(fn) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        fn()
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _clean_hook_variable():
    yield
    os.environ.pop("DEPLOY_HOOK", None)
