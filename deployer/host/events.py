"""One JSON line per step on stdout: how the engine talks to controllers and logs."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional

from deployer.host.contract import Status
from deployer.host.masking import mask, secret_forms


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class Events:
    """Writes events as JSON lines to ``out`` (stdout by default), flushed at once.

    Thread-safe; every line is masked: values registered with ``add_secrets`` (the
    .env's values) never leave the engine.
    """

    def __init__(self, out: Optional[IO[str]] = None):
        self.out = out or sys.stdout
        self.secrets: set = set()
        self._lock = threading.Lock()
        self.last: Optional[dict] = None

    def add_secrets(self, values) -> None:
        for v in values:
            self.secrets |= secret_forms(v)

    def mask(self, text: str) -> str:
        return mask(text, self.secrets) if self.secrets else text

    def emit(
        self, step: str, status: str, detail: Any = "", duration: Optional[float] = None, **extra: Any
    ) -> dict:
        event = {"time": utc_now(), "step": step, "status": status, "detail": detail}
        if duration is not None:
            event["duration"] = round(duration, 3)
        event.update(extra)
        line = self.mask(json.dumps(event, sort_keys=False))
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the controller went away; the audit log still records the outcome
        self.last = event
        return event

    @contextmanager
    def step(self, name: str, detail: Any = "") -> Iterator[dict]:
        """``start`` event, then ``ok`` (or ``fail`` with the error) with the duration."""
        self.emit(name, Status.START, detail)
        started = time.monotonic()
        result: dict = {"detail": ""}
        try:
            yield result
        except BaseException as e:
            self.emit(name, Status.FAIL, str(e) or type(e).__name__, time.monotonic() - started)
            raise
        self.emit(name, Status.OK, result.get("detail", ""), time.monotonic() - started)
