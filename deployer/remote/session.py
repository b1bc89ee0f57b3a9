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

from deployer.errors import HOST_ERRORS, DeployerError, HostError, RemoteError
from deployer.host.contract import Command, Status, Step, parse_event
from deployer.remote.ssh import Connection

READ_TIMEOUT = 3.0
HEARTBEAT = 1.0
OnEvent = Callable[[str, dict], None]


class EngineSession:
    def __init__(self, conn: Connection, argv: list[str], on_event: OnEvent):
        self.conn = conn
        self.label = conn.target.label
        self.on_event = on_event
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.dead: str | None = None
        self.lines: list[dict] = []
        self.step: str | None = None  # the step the engine last started
        self.current: str | None = None  # the release the host ran when the lock was taken
        self._stop = threading.Event()
        try:
            self.chan = conn.open_channel(argv, READ_TIMEOUT)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise RemoteError(host=self.label, message=f"cannot start the engine: {e}") from None
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
                    event = parse_event(line)
                    if event is None or event.get("step") == Step.TICK:
                        continue
                    if event.get("status") == Status.START:
                        self.step = event.get("step")
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
            if not self._send({"cmd": Command.HEARTBEAT}):
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
        """The engine takes the lock first: a refused lock ends the session at once. The
        lock's event names the release the host runs (``current``), read under the lock."""
        while True:
            event = self._next()
            if event.get("step") == Step.LOCK and event.get("status") == Status.OK:
                self.current = event.get("current")
                return
            if event.get("step") == Step.DONE:
                self._raise(event, Step.LOCK)

    def call(self, cmd: str, **args) -> dict:
        """Send one command; return its result, or raise its error (one line, host named)."""
        if not self._send({"cmd": cmd, **args}):
            raise self._lost(cmd)
        while True:
            event = self._next()
            if event.get("step") == Step.DONE and event.get("cmd") == cmd:
                if event["status"] == Status.OK:
                    return event.get("result") or {}
                self._raise(event, cmd)

    @property
    def switched(self) -> bool:
        """Whether this session's engine has switched `current` (past the point of no return)."""
        return any(e.get("step") == Step.SWITCH and e.get("status") == Status.OK for e in self.lines)

    def exit_code(self, wait: float = 2.0) -> int | None:
        """The engine process's exit status once its output has ended; None if still running."""
        self._reader.join(timeout=wait)
        if self._reader.is_alive() or not self.chan.status_event.wait(wait):
            return None  # the status arrives on its own, after the output's end
        return self.chan.exit_status

    def _lost(self, cmd: str | None = None) -> RemoteError:
        where = self.step or cmd
        state = (
            "the engine finishes the health gate alone"
            if self.switched
            else "host unchanged: the old release is live"
        )
        return RemoteError(f"{self.dead or 'engine stopped'}; {state}", host=self.label, step=where)

    def _next(self) -> dict:
        event = self.events.get()
        if event is None:
            raise self._lost()
        if event.get("step") in (Step.ERROR, Step.ABORT) and event.get("status") == Status.FAIL:
            self._raise(event, event["step"])
        return event

    def _raise(self, event: dict, what: str):
        cls = HOST_ERRORS.get(event.get("error", ""), HostError)
        raise cls(str(event.get("detail")), host=self.label, step=what)

    def close(self, bye: bool = True) -> None:
        if bye and self.dead is None:
            with contextlib.suppress(DeployerError):
                self.call(Command.BYE)
        self._stop.set()
        with contextlib.suppress(Exception):
            self.chan.close()
        self._reader.join(timeout=2)
