"""The shared store: registrations and dictionaries in one PostgreSQL database, for replicas.

Every replica of a fleet points `--store postgresql://...` at the same database. A dictionary is one
row (manifest and tensors as bytea, the tensors' sha256 in the manifest, checked on every load),
written in one transaction: a replica killed mid-write leaves nothing, and a committed dictionary
is readable by every replica at once. Registrations are rows too; each write also sends a NOTIFY
on `chunkscope_models`, which every replica LISTENs to (Listener) so that it loads or drops the
model (engine/registry.py, `sync`). The schema is versioned (MIGRATIONS, applied in order under an
advisory lock, so replicas starting together migrate once). SQL is always parameterised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from chunkscope.errors import Unavailable
from chunkscope.store import policies
from chunkscope.store.dictionaries import (
    ArchiveSpool,
    DictionaryRecord,
    DictionaryStore,
    already_exists,
    manifest_bytes,
    not_found,
    record_of,
)
from chunkscope.store.policies import POLICIES, Kind, PolicyRecord, check_expected
from chunkscope.store.registry import ModelRecord

log = logging.getLogger(__name__)

MODELS_CHANNEL = "chunkscope_models"
# pg_advisory_xact_lock key for migrations ("chunks" in ASCII).
_MIGRATION_LOCK = 0x6368756E6B73
# pg_advisory_xact_lock(class, hashtext(kind:name)) class for writes to one policy or preset
# ("pol" in ASCII).
_POLICY_LOCK_CLASS = 0x706F6C

# (version, statements). Append only: a released migration is never edited.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE models (
                name          text PRIMARY KEY,
                source_path   text NOT NULL,
                format        text NOT NULL,
                dtype         text NOT NULL,
                content_hash  text NOT NULL,
                registered_at timestamptz NOT NULL,
                compute_dtype text NOT NULL DEFAULT '',
                files_hash    text NOT NULL DEFAULT ''
            )""",
            """CREATE TABLE dictionaries (
                id             text PRIMARY KEY,
                model_name     text NOT NULL,
                model_hash     text NOT NULL,
                hook_point     text NOT NULL,
                method         text NOT NULL,
                created_at     timestamptz NOT NULL,
                n_entries      integer NOT NULL,
                manifest       bytea NOT NULL,
                tensors        bytea NOT NULL,
                tensors_sha256 text NOT NULL
            )""",
            "CREATE INDEX dictionaries_by_model ON dictionaries (model_name, created_at DESC, id)",
        ),
    ),
    (
        2,
        (
            # Guard policies (store/policies.py): one row per version, tombstones for deletions.
            """CREATE TABLE policies (
                name       text NOT NULL,
                version    bigint NOT NULL,
                created_at timestamptz NOT NULL,
                author     text NOT NULL,
                deleted    boolean NOT NULL,
                body       text NOT NULL,
                PRIMARY KEY (name, version)
            )""",
        ),
    ),
    (
        3,
        (
            # Intervention presets share the policies' table (store/policies.py Kind): a kind
            # column, existing rows being policies, and the key (kind, name, version).
            "ALTER TABLE policies ADD COLUMN kind text NOT NULL DEFAULT 'policy'",
            "ALTER TABLE policies DROP CONSTRAINT policies_pkey",
            "ALTER TABLE policies ADD PRIMARY KEY (kind, name, version)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_MODEL_COLUMNS = (
    "name, source_path, format, dtype, content_hash, registered_at, compute_dtype, files_hash"
)


def describe(conninfo: str) -> str:
    """Where a connection string points, without its password (for logs and errors)."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unparseable connection string)"
    where = f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}"
    return f"PostgreSQL {where}/{parts.get('dbname', '')}"


class _Database:
    """A small connection pool and the error mapping every query goes through."""

    def __init__(self, conninfo: str, timeout: float) -> None:
        self.conninfo = conninfo
        self.where = describe(conninfo)
        self._timeout = timeout
        self.pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=4,
            timeout=timeout,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(timeout))},
            name="chunkscope-store",
        )

    def open(self) -> None:
        """Connect and migrate; a database that cannot be reached fails start-up with one line."""
        try:  # one plain connection first: its error says why (the pool's would only time out)
            with psycopg.connect(self.conninfo, connect_timeout=max(1, int(self._timeout))) as conn:
                migrate(conn, self.where)
        except psycopg.OperationalError as exc:
            raise OSError(
                f"cannot use the store at {self.where}: {_first_line(exc)}; check --store, that "
                "the server runs, and the password (PGPASSWORD or ~/.pgpass)"
            ) from None
        try:
            self.pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout:
            raise OSError(
                f"the store at {self.where} accepted one connection but the pool could not open "
                f"its first within {self._timeout:.0f}s; check the server's connection limit"
            ) from None

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; the block is one transaction (committed when it ends cleanly)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise Unavailable(
                f"the store ({self.where}) is unavailable: {_first_line(exc)}; retry shortly",
                reason="STORE_UNAVAILABLE",
            ) from None

    def close(self) -> None:
        self.pool.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def migrate(conn: psycopg.Connection[Any], where: str) -> None:
    """Bring the schema to SCHEMA_VERSION (in the caller's transaction, under an advisory lock)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    conn.execute(
        "CREATE TABLE IF NOT EXISTS chunkscope_schema ("
        " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM chunkscope_schema").fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise OSError(
            f"the store at {where} has schema {current}, newer than this chunkscope "
            f"({SCHEMA_VERSION}); upgrade chunkscope"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            conn.execute(statement)  # constants of this module
        conn.execute("INSERT INTO chunkscope_schema (version) VALUES (%s)", (version,))
        log.info("store %s: schema migrated to version %d", where, version)


class PostgresModelStore:
    """Registrations (store.registry.ModelStore) in the shared database."""

    shared = True

    def __init__(self, db: _Database) -> None:
        self._db = db

    def put(self, record: ModelRecord) -> None:
        with self._db.connect() as conn:
            conn.execute(
                f"INSERT INTO models ({_MODEL_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET source_path = EXCLUDED.source_path, "
                "format = EXCLUDED.format, dtype = EXCLUDED.dtype, "
                "content_hash = EXCLUDED.content_hash, registered_at = EXCLUDED.registered_at, "
                "compute_dtype = EXCLUDED.compute_dtype, files_hash = EXCLUDED.files_hash",
                (record.name, record.source_path, record.format, record.dtype,
                 record.content_hash, record.registered_at, record.compute_dtype,
                 record.files_hash),
            )  # fmt: skip
            _notify(conn, record.name)

    def pin(self, record: ModelRecord) -> ModelRecord | None:
        with self._db.connect() as conn:
            updated = conn.execute(
                "UPDATE models SET content_hash = %s, files_hash = %s, compute_dtype = %s "
                "WHERE name = %s AND registered_at = %s AND (content_hash = '' OR files_hash = '')",
                (record.content_hash, record.files_hash, record.compute_dtype, record.name,
                 record.registered_at),
            ).rowcount  # fmt: skip
            row = conn.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = %s", (record.name,)
            ).fetchone()
            if updated:
                _notify(conn, record.name)
        return None if row is None else _model(row)

    def delete(self, name: str) -> None:
        with self._db.connect() as conn:
            conn.execute("DELETE FROM models WHERE name = %s", (name,))
            _notify(conn, name)

    def all(self) -> list[ModelRecord]:
        with self._db.connect() as conn:
            rows = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY name").fetchall()
        return [_model(r) for r in rows]

    def close(self) -> None:
        self._db.close()


def _notify(conn: psycopg.Connection[Any], name: str) -> None:
    """Tell every replica's Listener, when this transaction commits, that `name` changed."""
    conn.execute("SELECT pg_notify(%s, %s)", (MODELS_CHANNEL, name))


def _model(row: tuple[Any, ...]) -> ModelRecord:
    return ModelRecord(row[0], row[1], row[2], row[3], row[4], row[5].astimezone(UTC),
                       row[6], row[7])  # fmt: skip


class PostgresDictionaryStore(DictionaryStore):
    """Dictionaries as rows of the shared database; uploads spool under this replica's data dir."""

    shared = True

    def __init__(self, db: _Database, spool_dir: Path) -> None:
        self._db = db
        self.spool_dir = spool_dir
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.recover()

    def _put(self, manifest: dict[str, Any], blob: bytes) -> None:
        self._put_all([(manifest, blob)])

    def _put_all(self, items: Sequence[tuple[dict[str, Any], bytes]]) -> None:
        """One transaction: every dictionary of a job, or none (also across a crash)."""
        with self._db.connect() as conn:
            for manifest, blob in items:
                record = record_of(manifest)
                inserted = conn.execute(
                    "INSERT INTO dictionaries (id, model_name, model_hash, hook_point, method, "
                    "created_at, n_entries, manifest, tensors, tensors_sha256) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (record.id, record.model_name, record.model_hash, record.hook_point,
                     record.method, record.created_at, record.n_entries,
                     manifest_bytes(manifest), blob, manifest["tensors_sha256"]),
                ).rowcount  # fmt: skip
                if not inserted:
                    raise already_exists(record.id)  # rolls back the transaction

    def _get(self, dictionary_id: str) -> tuple[bytes, bytes]:
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT manifest, tensors FROM dictionaries WHERE id = %s", (dictionary_id,)
            ).fetchone()
        if row is None:
            raise not_found(dictionary_id)
        return bytes(row[0]), bytes(row[1])

    def _get_manifest(self, dictionary_id: str) -> bytes:
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT manifest FROM dictionaries WHERE id = %s", (dictionary_id,)
            ).fetchone()
        if row is None:
            raise not_found(dictionary_id)
        return bytes(row[0])

    def _remove(self, dictionary_id: str) -> None:
        with self._db.connect() as conn:
            deleted = conn.execute(
                "DELETE FROM dictionaries WHERE id = %s", (dictionary_id,)
            ).rowcount
        if not deleted:
            raise not_found(dictionary_id)

    def existing(self, dictionary_ids: Collection[str]) -> set[str]:
        if not dictionary_ids:
            return set()
        with self._db.connect() as conn:
            rows = conn.execute(
                "SELECT id FROM dictionaries WHERE id = ANY(%s)", (list(dictionary_ids),)
            ).fetchall()
        return {r[0] for r in rows}

    def list_page(self, model: str, offset: int, limit: int) -> tuple[list[DictionaryRecord], int]:
        where = sql.SQL("WHERE model_name = %s" if model else "")
        args: tuple[Any, ...] = (model,) if model else ()
        with self._db.connect() as conn:
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM dictionaries {}").format(where), args
            ).fetchone()
            rows = conn.execute(
                sql.SQL(
                    "SELECT id, model_name, model_hash, hook_point, method, created_at, n_entries "
                    "FROM dictionaries {} ORDER BY created_at DESC, id LIMIT %s OFFSET %s"
                ).format(where),
                (*args, limit, offset),
            ).fetchall()
        records = [
            DictionaryRecord(r[0], r[1], r[2], r[3], r[4], r[5].astimezone(UTC), r[6]) for r in rows
        ]
        return records, int(count[0]) if count else 0

    def spool(self) -> ArchiveSpool:
        return ArchiveSpool(self.spool_dir)

    def recover(self) -> None:
        """Uploads this replica was receiving when it stopped (its own data dir only)."""
        for path in self.spool_dir.glob(".tmp-upload-*"):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()


_POLICY_COLUMNS = "name, version, body, created_at, author, deleted"
_LATEST_POLICIES = (
    "SELECT DISTINCT ON (name) name, version, body, created_at, author, deleted FROM policies "
    "WHERE kind = %s ORDER BY name, version DESC"
)


class PostgresPolicyStore:
    """Guard policies (store.policies.PolicyStore), or another kind of document (`of`), in the
    shared database: a policy put on one replica is what every replica's next Check reads."""

    def __init__(self, db: _Database, kind: Kind = POLICIES) -> None:
        self._db = db
        self.kind = kind

    def of(self, kind: Kind) -> PostgresPolicyStore:
        return PostgresPolicyStore(self._db, kind)

    def _latest(self, conn: psycopg.Connection[Any], name: str) -> PolicyRecord | None:
        row = conn.execute(
            f"SELECT {_POLICY_COLUMNS} FROM policies WHERE kind = %s AND name = %s "
            "ORDER BY version DESC LIMIT 1",
            (self.kind.key, name),
        ).fetchone()
        return None if row is None else _policy(row)

    def _append(self, name: str, body: str, author: str, expected: int | None,
                deleted: bool) -> tuple[PolicyRecord, PolicyRecord | None]:  # fmt: skip
        with self._db.connect() as conn:
            # Writers of one name take turns (the lock ends with the transaction).
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (_POLICY_LOCK_CLASS, f"{self.kind.key}:{name}"),
            )
            latest = self._latest(conn, name)
            last = latest.version if latest else 0
            live = latest if latest is not None and not latest.deleted else None
            if deleted and live is None:
                raise policies.not_found(name, 0, self.kind)
            check_expected(name, live.version if live else 0, expected, self.kind)
            record = PolicyRecord(name, last + 1, body, policies.now(), author, deleted)
            conn.execute(
                f"INSERT INTO policies (kind, {_POLICY_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (self.kind.key, name, record.version, body, record.created_at, author, deleted),
            )
        return record, live

    def put(self, name: str, body: str, author: str, expected: int | None) -> PolicyRecord:
        return self._append(name, body, author, expected, deleted=False)[0]

    def delete(self, name: str, author: str, expected: int | None) -> PolicyRecord:
        _, live = self._append(name, "", author, expected, deleted=True)
        assert live is not None
        return live

    def get(self, name: str, version: int = 0) -> PolicyRecord:
        with self._db.connect() as conn:
            latest = self._latest(conn, name)
            if latest is None or latest.deleted:
                raise policies.not_found(name, 0, self.kind)
            if not version or version == latest.version:
                return latest
            row = conn.execute(
                f"SELECT {_POLICY_COLUMNS} FROM policies "
                "WHERE kind = %s AND name = %s AND version = %s AND NOT deleted",
                (self.kind.key, name, version),
            ).fetchone()
        if row is None:
            raise policies.not_found(name, version, self.kind)
        return _policy(row)

    def list_latest(self, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        with self._db.connect() as conn:
            count = conn.execute(
                f"SELECT count(*) FROM ({_LATEST_POLICIES}) p WHERE NOT deleted", (self.kind.key,)
            ).fetchone()
            rows = conn.execute(
                f"SELECT * FROM ({_LATEST_POLICIES}) p WHERE NOT deleted "
                "ORDER BY name LIMIT %s OFFSET %s",
                (self.kind.key, limit, offset),
            ).fetchall()
        return [_policy(r) for r in rows], int(count[0]) if count else 0

    def list_versions(self, name: str, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        with self._db.connect() as conn:
            latest = self._latest(conn, name)
            if latest is None or latest.deleted:
                raise policies.not_found(name, 0, self.kind)
            count = conn.execute(
                "SELECT count(*) FROM policies WHERE kind = %s AND name = %s AND NOT deleted",
                (self.kind.key, name),
            ).fetchone()
            rows = conn.execute(
                f"SELECT {_POLICY_COLUMNS} FROM policies "
                "WHERE kind = %s AND name = %s AND NOT deleted "
                "ORDER BY version DESC LIMIT %s OFFSET %s",
                (self.kind.key, name, limit, offset),
            ).fetchall()
        return [_policy(r) for r in rows], int(count[0]) if count else 0

    def close(self) -> None:
        self._db.close()


def _policy(row: tuple[Any, ...]) -> PolicyRecord:
    return PolicyRecord(row[0], int(row[1]), row[2], row[3].astimezone(UTC), row[4], bool(row[5]))


class Listener:
    """A thread LISTENing for registration changes; calls `on_change()` for each, and once after
    every (re)connection, since notifications sent while it was away are lost."""

    def __init__(self, conninfo: str, on_change: Callable[[], object]) -> None:
        self._conninfo = conninfo
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chunkscope-listen", daemon=True)
        self.where = describe(conninfo)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(MODELS_CHANNEL)))
                    delay = 0.5
                    self._on_change()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._on_change()
            except psycopg.Error as exc:
                log.warning(
                    "store %s: listening for changes failed (%s); retrying in %.1fs",
                    self.where,
                    _first_line(exc),
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def open_postgres(
    conninfo: str, spool_dir: Path, timeout: float
) -> tuple[PostgresModelStore, PostgresDictionaryStore]:
    """Connect, migrate, and return the two stores (sharing one pool)."""
    db = _Database(conninfo, timeout)
    db.open()
    return PostgresModelStore(db), PostgresDictionaryStore(db, spool_dir)


def policy_store(dictionaries: PostgresDictionaryStore) -> PostgresPolicyStore:
    """The policy store on the same pool as `dictionaries` (the database is already migrated)."""
    return PostgresPolicyStore(dictionaries._db)
