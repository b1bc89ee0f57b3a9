"""Command line: ``python -m tg_video_streamer [--selfcheck | --version]``.

Exit codes: 0 stopped cleanly (or check passed), 1 failed at run time,
2 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import installed_version

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service, or the self-check, and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="tg_video_streamer",
        description="Telegram video-streaming bot with an HTTP health endpoint. "
        "Settings come from the environment (HTTP_PORT, STATE_DIR, ...).",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--selfcheck",
        action="store_true",
        help="import every dependency and module, print one line, exit (needs no settings)",
    )
    action.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)

    if args.version:
        print(installed_version())
        return EXIT_OK
    if args.selfcheck:
        from .selfcheck import selfcheck

        return selfcheck()

    from .settings import ConfigError, ensure_state_dir, load_settings

    try:
        settings = load_settings()
        ensure_state_dir(settings)
    except ConfigError as exc:
        print(f"tg_video_streamer: config error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG

    _setup_logging(settings.log_level_number)
    from .service import run, serve

    try:
        return run(serve(settings, installed_version()))
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return EXIT_OK


def _setup_logging(level: int) -> None:
    """Log to stdout, line by line (the journal adds time stamps)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level > logging.DEBUG:  # pyrogram narrates every (re)connect at INFO
        logging.getLogger("pyrogram").setLevel(max(level, logging.WARNING))


if __name__ == "__main__":
    sys.exit(main())
