"""What a deploy or rollback did, per host: the data every report is made from."""

from __future__ import annotations

from dataclasses import dataclass, field

from deployer.host.contract import Outcome


class Result:
    """A host's ``HostResult.result``: the engine's outcomes plus the controller's own."""

    PENDING = "pending"
    LOCKED = "locked"  # a rollback's host: its lock taken, not rolled back (yet)
    STAGED = Outcome.STAGED  # staged and smoke-tested; not switched (yet)
    SUCCESS = Outcome.SUCCESS
    REVERTED = Outcome.REVERTED
    REVERT_FAILED = Outcome.REVERT_FAILED
    FAILED = Outcome.FAILED
    NOT_SWITCHED = "not switched"  # staged, but another host (or an earlier wave) failed first
    UNKNOWN = "unknown"  # the link was lost after the switch and no outcome was read back


#: results that leave a journal excerpt of the release on the host
JOURNALED = (Result.SUCCESS, Result.REVERTED, Result.REVERT_FAILED)


@dataclass
class HostResult:
    label: str
    result: str = Result.PENDING
    release: str | None = None
    version: str | None = None
    detail: str = ""
    healthy_s: float | None = None
    gate_s: float | None = None
    exit_code: int = 0
    journal: list[str] | None = None  # the excerpt the host kept for ``release``
    wave: int | None = None  # the wave it was switched in (1: the canary), rollout.py
    #: the release the host runs when the command ends: ``release`` when it succeeded,
    #: else the one it ran before (None: none, or unknown after a lost link)
    running: str | None = None


@dataclass
class Summary:
    action: str
    release: str | None
    version: str | None
    hosts: list[HostResult] = field(default_factory=list)
    seconds: float = 0.0
    #: the rollout plan: the hosts' labels, wave by wave (empty: nothing was to switch)
    waves: list[list[str]] = field(default_factory=list)

    @property
    def runs(self) -> dict[str, str | None]:
        """label -> the release that host runs now."""
        return {h.label: h.running for h in self.hosts}

    @property
    def ok(self) -> bool:
        good = (Result.SUCCESS, Result.STAGED)
        return bool(self.hosts) and all(h.result in good for h in self.hosts)

    @property
    def exit_code(self) -> int:
        """0 ok; 2 when a host was refused for bad input (host key); 1 otherwise."""
        if self.ok:
            return 0
        return max([h.exit_code for h in self.hosts] + [1])
