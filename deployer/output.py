"""What the user sees: engine events as rich lines on a terminal (with one live line per
host: ``live.py``), plain lines in CI, JSON lines for machines. Everything passes the
redactor first."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from deployer.host.contract import QUIET_STEPS
from deployer.host.events import describe
from deployer.redact import Redactor

if TYPE_CHECKING:
    from rich.console import Console

    from deployer.live import Board

MARKS = {"ok": "[green]✓[/]", "fail": "[red]✗[/]", "start": "[dim]…[/]", "info": "[blue]·[/]"}


class Reporter:
    def __init__(self, mode: str = "auto", redactor: Redactor | None = None, stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode = mode
        self.redactor = redactor or Redactor()
        self.console = None
        if mode == "rich":  # rich is only loaded for a terminal: CI runs start faster
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False, soft_wrap=True, force_terminal=True)
        self.board: Board | None = None  # the live lines, from the first event on a terminal
        self._lock = threading.Lock()
        # every event and message shown is also handed here (the run's log bundle)
        self.sink: Callable[[str, dict], None] | None = None

    def event(self, host: str, event: dict) -> None:
        """One engine event from ``host``."""
        if event.get("step") in QUIET_STEPS:  # the contract's framing events
            return
        if self.sink:
            self.sink(host, event)
        if self.mode == "json":
            self._write(json.dumps({"host": host, **event}))
            return
        status = event.get("status", "")
        if self.mode == "plain":
            line = describe(event)  # the engine's own words for a person
            if line is not None:
                self._write(f"[{host}] {line}")
            return
        duration = f" ({event['duration']:.2f}s)" if "duration" in event else ""
        detail = event.get("detail") or ""
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        with self._lock:
            board = self._board()
            if status == "start":  # shown on the host's live line until it ends
                board.start(host, str(event.get("step")), self.redactor(detail), event.get("seconds"))
                return
            if status in ("ok", "fail"):
                board.finish(host)
            self._console().print(
                f"{MARKS.get(status, '·')} [bold]{host}[/] {event.get('step')} "
                f"[dim]{_escape(self.redactor(detail))}{duration}[/]"
            )

    def progress(self, host: str, done: int, total: int) -> None:
        """Bytes of ``host``'s upload sent so far: a progress bar on a terminal."""
        if self.mode == "rich":
            with self._lock:
                self._board().progress(host, done, total)

    def close(self) -> None:
        """The live lines end (the finished steps stay printed above them)."""
        if self.board is not None:
            self.board.stop()
            self.board = None

    def _board(self) -> Board:
        if self.board is None:
            from deployer.live import Board

            self.board = Board(self._console())
        return self.board

    @contextmanager
    def step(self, host: str, step: str, detail: str):
        """A controller-side step shown like the engine's own (start, ok/fail, duration)."""
        self.event(host, {"step": step, "status": "start", "detail": detail})
        t0 = time.monotonic()
        try:
            yield
        except BaseException as e:
            self.event(
                host, {"step": step, "status": "fail", "detail": str(e), "duration": time.monotonic() - t0}
            )
            raise
        self.event(host, {"step": step, "status": "ok", "detail": detail, "duration": time.monotonic() - t0})

    def say(self, text: str) -> None:
        if self.sink:
            self.sink("", {"message": text})
        if self.mode == "json":
            self._write(json.dumps({"message": self.redactor(text)}))
        elif self.mode == "rich":
            with self._lock:
                self._console().print(_escape(self.redactor(text)))
        else:
            self._write(text)

    def _console(self) -> Console:
        assert self.console is not None, "rich mode has a console"
        return self.console

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(self.redactor(text) + "\n")
            self.stream.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
