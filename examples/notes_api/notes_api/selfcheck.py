"""``--selfcheck``: import every dependency and module, and make the schema in memory.

This is the deploy tool's smoke test: it runs in an empty environment and must never
touch the network or the data directory.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from typing import TextIO

from . import __version__

__all__ = ["DEPENDENCIES", "OWN_MODULES", "selfcheck"]

#: Import names of the runtime dependencies and what they pull in.
DEPENDENCIES = ("starlette", "starlette.applications", "uvicorn", "anyio", "h11", "click", "sqlite3")

#: The service's own modules.
OWN_MODULES = (
    "notes_api",
    "notes_api.settings",
    "notes_api.store",
    "notes_api.app",
    "notes_api.listen",
    "notes_api.selfcheck",
    "notes_api.__main__",
)


def selfcheck(modules: Sequence[str] = DEPENDENCIES + OWN_MODULES, out: TextIO = sys.stdout) -> int:
    """Import ``modules``; print one line saying how it went; return the exit code."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a module failing while it loads
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            print(f"selfcheck failed: cannot import {name}: {reason}", file=out, flush=True)
            return 1
    from .store import SCHEMA

    try:
        with closing(sqlite3.connect(":memory:")) as db:
            db.execute(SCHEMA)
    except sqlite3.Error as exc:
        print(f"selfcheck failed: sqlite: {exc}", file=out, flush=True)
        return 1
    print(f"selfcheck ok: {len(modules)} modules, version {__version__}", file=out, flush=True)
    return 0
