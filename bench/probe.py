"""What the benchmark measures with: the service's /health seen from inside the guest's
network namespace, the guest veth's byte counters, and a `deployer --json` run whose
events are timestamped as they arrive.

Nothing here sends a byte over the guest's veth: the health probe joins the guest's
network namespace (one thread, ``setns``) and talks to the guest's own loopback, so the
veth counters count only what a deploy sends.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

CLONE_NEWNET = 0x40000000
POLL = 0.05


def wall_of(stamp: str) -> float:
    """The engine's event time (UTC, ``...T23:37:26.030Z``) as a Unix timestamp."""
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class HealthWatcher:
    """Polls ``GET /health`` every 50 ms from inside the guest's network namespace.

    Records every change of what it sees (the version answered, or None when nothing
    answers) with its time, so "when did the new version first answer" and "how long
    did nothing answer" are read afterwards for any interval.
    """

    def __init__(self, netns: str, port: int = 8080, path: str = "/health"):
        self.netns, self.port, self.path = netns, port, path
        self.changes: list[tuple[float, str | None]] = []
        self.polls = 0
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._fresh = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="health-watch")

    def start(self) -> HealthWatcher:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._armed.set()
        self._thread.join(timeout=5)

    def arm(self) -> None:
        """Poll from now on (between measurements the watcher idles); returns after the
        first poll, which is always recorded, so the state at the start is known."""
        with self._lock:
            self._fresh = True
            polls = self.polls
        self._armed.set()
        deadline = time.monotonic() + 5
        while self.polls == polls and time.monotonic() < deadline:
            time.sleep(0.01)

    def disarm(self) -> None:
        self._armed.clear()

    def _enter_netns(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:  # this thread only
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.netns}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def _run(self) -> None:
        try:
            self._enter_netns()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        last: object = object()
        while not self._stop.is_set():
            if not self._armed.wait(0.5):
                continue
            seen = self._probe()
            now = time.time()
            with self._lock:
                if self._fresh or seen != last:
                    self.changes.append((now, seen))
                    last, self._fresh = seen, False
                self.polls += 1
            self._stop.wait(POLL)

    def _probe(self) -> str | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
        try:
            conn.request("GET", self.path)
            resp = conn.getresponse()
            body = resp.read(65536)
            if resp.status != 200:
                return None
            return json.loads(body).get("version")
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def wait_seen(self, version: str, after: float, timeout: float = 5.0) -> float | None:
        """``first_seen``, waiting up to ``timeout`` for the probe to catch up (a command
        can end a few ms after the service answered, before the next poll)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.first_seen(version, after)
            if seen is not None or time.monotonic() > deadline:
                return seen
            time.sleep(POLL / 2)

    def first_seen(self, version: str, after: float) -> float | None:
        """The first time at or after ``after`` that /health answered ``version``."""
        with self._lock:
            changes = list(self.changes)
        state_at_start = None
        for t, seen in changes:
            if t <= after:
                state_at_start = seen
                continue
            if seen == version:
                return t
        return after if state_at_start == version else None

    def unanswered(self, start: float, end: float) -> float:
        """Seconds within [start, end] during which /health did not answer at all."""
        with self._lock:
            changes = list(self.changes)
        state: str | None = None
        inside = []
        for t, seen in changes:
            if t <= start:
                state = seen
            elif t <= end:
                inside.append((t, seen))
        total, cursor = 0.0, start
        for t, seen in inside:
            if state is None:
                total += t - cursor
            state, cursor = seen, t
        if state is None:
            total += end - cursor
        return total


class Veth:
    """Byte counters of the machine's end of the guest's veth (tx: sent to the guest).

    Also sampled every 50 ms by a thread, so the bytes sent up to a moment inside a
    deploy (the moment it was healthy) can be read afterwards.
    """

    def __init__(self, name: str):
        self.dir = Path("/sys/class/net") / name / "statistics"
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="veth-sample")

    def read(self) -> tuple[int, int]:
        tx = int((self.dir / "tx_bytes").read_text())
        rx = int((self.dir / "rx_bytes").read_text())
        return tx, rx

    def start(self) -> Veth:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                tx, rx = self.read()
            except OSError:
                return
            self.samples.append((time.time(), tx, rx))

    def at(self, when: float) -> tuple[int, int] | None:
        """The counters of the first sample taken at or after ``when``."""
        for t, tx, rx in self.samples:
            if t >= when:
                return tx, rx
        return None


@dataclass
class CliRun:
    """One `deployer --json ...` process: its events with arrival times, its summary."""

    argv: list[str]
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    events: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    stderr_tail: str = ""

    def run(self, env: dict, cwd: Path, timeout: float = 300) -> CliRun:
        lines: list[tuple[float, str]] = []
        self.started = time.time()
        proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
        )

        def read() -> None:
            for line in proc.stderr:
                lines.append((time.time(), line))

        out_parts: list[str] = []
        reader = threading.Thread(target=read, daemon=True)
        out_reader = threading.Thread(target=lambda: out_parts.append(proc.stdout.read()), daemon=True)
        reader.start()
        out_reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.ended = time.time()
        reader.join(timeout=5)
        out_reader.join(timeout=5)
        out = "".join(out_parts)
        self.returncode = proc.returncode
        for arrived, line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "step" in event:
                event["arrived"] = arrived
                self.events.append(event)
        try:
            self.summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except ValueError:
            self.summary = {}
        self.stderr_tail = "".join(line for _, line in lines[-15:])
        return self

    def at(self, step: str, status: str = "ok") -> float | None:
        """When ``step`` reached ``status``: the engine's own clock, else arrival time."""
        for e in self.events:
            if e.get("step") == step and e.get("status") == status:
                return wall_of(e["time"]) if "time" in e else e["arrived"]
        return None

    def durations(self) -> dict:
        """step -> seconds, from the ``ok`` events' ``duration`` fields."""
        out: dict = {}
        for e in self.events:
            if e.get("status") == "ok" and "duration" in e:
                out[e["step"]] = out.get(e["step"], 0.0) + float(e["duration"])
        return out

    def timeline(self) -> list[tuple[str, float, float]]:
        """(label, start, end) for every step and every gap between steps, from process start.

        A gap is named for the step that follows it: work no event covers (controller
        startup, connect, thin tar, hashing, the host checking the upload, ...).
        """
        spans = []
        starts = {}
        for e in self.events:
            t = wall_of(e["time"]) if "time" in e else e["arrived"]
            if e.get("status") == "start":
                starts[e["step"]] = t
            elif e.get("status") in ("ok", "fail") and "duration" in e:
                begin = starts.pop(e["step"], t - float(e["duration"]))
                spans.append((e["step"], begin, t))
        spans.sort(key=lambda s: s[1])
        out = []
        cursor = self.started
        for name, begin, end in spans:
            if begin - cursor > 0.0005:
                out.append((f"before {name}", cursor, begin))
            out.append((name, begin, end))
            cursor = max(cursor, end)
        if self.ended - cursor > 0.0005:
            out.append(("after last step", cursor, self.ended))
        return out


def python_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "deployer", "--json", *args]
