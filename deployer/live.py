"""On a terminal: one live line per host with its current step, a progress bar while
its upload runs and a countdown while its watch window runs (rich's live display).

Finished steps are printed above the live lines as they end, so the scrollback keeps
the whole story; ``--plain`` and ``--json`` never load this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


@dataclass
class Row:
    step: str = ""
    detail: str = ""
    started: float = 0.0
    seconds: float | None = None  # a countdown's length (the watch window)
    done: int = 0  # bytes sent so far, while uploading
    total: int = 0


class Board:
    """The live lines: what each host is doing now."""

    def __init__(self, console: Console):
        self.console = console
        self.rows: dict[str, Row] = {}
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)
        self.live.start()

    def start(self, host: str, step: str, detail: str, seconds: float | None = None) -> None:
        self.rows[host] = Row(step, detail, time.monotonic(), seconds)

    def progress(self, host: str, done: int, total: int) -> None:
        row = self.rows.setdefault(host, Row("upload", "", time.monotonic()))
        row.done, row.total = done, total

    def finish(self, host: str) -> None:
        self.rows.pop(host, None)

    def stop(self) -> None:
        self.live.stop()

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 1))
        for _ in range(3):
            table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis", max_width=60)
        now = time.monotonic()
        for host, row in self.rows.items():
            elapsed = now - row.started
            if row.total:
                what: Text | ProgressBar | str = ProgressBar(total=row.total, completed=row.done, width=30)
                detail = f"{row.done / 1e6:.1f} of {row.total / 1e6:.1f} MB"
            elif row.seconds is not None:
                left = max(0.0, row.seconds - elapsed)
                what = ProgressBar(total=row.seconds, completed=min(elapsed, row.seconds), width=30)
                detail = f"{left:.0f}s left of {row.seconds:.0f}s"
            else:
                what, detail = f"{elapsed:.0f}s", escape(row.detail)
            table.add_row(Text.from_markup(f"[yellow]…[/] [bold]{escape(host)}[/]"), row.step, what, detail)
        return Group(table)
