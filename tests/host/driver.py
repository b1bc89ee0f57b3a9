"""The engine CLI as a subprocess, driven the way the controller drives ``serve``.

JSON lines go in on its stdin (commands, and a heartbeat every second from a thread);
its events come back on stdout and are kept with the time each one arrived, so tests
can assert on timing (ticks, how soon an abort follows a lost controller).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable

Event = dict
Pred = Callable[[Event], bool]


def step(name: str, status: str | None = None) -> Pred:
    return lambda e: e.get("step") == name and (status is None or e.get("status") == status)


def done(cmd: str) -> Pred:
    return lambda e: e.get("step") == "done" and e.get("cmd") == cmd


class EngineProcess:
    def __init__(self, argv: list[str], env: dict | None = None):
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.events: list[tuple[float, Event]] = []
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.last_sent = time.monotonic()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._beating = threading.Event()
        self._closed = False
        self._eof = False
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    # ------------------------------------------------------------------ output
    def _read_events(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._cond:
                self.stdout_lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"step": "<not json>", "status": "", "detail": line}
                self.events.append((time.monotonic(), event))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def wait_for(self, pred: Pred, timeout: float) -> tuple[float, Event]:
        """The first event (arrival time, event) matching ``pred``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, e in self.events:
                    if pred(e):
                        return t, e
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"no such event within {timeout}s:\n{self.transcript()}")
                self._cond.wait(min(left, 0.2))

    def transcript(self) -> str:
        return "\n".join(self.stdout_lines[-40:] + self.stderr_lines[-20:])

    def steps(self) -> list[Event]:
        with self._cond:
            return [e for _, e in self.events]

    # ------------------------------------------------------------------ input
    def send(self, msg: dict) -> None:
        with self._write_lock:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
            self.last_sent = time.monotonic()

    def heartbeats(self, on: bool) -> None:
        """``{"cmd": "hb"}`` every second while on; off returns after the last one went out."""
        if on:
            self._beating.set()
        else:
            with self._write_lock:
                self._beating.clear()

    def _heartbeat(self) -> None:
        while self.proc.poll() is None:
            with self._write_lock:
                if self._beating.is_set() and not self._closed:
                    try:
                        self.proc.stdin.write(b'{"cmd": "hb"}\n')
                        self.proc.stdin.flush()
                        self.last_sent = time.monotonic()
                    except (BrokenPipeError, ValueError, OSError):
                        return
            time.sleep(1.0)

    def close_stdin(self) -> float:
        """End of input, as when the SSH channel closes; returns when it happened."""
        with self._write_lock:
            self._beating.clear()
            self._closed = True
            self.proc.stdin.close()
        return time.monotonic()

    # ------------------------------------------------------------------ end
    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"engine still running after {timeout}s:\n{self.transcript()}") from None

    def kill(self) -> None:
        """Stop it (by its pid) if it still runs; always safe in a finalizer."""
        self._beating.clear()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def run_cli(
    argv: list[str], timeout: float = 120, env: dict | None = None, stdin: str | None = None
) -> tuple[int, list[Event], str]:
    """Run an engine CLI command to the end: (exit code, events, stderr)."""
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    events = []
    for line in proc.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON event line: {line!r}\n{proc.stderr}") from None
    return proc.returncode, events, proc.stderr
