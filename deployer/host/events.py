"""One JSON line per step on stdout: how the engine talks to controllers and logs."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class Events:
    """Writes events as JSON lines to ``out`` (stdout by default), flushed at once."""

    def __init__(self, out: Optional[IO[str]] = None):
        self.out = out or sys.stdout

    def emit(self, step: str, status: str, detail: Any = "", duration: Optional[float] = None,
             **extra: Any) -> dict:
        event = {"time": utc_now(), "step": step, "status": status, "detail": detail}
        if duration is not None:
            event["duration"] = round(duration, 3)
        event.update(extra)
        try:
            self.out.write(json.dumps(event, sort_keys=False) + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass  # the controller went away; the audit log still records the outcome
        return event

    @contextmanager
    def step(self, name: str, detail: Any = "") -> Iterator[dict]:
        """``start`` event, then ``ok`` (or ``fail`` with the error) with the duration."""
        self.emit(name, "start", detail)
        started = time.monotonic()
        result: dict = {"detail": ""}
        try:
            yield result
        except BaseException as e:
            self.emit(name, "fail", str(e) or type(e).__name__, time.monotonic() - started)
            raise
        self.emit(name, "ok", result.get("detail", ""), time.monotonic() - started)
