"""After a link lost past the switch: how the activation ended, read back from the host.

The engine finishes the health gate on its own and records the outcome in its history
(``log/deploys.jsonl``); the controller reconnects until that record is there, and
reads the journal the host kept for the release over the same connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deployer.errors import DeployerError
from deployer.host.contract import ACTIVATION_OUTCOMES, JOURNAL_LINES, Outcome, Step
from deployer.remote.engine import RemoteEngine
from deployer.remote.ssh import Connection
from deployer.summary import HostResult, Result


def activation_outcome(records: list[dict], release: str | None) -> dict | None:
    """The record that ended the LAST activation of ``release`` (after its ``live``
    record), or None while its gate is still open (pure)."""
    lives = [i for i, r in enumerate(records) if r.get("to") == release and r.get("result") == Outcome.LIVE]
    for rec in records[lives[-1] + 1 :] if lives else []:
        if rec.get("to") == release and rec.get("result") in ACTIVATION_OUTCOMES:
            return rec
    return None


def kept_journal(remote: RemoteEngine, release: str | None) -> list[str] | None:
    try:
        events = remote.command("logs", "--release", str(release), "-n", str(JOURNAL_LINES))
    except DeployerError:
        return None
    return [e.get("detail", "") for e in events if e.get("step") == Step.LOG]


def read_back_outcome(
    connect: Callable[[], tuple[Connection, RemoteEngine]], h: HostResult, deadline: float
) -> None:
    """Fill ``h`` with the outcome the host recorded, polling until ``deadline``."""
    last_error = ""
    while time.monotonic() < deadline:
        try:
            conn, remote = connect()
            try:
                records = [ev.get("record", {}) for ev in remote.command("history", "--last", "10")]
                rec = activation_outcome(records, h.release)
                if rec is not None:
                    h.result = rec["result"]
                    h.healthy_s, h.gate_s = rec.get("healthy_s"), rec.get("gate_s")
                    reason = f" ({rec['reason']})" if rec.get("reason") else ""
                    h.detail = f"outcome read back after reconnecting: {rec['result']}{reason}"
                    h.journal = kept_journal(remote, h.release)
                    return
            finally:
                conn.close()
        except DeployerError as e:
            last_error = str(e)
        time.sleep(2)
    h.result, h.detail = Result.UNKNOWN, f"no recorded outcome yet: {last_error}"
