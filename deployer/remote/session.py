"""One host engine process per host per deploy, driven over its stdin.

The controller starts ``python3 engine.pyz serve`` once, sends commands and a
heartbeat every second, and reads the engine's JSON events. The engine ticks every
second, so silence for ``READ_TIMEOUT`` means the link is dead: the session is closed
at once (the engine notices the missing heartbeat and aborts by itself if it had not
switched yet).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable

import paramiko

from deployer.errors import (
    AbortedError,
    DeployerError,
    HealthError,
    HostError,
    InstallError,
    LockHeldError,
    PreflightError,
    RemoteError,
)
from deployer.remote.ssh import Connection

READ_TIMEOUT = 3.0
HEARTBEAT = 1.0
ERRORS = {
    cls.__name__: cls
    for cls in (AbortedError, HealthError, HostError, InstallError, LockHeldError, PreflightError)
}
OnEvent = Callable[[str, dict], None]


class EngineSession:
    def __init__(self, conn: Connection, argv: list[str], on_event: OnEvent):
        self.conn = conn
        self.label = conn.target.label
        self.on_event = on_event
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.dead: str | None = None
        self.lines: list[dict] = []
        self._stop = threading.Event()
        try:
            self.chan = conn.open_channel(argv, READ_TIMEOUT)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise RemoteError(f"{self.label}: cannot start the engine: {e}") from None
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"read-{self.label}")
        self._beater = threading.Thread(target=self._beat, daemon=True, name=f"hb-{self.label}")
        self._reader.start()
        self._beater.start()

    # ------------------------------------------------------------------ threads
    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self.chan.recv(65536)
                if not data:
                    self.dead = self.dead or "the engine's output ended"
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("step") == "tick":
                        continue
                    self.lines.append(event)
                    self.on_event(self.label, event)
                    self.events.put(event)
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as e:
            self.dead = (
                f"no word from the host for {READ_TIMEOUT:.0f}s (link down?)"
                if isinstance(e, TimeoutError)
                else f"connection lost ({e or type(e).__name__})"
            )
        finally:
            self._stop.set()
            self.events.put(None)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            if not self._send({"cmd": "hb"}):
                return

    def _send(self, msg: dict) -> bool:
        try:
            self.chan.sendall((json.dumps(msg) + "\n").encode())
            return True
        except (OSError, EOFError, paramiko.SSHException, TimeoutError) as e:
            self.dead = self.dead or f"connection lost ({e or type(e).__name__})"
            return False

    # ------------------------------------------------------------------ commands
    def wait_ready(self) -> None:
        """The engine takes the lock first: a refused lock ends the session at once."""
        while True:
            event = self._next()
            if event.get("step") == "lock" and event.get("status") == "ok":
                return
            if event.get("step") == "done":
                self._raise(event, "lock")

    def call(self, cmd: str, **args) -> dict:
        """Send one command; return its result, or raise its error (one line, host named)."""
        if not self._send({"cmd": cmd, **args}):
            raise RemoteError(f"{self.label}: {self.dead}")
        while True:
            event = self._next()
            if event.get("step") == "done" and event.get("cmd") == cmd:
                if event["status"] == "ok":
                    return event.get("result") or {}
                self._raise(event, cmd)

    def _next(self) -> dict:
        event = self.events.get()
        if event is None:
            raise RemoteError(f"{self.label}: {self.dead or 'engine stopped'}")
        if event.get("step") in ("error", "abort") and event.get("status") == "fail":
            self._raise(event, event["step"])
        return event

    def _raise(self, event: dict, what: str):
        cls = ERRORS.get(event.get("error", ""), HostError)
        raise cls(f"{self.label}: {what}: {event.get('detail')}")

    def close(self, bye: bool = True) -> None:
        if bye and self.dead is None:
            with contextlib.suppress(DeployerError):
                self.call("bye")
        self._stop.set()
        with contextlib.suppress(Exception):
            self.chan.close()
        self._reader.join(timeout=2)
