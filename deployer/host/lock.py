"""The deploy lock: an flock held by the engine process for its whole life.

If the process dies the kernel frees the lock: there are no stale lock files. Who holds
it (user, CI run, release) is written beside it for ``lock status``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Optional

from deployer.errors import LockHeldError
from deployer.host.events import utc_now


class DeployLock:
    def __init__(self, path: Path, holder_path: Path):
        self.path = path
        self.holder_path = holder_path
        self._fd: Optional[int] = None

    def acquire(self, holder: dict, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; LockHeldError names the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeldError(
                        f"another deploy holds the lock: {describe(self.holder())}"
                        + (f" (waited {wait:.0f}s)" if wait else "")
                    ) from None
                time.sleep(0.2)
        self._fd = fd
        info = {**holder, "pid": os.getpid(), "since": utc_now()}
        tmp = self.holder_path.with_name(self.holder_path.name + ".tmp")
        tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, self.holder_path)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.holder_path.unlink()
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Optional[dict]:
        try:
            return json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def status(self) -> dict:
        """{"held": bool, "holder": {...} | None} without disturbing a holder."""
        if not self.path.exists():
            return {"held": False, "holder": None}
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return {"held": False, "holder": None}
        except BlockingIOError:
            return {"held": True, "holder": self.holder()}
        finally:
            os.close(fd)

    def __enter__(self) -> DeployLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def describe(holder: Optional[dict]) -> str:
    if not holder:
        return "unknown holder"
    parts = [f"{holder.get('who', '?')} (pid {holder.get('pid', '?')})"]
    if holder.get("release"):
        parts.append(f"deploying {holder['release']}")
    if holder.get("run_url"):
        parts.append(holder["run_url"])
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return ", ".join(parts)
