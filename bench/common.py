"""Small shared pieces of the benchmark: errors, progress lines, a stopwatch."""

from __future__ import annotations

import contextlib
import time


class Stopwatch:
    """``with sw("name"): ...`` records the block's seconds under that name."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - t0, 4)


class BenchError(RuntimeError):
    """A measurement could not be taken (a deploy failed, the host is not healthy)."""


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)
