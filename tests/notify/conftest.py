"""Real local receivers for notifications: an HTTP server and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import free_port


class Webhook:
    """Captures every request: path, headers, raw body, parsed JSON (when it is JSON)."""

    def __init__(self, status: int = 200):
        self.requests: list[dict] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                hook.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body.decode("utf-8", "replace"),
                        "json": parsed,
                    }
                )
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd server that accepts any login (recorded) and keeps every message."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[dict] = []
        self.logins: list[tuple] = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
                msg = message_from_bytes(raw, policy=email_policy)
                text = msg.get_body(preferencelist=("plain",))
                box.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": envelope.rcpt_tos,
                        "subject": str(msg["subject"]),
                        "raw": raw.decode("utf-8", "replace"),
                        "text": text.get_content() if text else "",
                    }
                )
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            box.logins.append((mechanism, auth_data.login, auth_data.password))
            return AuthResult(success=True)

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def mailbox():
    box = Mailbox()
    yield box
    box.close()


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    return free_port()
