"""The notes, in one sqlite file. One connection per call: the file is the only state."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SCHEMA", "NoteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


class NoteStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5)
        db.row_factory = sqlite3.Row
        return db

    def add(self, text: str) -> dict:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as db, db:
            cur = db.execute("INSERT INTO notes (text, created_at) VALUES (?, ?)", (text, created))
            return {"id": cur.lastrowid, "text": text, "created_at": created}

    def get(self, note_id: int) -> dict | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT id, text, created_at FROM notes WHERE id = ?", (note_id,)).fetchone()
        return dict(row) if row else None

    def all(self) -> list[dict]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, text, created_at FROM notes ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def count(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT count(*) FROM notes").fetchone()[0]
