"""One JSON line per step on stdout: how the engine talks to controllers and logs."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional

from deployer.host.contract import QUIET_STEPS, Status
from deployer.host.masking import mask, secret_forms


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def parse_time(text: str) -> Optional[datetime]:
    """A UTC time as ``utc_now`` writes it (fraction optional, ``Z`` or none); None if not one."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1]
    whole, _, fraction = text.partition(".")
    try:
        t = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    if fraction:
        if not fraction.isdigit():
            return None
        t = t.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return t.replace(tzinfo=timezone.utc)


def describe(event: dict) -> Optional[str]:
    """An event as one line for a person, ``step status: detail (1.23s)``; None for the
    framing (ticks, answers) and for starts. The controller's plain output uses it too."""
    if event.get("step") in QUIET_STEPS or event.get("status") == Status.START:
        return None
    detail = event.get("detail") or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail)
    duration = f" ({event['duration']:.2f}s)" if "duration" in event else ""
    return f"{event.get('step')} {event.get('status')}: {detail}{duration}"


class Events:
    """Writes events to ``out`` (stdout by default), flushed at once: JSON lines for a
    controller, or with ``human`` one ``describe`` line each for a person at a terminal.

    Thread-safe; every line is masked: values registered with ``add_secrets`` (the
    .env's values) never leave the engine.
    """

    def __init__(self, out: Optional[IO[str]] = None, human: bool = False):
        self.out = out or sys.stdout
        self.human = human
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
        self.last = event
        text = describe(event) if self.human else json.dumps(event, sort_keys=False)
        if text is None:
            return event
        line = self.mask(text)
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the controller went away; the audit log still records the outcome
        return event

    @contextmanager
    def step(self, name: str, detail: Any = "", **extra: Any) -> Iterator[dict]:
        """``start`` event (with ``extra`` fields), then ``ok`` (or ``fail`` with the
        error) with the duration; the ``ok`` event carries what the step put in the
        dict it was given (``detail``, and any other field)."""
        self.emit(name, Status.START, detail, **extra)
        started = time.monotonic()
        result: dict = {"detail": ""}
        try:
            yield result
        except BaseException as e:
            self.emit(name, Status.FAIL, str(e) or type(e).__name__, time.monotonic() - started)
            raise
        detail = result.pop("detail", "")
        self.emit(name, Status.OK, detail, time.monotonic() - started, **result)
