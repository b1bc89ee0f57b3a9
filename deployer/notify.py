"""Notifications on success and failure, to the channels deploy.toml names (``[[notify]]``).

One well-kept library, apprise, speaks Slack, e-mail, webhooks and Telegram. A channel's
URL (token included) is never in the config: ``url_from_variable`` names the environment
variable holding it, or a ``NAME=URL`` line of the file ``DEPLOYER_NOTIFY_FILE`` points
at (how CI hands over one secret for every channel).

Every value of the message passes the redactor, and so does every error a channel
reports. A channel that fails is reported and recorded, never fatal: a good deploy
stays good when the chat service is down.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from deployer.redact import Redactor

NOTIFY_FILE_VARIABLE = "DEPLOYER_NOTIFY_FILE"
TIMEOUT = 15.0  # seconds for one channel

# kind -> URL prefixes apprise is given for it: a Slack token never goes to a webhook
KIND_PREFIXES = {
    "slack": ("slack://", "https://hooks.slack.com/"),
    "webhook": ("json://", "jsons://", "form://", "forms://", "xml://", "xmls://"),
    "email": ("mailto://", "mailtos://"),
    "telegram": ("tgram://", "https://api.telegram.org/"),
}
TOKEN_AS_HOST = ("slack", "tgram")
# query options of apprise URLs that are addresses or settings, not credentials
PLAIN_OPTIONS = {
    "to",
    "from",
    "cc",
    "bcc",
    "smtp",
    "name",
    "mode",
    "format",
    "method",
    "overflow",
    "user",
    "port",
    "reply",
    "priority",
    "retry",
    "wait",
    "cto",
    "optional",
}
_LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")

# apprise logs through `logging`; what it says is reported masked, never printed raw
logging.getLogger("apprise").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    outcome: str  # success | failure


@dataclass(frozen=True)
class Delivery:
    """What happened to one channel (masked)."""

    kind: str
    variable: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def outcome(report: dict) -> str:
    return "success" if report.get("ok") else "failure"


def compose(report: dict, redactor: Redactor) -> Message:
    """The message for a run report (see ``deployer.report.report``): title + plain text."""
    result = outcome(report)
    action = report.get("action", "deploy")
    head = "ok" if result == "success" else "FAILED"
    release = report.get("release") or "?"
    title = f"{report.get('app', '?')} {action} {head}: {report.get('version') or release}"
    lines = [
        f"result: {result}",
        f"app: {report.get('app', '?')}",
        f"action: {action}",
        f"release: {release}",
        f"version: {report.get('version') or '?'}",
    ]
    artifact = report.get("artifact") or {}
    if artifact.get("id") or artifact.get("file"):
        lines.append("artifact: " + " ".join(str(v) for v in (artifact.get("id"), artifact.get("file")) if v))
    if report.get("seconds") is not None:
        lines.append(f"took: {report['seconds']:.1f}s")
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    lines.append("hosts:")
    for h in report.get("hosts") or []:
        times = ""
        if h.get("healthy_s") is not None:
            times = f" (healthy {h['healthy_s']:.2f}s, gate closed {h.get('gate_s') or 0:.2f}s)"
        detail = f" - {h['detail']}" if h.get("detail") else ""
        lines.append(
            f"- {h.get('label')}: {h.get('result')} {h.get('release') or ''}".rstrip() + times + detail
        )
    if not report.get("hosts"):
        lines.append("- none reached")
    run = report.get("run") or {}
    if run.get("url"):
        lines.append(f"logs: {run['url']}")
    if artifact.get("url"):
        lines.append(f"artifact link: {artifact['url']}")
    if run.get("actor"):
        lines.append(f"by: {run['actor']}")
    return Message(redactor(title), redactor("\n".join(lines)), result)


def _notify_file(environ) -> dict:
    path = environ.get(NOTIFY_FILE_VARIABLE)
    if not path:
        return {}
    try:
        text = Path(os.path.expanduser(path)).read_text(encoding="utf-8")
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        m = _LINE_RE.match(line)
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[m.group(1)] = value
    return found


def channel_url(variable: str, environ=None) -> str | None:
    """The URL a channel's variable holds: the environment first, then the notify file."""
    env = os.environ if environ is None else environ
    return env.get(variable) or _notify_file(env).get(variable) or None


def url_secrets(url: str) -> list[str]:
    """The parts of a channel URL that are credentials: the URL, its password, its tokens."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    if parts.password:
        out += [parts.password, unquote(parts.password)]
    # slack://TokenA/TokenB/TokenC and tgram://BotToken/ChatID carry a token as the "host"
    head = parts.netloc if parts.scheme.lower() in TOKEN_AS_HOST else ""
    pieces = re.split(r"[/:]", f"{head}/{parts.path}")
    pieces += [v for k, v in parse_qsl(parts.query) if k.lower() not in PLAIN_OPTIONS and "@" not in v]
    out += [p for p in pieces if _token_like(p)]
    return out


def _token_like(piece: str) -> bool:
    """Long, or not a plain word like "services" or "hooks": a token or key."""
    return len(piece) >= 16 or (len(piece) >= 8 and not piece.isalpha())


def register_secrets(channels: Iterable, redactor: Redactor, environ=None) -> None:
    """Teach the redactor every configured channel's URL and its credential parts."""
    for n in channels:
        url = channel_url(n.url_from_variable, environ)
        if url:
            redactor.add(url_secrets(url))


def send(
    channels: Iterable, message: Message, redactor: Redactor, environ=None, timeout: float = TIMEOUT
) -> list[Delivery]:
    """Send ``message`` to every channel whose ``on`` lists its outcome; never raises."""
    deliveries = []
    for n in channels:
        if message.outcome not in n.on:
            continue
        url = channel_url(n.url_from_variable, environ)
        if not url:
            deliveries.append(
                Delivery(n.kind, n.url_from_variable, False, f"{n.url_from_variable} is not set")
            )
            continue
        redactor.add(url_secrets(url))
        ok, detail = _deliver(n.kind, url, message, timeout)
        deliveries.append(Delivery(n.kind, n.url_from_variable, ok, redactor(detail)))
    return deliveries


def _deliver(kind: str, url: str, message: Message, timeout: float) -> tuple[bool, str]:
    if not url.lower().startswith(KIND_PREFIXES[kind]):
        schemes = ", ".join(p.split(":")[0] for p in KIND_PREFIXES[kind])
        return False, f"not a {kind} URL (expected {schemes})"
    try:
        import apprise

        channel = apprise.Apprise()
        if not channel.add(url):
            return False, "apprise does not understand this URL"
        kind_of = apprise.NotifyType.SUCCESS if message.outcome == "success" else apprise.NotifyType.FAILURE
        result = channel.notify(
            body=message.body,
            title=message.title,
            notify_type=kind_of,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=timeout,
        )
        if result:
            return True, "sent"
        said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
        return False, said[-1] if said else f"not delivered ({result.status.name.lower()})"
    except Exception as e:  # a notification never breaks a deploy
        return False, f"{type(e).__name__}: {e}"
