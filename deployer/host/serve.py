"""``serve``: one engine process per deploy, driven through stdin by the controller.

Input is JSON lines: commands (``preflight``, ``stage``, ``activate``, ``rollback``,
``prune``, ``bye``) and a heartbeat (``{"cmd": "hb"}``) every second. A command run
over SSH has no terminal, so no hangup signal reaches it when the link dies: the
heartbeat is how it knows. Before the switch, end of input or 5 s without a line means
abort: stop the installer, clean up, free the lock, leave `current` alone. After the
switch the engine finishes the health gate on its own and records the outcome.

Output is the engine's JSON events, plus a ``tick`` every second so the controller can
tell a quiet engine from a dead link, and one ``done`` event per command.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from typing import IO, Optional

from deployer.errors import AbortedError, DeployerError
from deployer.host.activate import EnvChange
from deployer.host.contract import EXIT_ABORTED, Command, Status, Step
from deployer.host.engine import Engine

HEARTBEAT_TIMEOUT = 5.0
TICK = 1.0


class Serve:
    def __init__(
        self, engine: Engine, stdin: Optional[IO[bytes]] = None, heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    ):
        self.engine = engine
        self.events = engine.events
        self.manifest: Optional[dict] = None  # the one the preflight checked
        # unbuffered: the reader thread is still blocked in a read when the engine exits,
        # and a daemon thread inside a *buffered* read makes the interpreter abort at exit
        # (SIGABRT, "could not acquire lock for <stdin> at interpreter shutdown")
        self.stdin = stdin or open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
        self.timeout = heartbeat_timeout
        self.commands: queue.Queue[dict] = queue.Queue()
        self.last_input = time.monotonic()
        self.input_closed = threading.Event()
        self.stopped = threading.Event()
        self.lost_reason = ""

    # ------------------------------------------------------------------ threads
    def _reader(self) -> None:
        for raw in iter(self.stdin.readline, b""):
            self.last_input = time.monotonic()
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("cmd") not in (None, Command.HEARTBEAT):
                self.commands.put(msg)
        self.input_closed.set()

    def _watchdog(self) -> None:
        """Ticks every second; sets abort when the controller is gone (before the switch)."""
        while not self.stopped.wait(TICK):
            self.events.emit(Step.TICK, Status.INFO)
            silent = time.monotonic() - self.last_input
            if self.input_closed.is_set() or silent > self.timeout:
                self.lost_reason = (
                    "end of input" if self.input_closed.is_set() else f"no heartbeat for {silent:.1f}s"
                )
                if not self.engine.switched.is_set():
                    self.engine.abort.set()

    # ------------------------------------------------------------------ main loop
    def run(self, lock_wait: float = 0.0) -> int:
        threading.Thread(target=self._reader, daemon=True, name="stdin").start()
        threading.Thread(target=self._watchdog, daemon=True, name="watchdog").start()
        try:
            self.engine.acquire(wait=lock_wait)
        except DeployerError as e:
            self.events.emit(Step.DONE, Status.FAIL, str(e), cmd="lock", error=type(e).__name__)
            self.stopped.set()
            return e.exit_code
        try:
            return self._loop()
        finally:
            self.engine.release_lock()
            self.stopped.set()

    def _loop(self) -> int:
        while True:
            if self.engine.abort.is_set():
                self.events.emit(
                    Step.ABORT,
                    Status.FAIL,
                    f"controller lost ({self.lost_reason}) before the switch: nothing switched, lock freed",
                )
                return EXIT_ABORTED
            try:
                msg = self.commands.get(timeout=0.1)
            except queue.Empty:
                if self.input_closed.is_set() and self.engine.switched.is_set():
                    return 0  # gate finished on its own; nobody left to talk to
                continue
            if msg["cmd"] == Command.BYE:
                self.events.emit(Step.DONE, Status.OK, "bye", cmd=Command.BYE)
                return 0
            self._dispatch(msg)

    def _dispatch(self, msg: dict) -> None:
        cmd = msg["cmd"]
        try:
            result = self._run_command(cmd, msg)
        except AbortedError as e:
            self.events.emit(Step.DONE, Status.FAIL, str(e), cmd=cmd, error="AbortedError")
        except DeployerError as e:
            self.events.emit(Step.DONE, Status.FAIL, str(e), cmd=cmd, error=type(e).__name__)
        except Exception as e:  # an engine bug must still answer the controller
            self.events.emit(
                Step.DONE,
                Status.FAIL,
                f"internal error: {type(e).__name__}: {e}",
                cmd=cmd,
                error="InternalError",
            )
        else:
            self.events.emit(Step.DONE, Status.OK, "", cmd=cmd, result=result)

    def _run_command(self, cmd: str, msg: dict):
        engine = self.engine
        if cmd == Command.PREFLIGHT:
            self.manifest = msg["manifest"]
            return engine.preflight(
                msg["manifest"], upload=bool(msg.get("upload")), templates=msg.get("templates")
            )
        if cmd == Command.STAGE:
            try:
                return {"release": engine.stage(msg["artifact"], expected=self.manifest)}
            finally:
                engine.discard_upload(msg["artifact"])
        if cmd == Command.ACTIVATE:
            env = EnvChange(text=msg.get("env"))
            return engine.activate(msg["release"], env, action=msg.get("action", "deploy"))
        if cmd == Command.ROLLBACK:
            return engine.rollback(msg.get("to"))
        if cmd == Command.PRUNE:
            return engine.prune(msg.get("staging"))
        if cmd == Command.RELEASES:
            return engine.releases()
        if cmd == Command.LOGS:  # the journal kept for a release, before the controller says bye
            return {"lines": engine.logs(msg.get("release"), int(msg["lines"]))}
        raise DeployerError(f"unknown command {cmd!r}")
