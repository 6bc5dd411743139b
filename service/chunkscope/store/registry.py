"""The model registry's persistent half: one SQLite table in the data directory.

Rows are written in a transaction with synchronous=FULL and WAL, so a crash (even kill -9) leaves
the last committed state. Only what is needed to reload a model is stored: name, source, format,
dtype and the content hash seen at registration.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name          TEXT PRIMARY KEY,
    source_path   TEXT NOT NULL,
    format        TEXT NOT NULL,
    dtype         TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ModelRecord:
    name: str
    source_path: str  # resolved absolute path
    format: str
    dtype: str  # as requested ("" = server default)
    content_hash: str
    registered_at: datetime


class RegistryStore:
    """SQLite-backed model records. Thread-safe; each call is one transaction."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "registry.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema {row[0]}, newer than this chunkscope "
                    f"({SCHEMA_VERSION})"
                )

    def put(self, record: ModelRecord) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.source_path,
                    record.format,
                    record.dtype,
                    record.content_hash,
                    record.registered_at.isoformat(),
                ),
            )

    def delete(self, name: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM models WHERE name = ?", (name,))

    def all(self) -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM models ORDER BY name").fetchall()
        return [
            ModelRecord(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def now() -> datetime:
    return datetime.now(UTC)
