"""A small real service manager for host-engine tests on a temporary directory.

It does what the engine needs from systemd, for real: starts `current`'s venv python
with the release's .env, waits for ``READY=1`` on a real NOTIFY_SOCKET (as
``Type=notify`` does), reports active/failed, gives each start an invocation id and
keeps each invocation's output as its journal. The systemd implementation itself is
exercised on the staging host by the end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from deployer.host.envfile import env_keys
from deployer.host.service import Service


def parse_env(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        key = next(iter(env_keys(line)), None)
        if key:
            value = line.split("=", 1)[1].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key] = value
    return env


class ProcessService(Service):
    def __init__(self, base: Path, module: str, start_timeout: float = 20.0):
        self.name = "test.service"
        self.base = Path(base)
        self.module = module
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.invocation = ""
        self.ready = False
        self.logs: dict[str, list[str]] = {}
        self.restarts = 0
        # the running service's pid, beside the base path: a service started by an engine
        # subprocess outlives it, and the next restart (or the test) must find it, as
        # systemd would
        self.pidfile = pidfile_of(self.base)

    def restart(self) -> None:
        self.stop()
        current = self.base / "current"
        env_text = (current / ".env").read_text() if (current / ".env").exists() else ""
        sock_path = self.base / f".notify-{uuid.uuid4().hex[:8]}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        self.invocation = uuid.uuid4().hex
        self.ready = False
        lines: list[str] = []
        self.logs[self.invocation] = lines
        env = {"PATH": "/usr/bin:/bin", **parse_env(env_text), "NOTIFY_SOCKET": str(sock_path)}
        real = os.path.realpath(current)  # resolve `current` once, as the unit's launcher does
        self.proc = subprocess.Popen(
            [f"{real}/venv/bin/python", "-m", self.module],
            cwd=real,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pidfile.write_text(f"{self.proc.pid}\n")
        threading.Thread(target=self._pump, args=(self.proc, lines), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if b"READY=1" in sock.recv(4096):
                        self.ready = True
                        break
                except TimeoutError:
                    pass
        finally:
            sock.close()
            sock_path.unlink()

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: list[str]) -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        pid = service_pid(self.base)
        if pid is not None:
            stop_pid(pid)
        self.pidfile.unlink(missing_ok=True)

    def show(self) -> dict:
        if self.proc is None:
            state = "inactive"
        elif self.proc.poll() is not None:
            state = "failed"
        else:
            state = "active" if self.ready else "activating"
        return {
            "ActiveState": state,
            "SubState": state,
            "Result": "success",
            "NRestarts": str(self.restarts),
            "InvocationID": self.invocation,
        }

    def journal(self, invocation_id: str) -> list[str]:
        return list(self.logs.get(invocation_id, []))

    def recent(self, lines: int) -> list[str]:
        return self.journal(self.invocation)[-lines:]


def pidfile_of(base: Path) -> Path:
    return Path(base).parent / "service.pid"


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def service_pid(base: Path) -> int | None:
    """The pid of the service this base path's supervisor started, if it still runs.

    Checked against the process's command line (a venv under ``base``), so a reused pid
    is never taken for it.
    """
    try:
        pid = int(pidfile_of(base).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if os.path.realpath(base).encode() not in cmdline or not alive(pid):
        return None
    return pid


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
