"""Running installers and probes: argv lists, a log file, a timeout, and abortable."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from deployer.errors import AbortedError, HostError


def tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def run_logged(argv: List[str], log: Path, *, what: str, env: Optional[Dict[str, str]] = None,
               cwd: Optional[Path] = None, timeout: float = 900,
               abort: Optional[threading.Event] = None,
               error: type = HostError) -> None:
    """Run ``argv`` with its output appended to ``log``; raise ``error`` with the log's tail.

    ``abort`` (set when the controller is gone before the switch) stops the process at
    once: terminate, then kill.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        except OSError as e:
            raise error(f"{what}: cannot run {argv[0]}: {e.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if (abort is not None and abort.is_set()) or time.monotonic() > deadline:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if abort is not None and abort.is_set():
                    raise AbortedError(f"{what}: aborted, the controller went away")
                raise error(f"{what}: timed out after {timeout:.0f}s\n{tail(log)}")
    if rc != 0:
        raise error(f"{what} failed (exit {rc}):\n{tail(log)}")
