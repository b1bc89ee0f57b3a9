"""``--selfcheck``: import every dependency and module, without any configuration.

This is the deploy tool's smoke test: it runs in an empty environment and must
never touch the network, the state directory or Telegram.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TextIO

from . import installed_version

__all__ = ["DEPENDENCIES", "OWN_MODULES", "selfcheck"]

#: Import names of the runtime dependencies (distribution names differ:
#: kurigram -> pyrogram, py-tgcalls -> pytgcalls, ntgcalls comes with py-tgcalls).
DEPENDENCIES = (
    "pyrogram",
    "tgcrypto",
    "pytgcalls",
    "ntgcalls",
    "aiohttp",
    "pydantic",
    "uvloop",
    "orjson",
)

#: The service's own modules.
OWN_MODULES = (
    "tg_video_streamer",
    "tg_video_streamer.settings",
    "tg_video_streamer.notify",
    "tg_video_streamer.health",
    "tg_video_streamer.bot",
    "tg_video_streamer.service",
    "tg_video_streamer.selfcheck",
    "tg_video_streamer.__main__",
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
    print(
        f"selfcheck ok: {len(modules)} modules, version {installed_version()}",
        file=out,
        flush=True,
    )
    return 0
