"""The engine's one way to run a program: argv lists, a timeout, a clear error.

``run`` captures the output of a short command (systemctl, journalctl, visudo, a probe);
``run_logged`` appends a long one's (an installer's) to a log file and can be aborted.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from deployer.errors import AbortedError, HostError

#: how many lines of a failed command's output an error carries
TAIL_LINES = 12


def run(
    argv: List[str],
    *,
    timeout: float = 60,
    env: Optional[Dict[str, str]] = None,
    check: bool = False,
    error: type = HostError,
    stdin: Optional[Path] = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` with its output captured as text; its input is the file ``stdin``, or none.

    ``error`` (with what went wrong) when the program is missing or does not answer in
    ``timeout``, and with ``check`` also when it exits non-zero (its output's tail).
    """
    with open(stdin or os.devnull, "rb") as given:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=given, env=env)
        except FileNotFoundError:
            raise error(f"{argv[0]} is not installed on this host") from None
        except OSError as e:
            raise error(f"cannot run {argv[0]}: {e.strerror}") from None
        except subprocess.TimeoutExpired:
            raise error(f"{' '.join(argv)}: no answer in {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        out = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-TAIL_LINES:])
        raise error(f"{' '.join(argv)} failed (exit {proc.returncode}): {out}")
    return proc


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class _Stopper(threading.Thread):
    """Terminates ``proc`` (then kills it) when ``abort`` is set or ``timeout`` passes."""

    def __init__(self, proc: subprocess.Popen, abort: Optional[threading.Event], timeout: float):
        super().__init__(daemon=True)
        self.proc, self.abort, self.deadline = proc, abort, time.monotonic() + timeout
        self.done = threading.Event()
        self.why: Optional[str] = None

    def run(self) -> None:
        while not self.done.wait(0.1):
            if self.abort is not None and self.abort.is_set():
                self.why = "abort"
            elif time.monotonic() > self.deadline:
                self.why = "timeout"
            else:
                continue
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            return


def log_line(log: Path, text: str) -> None:
    """One line of the engine's own into ``log`` (an installer log), e.g. a timing."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(text + "\n")


def run_logged(
    argv: List[str],
    log: Path,
    *,
    what: str,
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[Path] = None,
    timeout: float = 900,
    abort: Optional[threading.Event] = None,
    error: type = HostError,
) -> None:
    """Run ``argv`` with its output appended to ``log``; raise ``error`` with the log's tail.

    ``abort`` (set when the controller is gone before the switch) stops the process at
    once: terminate, then kill.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd
            )
        except OSError as e:
            raise error(f"{what}: cannot run {argv[0]}: {e.strerror}") from None
        stopped = _Stopper(proc, abort, timeout)
        stopped.start()
        rc = proc.wait()  # blocking: returns the moment the process ends
        stopped.done.set()
        out.write(f"# exit {rc} after {time.monotonic() - started:.2f}s\n".encode())
        if stopped.why == "abort":
            raise AbortedError(f"{what}: aborted, the controller went away")
        if stopped.why == "timeout":
            raise error(f"{what}: timed out after {timeout:.0f}s\n{tail(log)}")
    if rc != 0:
        raise error(f"{what} failed (exit {rc}):\n{tail(log)}")
