"""The service's life cycle: listen, start the bot, tell systemd, wait for a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from aiohttp import web

from .health import make_app
from .notify import sd_notify
from .settings import Settings

__all__ = ["run", "serve"]

log = logging.getLogger("tg_video_streamer")

T = TypeVar("T")


def run(main: Awaitable[T]) -> T:
    """Run the coroutine ``main`` on uvloop when it is installed, else on asyncio."""
    try:
        import uvloop
    except ImportError:
        log.debug("event loop: asyncio (uvloop not installed)")
        return asyncio.run(main)  # type: ignore[arg-type]
    log.debug("event loop: uvloop %s", uvloop.__version__)
    return uvloop.run(main)  # type: ignore[arg-type]


async def serve(settings: Settings, version: str) -> int:
    """Serve until SIGTERM or SIGINT; return the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    runner = web.AppRunner(
        make_app(version),
        access_log=log if settings.log_level == "DEBUG" else None,
    )
    await runner.setup()
    address = _address(settings.http_host, settings.http_port)
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", address, exc.strerror or exc)
        await runner.cleanup()
        return 1

    bot = None
    try:
        if settings.telegram_enabled:
            from .bot import Bot

            bot = Bot(settings, version)
            started = asyncio.ensure_future(bot.start())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not started.done():  # a signal while connecting: give up quietly
                started.cancel()
                await asyncio.gather(started, return_exceptions=True)
                log.info("stopped while connecting to Telegram")
                return 0
            if started.exception() is not None:  # Telegram unreachable, bad token, ...
                reason = _masked(started.exception(), settings.secrets())
                log.error("telegram: cannot start: %s", reason)
                return 1
        else:
            log.info("telegram: no credentials configured, bot disabled")

        log.info("tg_video_streamer %s serving on %s", version, address)
        sd_notify(f"READY=1\nSTATUS=serving version {version}")
        await stop.wait()
        log.info("stopping")
        sd_notify("STOPPING=1")
    finally:
        if bot is not None:
            await bot.stop()
        await runner.cleanup()
    log.info("stopped")
    return 0


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _masked(exc: BaseException, secrets: Sequence[str]) -> str:
    """One line describing ``exc`` with every secret value replaced by ``***``."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())
