"""The HTTP API: ``GET /health``, ``GET|POST /notes``, ``GET /notes/{id}``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .store import NoteStore

__all__ = ["MAX_NOTE", "make_app"]

MAX_NOTE = 10_000  # characters


def make_app(store: NoteStore, version: str) -> Starlette:
    """The application, reporting ``version`` and keeping notes in ``store``."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": version, "notes": store.count()})

    async def notes(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"notes": store.all()})
        try:
            body = await request.json()
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTE:
            return JSONResponse(
                {"error": f'send JSON {{"text": "..."}}, 1 to {MAX_NOTE} characters'}, status_code=400
            )
        return JSONResponse(store.add(text), status_code=201)

    async def note(request: Request) -> JSONResponse:
        found = store.get(request.path_params["note_id"])
        if found is None:
            return JSONResponse({"error": "no such note"}, status_code=404)
        return JSONResponse(found)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/notes", notes, methods=["GET", "POST"]),
            Route("/notes/{note_id:int}", note, methods=["GET"]),
        ]
    )
