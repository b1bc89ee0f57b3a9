"""The Telegram side of the service: a kurigram client and a PyTgCalls instance.

Imported lazily: without credentials the service never loads pyrogram.
"""

from __future__ import annotations

import logging
from typing import Any

from .settings import Settings

__all__ = ["SESSION_NAME", "Bot"]

log = logging.getLogger(__name__)

#: Name of the kurigram session; its file is ``<STATE_DIR>/<SESSION_NAME>.session``.
SESSION_NAME = "tg_video_streamer"


class Bot:
    """The bot: answers ``/start`` with the version and owns the call engine."""

    def __init__(self, settings: Settings, version: str) -> None:
        if not settings.telegram_enabled:
            raise ValueError("Telegram credentials are not configured")
        self._settings = settings
        self._version = version
        self._client: Any | None = None
        self._calls: Any | None = None

    async def start(self) -> None:
        """Connect to Telegram (session file in ``STATE_DIR``) and start PyTgCalls."""
        from pyrogram import Client, filters
        from pytgcalls import PyTgCalls

        settings = self._settings
        assert settings.tg_api_hash is not None and settings.tg_bot_token is not None
        client = Client(
            SESSION_NAME,
            api_id=settings.tg_api_id,
            api_hash=settings.tg_api_hash.get_secret_value(),
            bot_token=settings.tg_bot_token.get_secret_value(),
            workdir=str(settings.state_dir),
        )
        client.on_message(filters.command("start"))(self._on_start)
        self._client = client
        self._calls = PyTgCalls(client)
        await self._calls.start()
        me = await client.get_me()
        log.info("telegram: connected as @%s", me.username)

    async def stop(self) -> None:
        """Disconnect from Telegram; safe to call when not started."""
        client, self._client, self._calls = self._client, None, None
        if client is not None and client.is_connected:
            try:
                await client.stop()
            except Exception as exc:  # half-started (stopped while connecting)
                log.warning("telegram: disconnect failed: %s", type(exc).__name__)
            else:
                log.info("telegram: disconnected")

    async def _on_start(self, client: Any, message: Any) -> None:
        await message.reply_text(f"tg_video_streamer {self._version} is running.")
