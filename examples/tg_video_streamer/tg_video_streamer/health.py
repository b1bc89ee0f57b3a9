"""The HTTP side of the service: ``GET /health`` for probes and a small ``GET /``."""

from __future__ import annotations

import orjson
from aiohttp import web

__all__ = ["make_app"]


def make_app(version: str) -> web.Application:
    """Build the aiohttp application reporting ``version``."""
    health_body = orjson.dumps({"status": "ok", "version": version})

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=health_body, content_type="application/json")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=f"tg_video_streamer {version}\n")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/", index)
    return app
