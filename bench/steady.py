"""(c) A steady loop of requests against examples/notes_api during 10 deploys and 10
rollbacks: how many were refused or failed, and the worst latency.

On one guest, notes_api is set up twice, in the same run: first as a service that binds
its own port (the baseline), then with ``[service] socket`` (systemd socket activation).
Each time, ``tests/staging/request_loop.py`` sends a request every 10 ms from inside
the guest, on a fresh connection each, while `deployer` deploys v2 and rolls back to v1,
ten times over. Restarts are paced so the unit never reaches systemd's start limit.
"""

from __future__ import annotations

import collections
import os
import re
import time
from pathlib import Path

from bench.common import BenchError, say
from bench.probe import CliRun, python_argv
from deployer.builder import build_release
from deployer.config import load_config
from tests.conftest import build_notes_v2, make_notes_repo
from tests.staging.guest import RequestLoop, deploy_env, host_setup

APP = "notes_api"
URL = "http://127.0.0.1:8000/health"
EVERY = 0.01
CYCLES = 10
SOCKET_LINE = 'socket = "127.0.0.1:8000"\n'
MODES = ("own port", "socket")
#: at most this many restarts in any minute: the unit allows 20 (StartLimitBurst)
PACE_WINDOW, PACE_MAX = 60.0, 16


def builds(work: Path) -> dict:
    repo = make_notes_repo(work / "notes-repo")
    v1 = build_release(
        load_config(repo / "deploy.toml", environ={}), repo / "deploy.toml", work / "notes-dist"
    )
    return {"repo": repo, "v1": v1, "v2": build_notes_v2(repo, work / "notes")}


def summarize(rows: list[list], mode: str, cycles: int) -> dict:
    """The loop's rows as one record (pure)."""
    kinds = collections.Counter(str(r[2]) for r in rows if r[2] != 200)
    latencies = sorted(r[1] for r in rows)
    return {
        "kind": "steady",
        "mode": mode,
        "deploys": cycles,
        "rollbacks": cycles,
        "every_s": EVERY,
        "requests": len(rows),
        "refused": kinds.get("ConnectionRefusedError", 0),
        "failed": sum(kinds.values()),
        "errors": dict(kinds),
        "worst_s": latencies[-1] if latencies else None,
        "p99_s": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "waited": sum(1 for x in latencies if x > 0.1),  # answered, after waiting for a restart
        "versions": sorted({str(r[3]) for r in rows if r[2] == 200}),
    }


class Steady:
    def __init__(self, guest, work: Path, notes: dict):
        self.guest, self.work, self.notes = guest, work, notes
        repo = notes["repo"]
        text = (repo / "deploy.toml").read_text().replace('source = "."', f'source = "{repo}"')
        text, n = re.subn(r"(?m)^watch = .*$", "watch = 0", text)
        if not n or SOCKET_LINE not in text:
            raise BenchError(f"{repo / 'deploy.toml'}: no health.watch or [service] socket line")
        self.configs = {"own port": work / "notes-own-port.toml", "socket": work / "notes-socket.toml"}
        self.configs["own port"].write_text(text.replace(SOCKET_LINE, ""))
        self.configs["socket"].write_text(text)
        self.env = {
            **os.environ,
            **deploy_env(guest, {"DEPLOYER_HOSTS": f"{APP}@{guest.host}:{guest.port}"}),
            "DEPLOYER_LOG_DIR": str(work / "deploy-logs"),
        }
        self.restarts: list[float] = []

    def pace(self) -> None:
        now = time.monotonic()
        recent = [t for t in self.restarts if now - t < PACE_WINDOW]
        if len(recent) >= PACE_MAX:
            time.sleep(PACE_WINDOW - (now - recent[-PACE_MAX]))

    def run(self, mode: str, *args: str) -> None:
        self.pace()
        self.restarts.append(time.monotonic())
        run = CliRun(python_argv("-c", str(self.configs[mode]), *args)).run(self.env, self.work)
        if run.returncode != 0:
            raise BenchError(f"notes_api {mode}: deployer {' '.join(args)} failed:\n{run.stderr_tail}")

    def measure(self, mode: str, cycles: int) -> dict:
        v1, v2 = self.notes["v1"], self.notes["v2"]
        host_setup(
            self.guest, self.configs[mode], authorized_key=Path(self.guest.key_path + ".pub").read_text()
        )
        self.run(mode, "deploy", "--watch", "0", str(v1.path))  # the unit as set up now, v1 live
        loop = RequestLoop(self.guest, URL, every=EVERY).start()
        try:
            for _ in range(cycles):
                self.run(mode, "deploy", "--watch", "0", str(v2.path))
                self.run(mode, "rollback")
        finally:
            rows = loop.stop()
        rec = summarize(rows, mode, cycles)
        say(
            f"notes_api ({mode}), {cycles} deploys + {cycles} rollbacks: {rec['requests']} requests, "
            f"{rec['refused']} refused, {rec['failed']} failed, worst {rec['worst_s']:.3f}s"
        )
        return rec


def measure(guest, work: Path, notes: dict, records: list[dict], cycles: int = CYCLES) -> None:
    steady = Steady(guest, work, notes)
    for mode in MODES:
        records.append(steady.measure(mode, cycles))
