"""Stored guard documents: named, versioned, never edited in place. Policies and intervention
presets are two kinds of such documents, kept by one implementation in one table.

Every change appends a row (kind, name, version): PutPolicy a new body, DeletePolicy a tombstone,
so version numbers of a name only grow and a version, once written, always means the same
document. A document whose latest row is a tombstone is deleted: nothing of it is found until it
is put again. The body is the document as JSON (what the API validated); the store does not
interpret it. A store serves one kind (`Kind`): `store.of(PRESETS)` is the presets' view of the
same table, connection and lock.

Two backends with one contract (tests/unit/test_policy_store.py runs both): LocalPolicyStore
(a table of the data dir's SQLite database) and store.postgres.PostgresPolicyStore (rows of the
shared database, so replicas see each other's policies at once). A write checks the expected
version and appends in one transaction that holds the name: two writers racing on one name get
consecutive versions, or one of them a conflict when it stated an expected version.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from chunkscope.errors import FailedPrecondition, NotFound


@dataclass(frozen=True)
class Kind:
    """What a store holds: the `kind` column's value and how errors name it."""

    key: str  # the kind column ("policy", "preset")
    noun: str  # how messages and metadata name one
    reason: str  # reason prefix: POLICY_NOT_FOUND, POLICY_VERSION_CONFLICT
    get_rpc: str  # the RPCs errors point to
    list_rpc: str


POLICIES = Kind("policy", "policy", "POLICY", "GetPolicy", "ListPolicies")
PRESETS = Kind("preset", "preset", "PRESET", "GetPreset", "ListPresets")


@dataclass(frozen=True)
class PolicyRecord:
    """One version of a policy as stored."""

    name: str
    version: int
    body: str  # the policy as JSON ("" for a tombstone)
    created_at: datetime
    author: str  # API key id of the writer ("" with auth disabled)
    deleted: bool = False


class PolicyStore(Protocol):
    """Policies as the guard service persists them. Calls block (run them off the event loop)."""

    def put(self, name: str, body: str, author: str, expected: int | None) -> PolicyRecord:
        """Append the next version of `name`; FailedPrecondition when `expected` (0: the policy
        must not exist) is not its latest version."""

    def get(self, name: str, version: int = 0) -> PolicyRecord:
        """The latest version (0) or a given one; NotFound when absent or deleted."""

    def list_latest(self, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        """The latest version of every policy not deleted, by name; and how many there are."""

    def list_versions(self, name: str, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        """Every version of one policy, newest first; NotFound when absent or deleted."""

    def delete(self, name: str, author: str, expected: int | None) -> PolicyRecord:
        """Append a tombstone; returns the version deleted (NotFound, FailedPrecondition)."""

    def of(self, kind: Kind) -> PolicyStore:
        """The same store holding documents of another kind (sharing its connection)."""

    def close(self) -> None: ...


def not_found(name: str, version: int = 0, kind: Kind = POLICIES) -> NotFound:
    if version:
        return NotFound(
            f"{kind.noun} {name!r} has no version {version}; {kind.list_rpc} with "
            f"name={name!r} shows its versions",
            reason=f"{kind.reason}_NOT_FOUND",
            metadata={kind.noun: name, "version": str(version)},
        )
    return NotFound(
        f"no {kind.noun} {name!r}; {kind.list_rpc} shows the stored ones",
        reason=f"{kind.reason}_NOT_FOUND",
        metadata={kind.noun: name},
    )


def conflict(name: str, latest: int, expected: int, kind: Kind = POLICIES) -> FailedPrecondition:
    now = f"is at version {latest}" if latest else "does not exist"
    return FailedPrecondition(
        f"{kind.noun} {name!r} {now}, not the expected version {expected}: someone else changed "
        f"it; read it again ({kind.get_rpc}), reapply your change and retry with the version you "
        "read",
        reason=f"{kind.reason}_VERSION_CONFLICT",
        metadata={kind.noun: name, "latest_version": str(latest),
                  "expected_version": str(expected)},
    )  # fmt: skip


def check_expected(name: str, latest: int, expected: int | None, kind: Kind = POLICIES) -> None:
    """`latest` is 0 when the document does not exist (never stored, or deleted)."""
    if expected is not None and expected != latest:
        raise conflict(name, latest, expected, kind)


def now() -> datetime:
    return datetime.now(UTC)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS policies ("
    " kind TEXT NOT NULL DEFAULT 'policy',"
    " name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,"
    " author TEXT NOT NULL, deleted INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (kind, name, version))"
)
_COLUMNS = "name, version, body, created_at, author, deleted"


def _migrate(db: sqlite3.Connection) -> None:
    """Create the table, or give one made before presets (no `kind`, key (name, version)) the
    kind column and the (kind, name, version) key; its rows are policies. One transaction: a
    crash leaves the old table or the new one, never half of either."""
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = [r[1] for r in db.execute("PRAGMA table_info(policies)").fetchall()]
        if columns and "kind" not in columns:
            db.execute(_SCHEMA.replace("EXISTS policies", "EXISTS policies_kinds"))
            db.execute(
                f"INSERT INTO policies_kinds (kind, {_COLUMNS}) "
                f"SELECT 'policy', {_COLUMNS} FROM policies"
            )
            db.execute("DROP TABLE policies")
            db.execute("ALTER TABLE policies_kinds RENAME TO policies")
        else:
            db.execute(_SCHEMA)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class LocalPolicyStore:
    """Documents of one kind (policies unless `of` says otherwise) in the data dir's SQLite
    database (registry.sqlite3); each call a transaction."""

    def __init__(self, data_dir: Path, kind: Kind = POLICIES) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "registry.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        _migrate(self._db)
        self._owner = True

    def of(self, kind: Kind) -> LocalPolicyStore:
        view = object.__new__(LocalPolicyStore)
        view.kind, view._lock, view._db, view._owner = kind, self._lock, self._db, False
        return view

    def _latest(self, name: str) -> PolicyRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM policies WHERE kind = ? AND name = ? "
            "ORDER BY version DESC LIMIT 1",
            (self.kind.key, name),
        ).fetchone()
        return None if row is None else _record(row)

    def _append(self, name: str, body: str, author: str, expected: int | None,
                deleted: bool) -> tuple[PolicyRecord, int]:  # fmt: skip
        """Under the lock: check, append; returns the new row and the version before it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            latest = self._latest(name)
            last = latest.version if latest else 0
            live = last if latest is not None and not latest.deleted else 0
            if deleted and not live:
                raise not_found(name, 0, self.kind)
            check_expected(name, live, expected, self.kind)
            record = PolicyRecord(name, last + 1, body, now(), author, deleted)
            self._db.execute(
                f"INSERT INTO policies (kind, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.kind.key, name, record.version, body, record.created_at.isoformat(),
                 author, int(deleted)),
            )  # fmt: skip
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return record, live

    def put(self, name: str, body: str, author: str, expected: int | None) -> PolicyRecord:
        with self._lock:
            return self._append(name, body, author, expected, deleted=False)[0]

    def delete(self, name: str, author: str, expected: int | None) -> PolicyRecord:
        with self._lock:
            _, live = self._append(name, "", author, expected, deleted=True)
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE kind = ? AND name = ? AND version = ?",
                (self.kind.key, name, live),
            ).fetchone()
        return _record(row)

    def get(self, name: str, version: int = 0) -> PolicyRecord:
        with self._lock:
            latest = self._latest(name)
            if latest is None or latest.deleted:
                raise not_found(name, 0, self.kind)
            if not version or version == latest.version:
                return latest
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM policies "
                "WHERE kind = ? AND name = ? AND version = ? AND deleted = 0",
                (self.kind.key, name, version),
            ).fetchone()
        if row is None:
            raise not_found(name, version, self.kind)
        return _record(row)

    def list_latest(self, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        latest = (
            "SELECT p.* FROM policies p JOIN (SELECT name, MAX(version) AS v FROM policies "
            "WHERE kind = ? GROUP BY name) m ON p.name = m.name AND p.version = m.v "
            "WHERE p.kind = ? AND p.deleted = 0"
        )
        kinds = (self.kind.key, self.kind.key)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM ({latest})", kinds).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM ({latest}) ORDER BY name LIMIT ? OFFSET ?",
                (*kinds, limit, offset),
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def list_versions(self, name: str, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        with self._lock:
            latest = self._latest(name)
            if latest is None or latest.deleted:
                raise not_found(name, 0, self.kind)
            total = self._db.execute(
                "SELECT COUNT(*) FROM policies WHERE kind = ? AND name = ? AND deleted = 0",
                (self.kind.key, name),
            ).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE kind = ? AND name = ? AND deleted = 0 "
                "ORDER BY version DESC LIMIT ? OFFSET ?",
                (self.kind.key, name, limit, offset),
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def close(self) -> None:
        if not self._owner:  # a view: the store that opened the connection closes it
            return
        with self._lock:
            self._db.close()


def _record(r: tuple[object, ...]) -> PolicyRecord:
    created = r[3] if isinstance(r[3], datetime) else datetime.fromisoformat(str(r[3]))
    return PolicyRecord(str(r[0]), int(str(r[1])), str(r[2]), created.astimezone(UTC),
                        str(r[4]), bool(r[5]))  # fmt: skip
