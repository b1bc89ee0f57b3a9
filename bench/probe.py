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
POLL = 0.05  # the veth sampler's period
HEALTH_POLL = 0.02  # the health probe's: the unavailability window is measured with it


def wall_of(stamp: str) -> float:
    """The engine's event time (UTC, ``...T23:37:26.030Z``) as a Unix timestamp."""
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class HealthWatcher:
    """Polls ``GET /health`` every 20 ms from inside the guest's network namespace.

    Records every change of what it sees (the version answered, or None when nothing
    answers) with its time and the time of the poll before it (the last one that saw the
    state before), so "when did the new version first answer", "how long did nothing
    answer" and "from the old version's last answer to the new one's first" are read
    afterwards for any interval.
    """

    def __init__(self, netns: str, port: int = 8080, path: str = "/health"):
        self.netns, self.port, self.path = netns, port, path
        self.changes: list[tuple[float, str | None, float | None]] = []
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
        previous: float | None = None
        while not self._stop.is_set():
            if not self._armed.wait(0.5):
                continue
            seen = self._probe()
            now = time.time()
            with self._lock:
                if self._fresh or seen != last:
                    self.changes.append((now, seen, None if self._fresh else previous))
                    last, self._fresh = seen, False
                previous = now
                self.polls += 1
            self._stop.wait(HEALTH_POLL)

    def _probe(self) -> str | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.25)
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
        for t, seen, _ in changes:
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
        for t, seen, _ in changes:
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

    def window(self, version: str, after: float) -> float | None:
        """Seconds from the last answer of the version that answered at ``after`` (the old
        release) to the first answer of ``version`` (the new one) after it: how long the
        service was unavailable. None when either is missing."""
        with self._lock:
            changes = list(self.changes)
        old = next((seen for t, seen, _ in reversed(changes) if t <= after), None)
        if old is None or old == version:
            return None
        last_old = None
        for i, (t, seen, _) in enumerate(changes):
            if t <= after:
                continue
            if seen == version:
                if last_old is None:  # it answered old until the poll right before
                    last_old = changes[i][2]
                return None if last_old is None else t - last_old
            if seen != old and last_old is None:
                last_old = changes[i][2]  # the first poll that did not see it
            elif seen == old:
                last_old = None  # old answered again
        return None


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


def _cgroup_usage(index: int) -> float | None:
    """CPU seconds the guest ``index`` has used so far (its cgroup's cpu.stat), or None."""
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        try:
            for line in Path(f"{root}/deployer-staging-{index}/cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        except OSError:
            continue
    return None


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU of the machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


class CpuMeter:
    """Where the CPU went during one command: each guest's CPU seconds (its cgroup), the
    controller's (the children this process waited for), and how busy the machine's CPUs
    were over the interval, other people's work included."""

    def __init__(self, indices: list[int]):
        self.indices = indices

    def start(self) -> CpuMeter:
        import resource

        self.t0 = time.monotonic()
        self.guests0 = [_cgroup_usage(i) for i in self.indices]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children0 = ru.ru_utime + ru.ru_stime
        self.jiffies0 = _machine_jiffies()
        return self

    def stop(self) -> dict:
        import resource

        wall = time.monotonic() - self.t0
        guests = [
            None if a is None or b is None else round(b - a, 2)
            for a, b in zip(self.guests0, (_cgroup_usage(i) for i in self.indices), strict=True)
        ]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, total0 = self.jiffies0
        busy1, total1 = _machine_jiffies()
        return {
            "guest_cpu_s": guests,
            "controller_cpu_s": round(ru.ru_utime + ru.ru_stime - self.children0, 2),
            "machine_busy": round((busy1 - busy0) / max(1, total1 - total0), 3),
            "machine_cpus": os.cpu_count(),
            "wall_s": round(wall, 2),
        }


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
