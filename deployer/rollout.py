"""The order a deploy or a rollback switches its hosts in, a canary then waves (``waves``,
pure), and the loop that follows it with the pipeline's switch (``roll_out``).

    wave 1 (the canary)   the first ``rollout.canary`` hosts (default 1)
    wave 2, 3, ...        the rest, ``rollout.wave`` hosts at a time (default: all at once)

Every host of a wave is switched and gated at the same time; the next wave starts only
when every host of this one passed its gate. The first wave with a failure is the last:
its failed hosts are reverted by their engines, the hosts of later waves are not
switched. A wave waits for its hosts to be ready (a deploy stages the hosts after the
first wave while that wave is switched and gated); a host that is not (its staging
failed) fails its wave before any of it is switched. Hosts keep the configured order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def waves(hosts: Sequence[T], canary: int, wave: int | None) -> list[list[T]]:
    """``hosts`` in the waves they are switched in; never an empty wave.

    ``canary``: how many hosts go first (0: no canary); ``wave``: hosts per wave after
    it (None: all the rest at once)."""
    hosts = list(hosts)
    first, rest = hosts[:canary], hosts[canary:]
    size = wave or len(rest) or 1
    return ([first] if first else []) + [rest[i : i + size] for i in range(0, len(rest), size)]


@dataclass(frozen=True)
class Stop:
    """Why a rollout stopped: the wave (1-based) and the labels of its failed hosts."""

    wave: int
    failed: tuple[str, ...]
    canary: bool = True  # wave 1 is the canary (rollout.canary > 0)

    @property
    def reason(self) -> str:
        where = "the canary" if self.wave == 1 and self.canary else f"wave {self.wave}"
        return f"{where} failed ({', '.join(self.failed)}): not switched"


def describe(plan: Sequence[Sequence[str]], canary: int) -> str:
    """One line for a person: ``rollout: canary h1, then wave 2: h2, h3``."""
    parts = []
    for n, hosts in enumerate(plan, 1):
        name = "canary" if n == 1 and canary else f"wave {n}"
        parts.append(f"{name} {', '.join(hosts)}")
    return "rollout: " + "; then ".join(parts)


def roll_out(
    plan: Sequence[Sequence[T]],
    switch: Callable[[T], bool],
    label: Callable[[T], str],
    canary: bool = True,
    ready: Callable[[T], bool] = lambda _: True,
) -> tuple[Stop | None, list[T]]:
    """Switch ``plan`` wave by wave, every host of a wave at once (``switch`` is True when
    the host is live and its gate closed); stop after the first wave with a failure.

    ``ready`` is asked for every host of a wave before it is switched (it may wait, e.g. for
    the host's staging to end); a wave with a host that is not ready is a failed wave, and
    none of it is switched.

    Returns why it stopped (None: every wave passed) and the hosts it never switched, the
    failed wave's ready ones included."""
    for n, wave in enumerate(plan, 1):
        prepared = [ready(h) for h in wave]
        if not all(prepared):
            failed = tuple(label(h) for h, ok in zip(wave, prepared, strict=True) if not ok)
            kept = [h for h, ok in zip(wave, prepared, strict=True) if ok]
        else:
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                passed = list(pool.map(switch, wave))
            failed, kept = tuple(label(h) for h, ok in zip(wave, passed, strict=True) if not ok), []
        if failed:
            return Stop(n, failed, canary), kept + [h for later in plan[n:] for h in later]
    return None, []
