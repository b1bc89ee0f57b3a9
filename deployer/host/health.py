"""Health: *healthy* (active after our restart, restart counter unchanged, probe passing)
and *gate closed* (the watch window passed with no fatal line in this invocation's journal).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional

from deployer.errors import HealthError, HostError
from deployer.host.contract import HealthConfig
from deployer.host.proc import run
from deployer.host.service import Service


def probe_http(url: str, version: Optional[str], timeout: float = 2.0) -> Optional[str]:
    """None when the endpoint answers ok (with ``version`` if given); else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
            body = resp.read(65536)
            status = resp.status
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} from {url}"
    except (urllib.error.URLError, OSError) as e:
        return f"no answer from {url} ({getattr(e, 'reason', e)})"
    if status != 200:
        return f"HTTP {status} from {url}"
    if version is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return f"{url} did not answer JSON"
    got = data.get("version") if isinstance(data, dict) else None
    if got != version:
        return f"{url} answers version {got!r}, expected {version!r}"
    return None


def probe_command(argv: List[str], timeout: float = 10.0) -> Optional[str]:
    try:
        proc = run(argv, timeout=timeout)
    except HostError as e:
        return f"health command failed: {e}"
    if proc.returncode != 0:
        return f"health command exited {proc.returncode}"
    return None


def fatal_lines(lines: List[str], patterns: List[str]) -> List[str]:
    regexes = [re.compile(p) for p in patterns]
    return [ln for ln in lines if any(r.search(ln) for r in regexes)]


class HealthCheck:
    def __init__(self, service: Service, health: HealthConfig, version: Optional[str]):
        self.service = service
        self.health = health
        self.version = version if health.expect_version else None

    def probe(self) -> Optional[str]:
        if self.health.http_url:
            return probe_http(self.health.http_url, self.version)
        if self.health.command:
            return probe_command(list(self.health.command))
        return None

    def wait_healthy(self, started: Dict[str, str], timeout: Optional[float] = None) -> float:
        """Seconds until healthy; HealthError with the last reason if the timeout passes.

        ``started`` is the unit's state right after our restart: a different invocation
        id or a higher restart counter means it crashed and systemd restarted it.
        """
        timeout = self.health.timeout if timeout is None else timeout
        t0 = time.monotonic()
        reason: Optional[str] = "not checked"
        while True:
            props = self.service.show()
            reason = self._unit_problem(started, props) or self.probe()
            if reason is None:
                return time.monotonic() - t0
            crashed = props.get("ActiveState") == "failed" or props.get("SubState") == "auto-restart"
            if crashed or time.monotonic() - t0 > timeout:
                raise HealthError(f"not healthy after {time.monotonic() - t0:.1f}s: {reason}")
            time.sleep(0.2)

    def watch(self, started: Dict[str, str], seconds: float) -> float:
        """Keep watching for ``seconds``: unit stays up, no fatal journal line."""
        t0 = time.monotonic()
        patterns = list(self.health.fatal_patterns)
        while True:
            props = self.service.show()
            problem = self._unit_problem(started, props)
            if problem:
                raise HealthError(f"during the watch window: {problem}")
            bad = fatal_lines(self.service.journal(started.get("InvocationID", "")), patterns)
            if bad:
                raise HealthError(f"fatal line in the journal: {bad[0][:200]}")
            elapsed = time.monotonic() - t0
            if elapsed >= seconds:
                return elapsed
            time.sleep(min(0.5, seconds - elapsed))

    @staticmethod
    def _unit_problem(started: Dict[str, str], props: Dict[str, str]) -> Optional[str]:
        state = props.get("ActiveState")
        if state != "active":
            return f"unit is {state} ({props.get('SubState', '?')}, result {props.get('Result', '?')})"
        if props.get("InvocationID") != started.get("InvocationID") or props.get("NRestarts") != started.get(
            "NRestarts"
        ):
            return (
                f"unit restarted by systemd (restarts {started.get('NRestarts')} -> {props.get('NRestarts')})"
            )
        return None
