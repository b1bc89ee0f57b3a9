"""Command line: ``python -m notes_api [--selfcheck | --version]``.

Exit codes: 0 stopped cleanly (or check passed), 1 failed at run time, 2 configuration
error.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence

from . import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service, or the self-check, and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="notes_api",
        description="A small notes web API. Settings come from the environment "
        "(PORT, HOST, DATA_DIR, LOG_LEVEL; all optional).",
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
        print(__version__)
        return EXIT_OK
    if args.selfcheck:
        from .selfcheck import selfcheck

        return selfcheck()

    from .settings import ConfigError, load_settings
    from .store import NoteStore

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"notes_api: config error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    try:
        store = NoteStore(settings.database)
    except (OSError, sqlite3.Error) as exc:
        print(f"notes_api: cannot open {settings.database}: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED

    import uvicorn

    from .app import make_app
    from .listen import Server, systemd_socket

    sock = systemd_socket()
    where = (
        f"the socket systemd passed ({sock.getsockname()})" if sock else f"{settings.host}:{settings.port}"
    )
    print(f"notes_api {__version__}: notes in {settings.database}, listening on {where}", flush=True)
    config = uvicorn.Config(
        make_app(store, __version__),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level in ("debug", "trace"),
    )
    Server(config).run(sockets=[sock] if sock else None)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
