"""The model registry's persistent half: the ModelStore interface and its SQLite backend.

RegistryStore keeps one SQLite table in the data directory (store/postgres.py is the shared
backend). Rows are written in a transaction with synchronous=FULL and WAL, so a crash (even
kill -9) leaves the last committed state. Only what is needed to reload a model is stored: name,
source, format, the dtype asked for and the one it resolved to, and the hashes seen at
registration.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

# 2: compute_dtype (the dtype a registration resolved to) and files_hash (every model file).
SCHEMA_VERSION = 2

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
# Columns added after schema 1; existing rows get '' (= not known yet, filled in on restore).
_ADDED_COLUMNS = ("compute_dtype", "files_hash")
_COLUMNS = (
    "name, source_path, format, dtype, content_hash, registered_at, compute_dtype, files_hash"
)


@dataclass(frozen=True)
class ModelRecord:
    name: str
    source_path: str  # resolved absolute path
    format: str
    dtype: str  # as requested ("" = server default)
    content_hash: str  # the identity dictionaries are bound to
    registered_at: datetime
    compute_dtype: str = ""  # what `dtype` resolved to at registration ("" in schema-1 rows)
    # sha256 of every model file (weights, configs, tokenizer). Equal to content_hash for
    # registrations since schema 2; "" in schema-1 rows, whose content_hash covers weights only.
    files_hash: str = ""


class ModelStore(Protocol):
    """Registrations as the registry persists them. Calls block; the registry makes them in order
    from one writer thread. A store that other processes write too (`shared`) tells the registry of
    their changes through store.postgres.Listener."""

    shared: bool

    def put(self, record: ModelRecord) -> None:
        """Insert or replace the registration of `record.name`."""

    def pin(self, record: ModelRecord) -> ModelRecord | None:
        """Fill in the hashes and dtype a load found, if the registration is the same one (name and
        registered_at) and its hashes are not known yet. Returns the registration as stored now
        (None if it is gone), so a caller can tell that another process pinned other files."""

    def delete(self, name: str) -> None: ...

    def all(self) -> list[ModelRecord]: ...

    def close(self) -> None: ...


class RegistryStore:
    """SQLite-backed model records. Thread-safe; each call is one transaction."""

    shared = False

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "registry.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one transaction: a crash leaves v1 or v2
            try:
                self._migrate()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema {row[0]}, newer than this chunkscope ({SCHEMA_VERSION})"
            )
        present = {r[1] for r in self._db.execute("PRAGMA table_info(models)")}
        for column in _ADDED_COLUMNS:
            if column not in present:
                self._db.execute(f"ALTER TABLE models ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def put(self, record: ModelRecord) -> None:
        with self._lock, self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.source_path,
                    record.format,
                    record.dtype,
                    record.content_hash,
                    record.registered_at.isoformat(),
                    record.compute_dtype,
                    record.files_hash,
                ),
            )

    def pin(self, record: ModelRecord) -> ModelRecord | None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE models SET content_hash = ?, files_hash = ?, compute_dtype = ? "
                "WHERE name = ? AND registered_at = ? AND (content_hash = '' OR files_hash = '')",
                (record.content_hash, record.files_hash, record.compute_dtype, record.name,
                 record.registered_at.isoformat()),
            )  # fmt: skip
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM models WHERE name = ?", (record.name,)
            ).fetchone()
        return None if row is None else _record(row)

    def delete(self, name: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM models WHERE name = ?", (name,))

    def all(self) -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM models ORDER BY name").fetchall()
        return [_record(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(r: tuple[str, ...]) -> ModelRecord:
    return ModelRecord(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), r[6], r[7])


def now() -> datetime:
    return datetime.now(UTC)
