"""Stored guard policies: named, versioned, never edited in place.

Every change appends a row (name, version): PutPolicy a new body, DeletePolicy a tombstone, so
version numbers of a name only grow and a version, once written, always means the same policy.
A policy whose latest row is a tombstone is deleted: nothing of it is found until it is put
again. The body is the policy as JSON (what the API validated); the store does not interpret it.

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

    def close(self) -> None: ...


def not_found(name: str, version: int = 0) -> NotFound:
    if version:
        return NotFound(
            f"policy {name!r} has no version {version}; ListPolicies with name={name!r} shows "
            "its versions",
            reason="POLICY_NOT_FOUND",
            metadata={"policy": name, "version": str(version)},
        )
    return NotFound(
        f"no policy {name!r}; ListPolicies shows the stored ones",
        reason="POLICY_NOT_FOUND",
        metadata={"policy": name},
    )


def conflict(name: str, latest: int, expected: int) -> FailedPrecondition:
    now = f"is at version {latest}" if latest else "does not exist"
    return FailedPrecondition(
        f"policy {name!r} {now}, not the expected version {expected}: someone else changed it; "
        "read it again (GetPolicy), reapply your change and retry with the version you read",
        reason="POLICY_VERSION_CONFLICT",
        metadata={"policy": name, "latest_version": str(latest), "expected_version": str(expected)},
    )


def check_expected(name: str, latest: int, expected: int | None) -> None:
    """`latest` is 0 when the policy does not exist (never stored, or deleted)."""
    if expected is not None and expected != latest:
        raise conflict(name, latest, expected)


def now() -> datetime:
    return datetime.now(UTC)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS policies ("
    " name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,"
    " author TEXT NOT NULL, deleted INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (name, version))"
)
_COLUMNS = "name, version, body, created_at, author, deleted"


class LocalPolicyStore:
    """Policies in the data dir's SQLite database (registry.sqlite3); each call a transaction."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "registry.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def _latest(self, name: str) -> PolicyRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM policies WHERE name = ? ORDER BY version DESC LIMIT 1",
            (name,),
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
                raise not_found(name)
            check_expected(name, live, expected)
            record = PolicyRecord(name, last + 1, body, now(), author, deleted)
            self._db.execute(
                f"INSERT INTO policies ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (name, record.version, body, record.created_at.isoformat(), author, int(deleted)),
            )
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
                f"SELECT {_COLUMNS} FROM policies WHERE name = ? AND version = ?", (name, live)
            ).fetchone()
        return _record(row)

    def get(self, name: str, version: int = 0) -> PolicyRecord:
        with self._lock:
            latest = self._latest(name)
            if latest is None or latest.deleted:
                raise not_found(name)
            if not version or version == latest.version:
                return latest
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE name = ? AND version = ? AND deleted = 0",
                (name, version),
            ).fetchone()
        if row is None:
            raise not_found(name, version)
        return _record(row)

    def list_latest(self, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        latest = (
            "SELECT p.* FROM policies p JOIN (SELECT name, MAX(version) AS v FROM policies "
            "GROUP BY name) m ON p.name = m.name AND p.version = m.v WHERE p.deleted = 0"
        )
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM ({latest})").fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM ({latest}) ORDER BY name LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def list_versions(self, name: str, offset: int, limit: int) -> tuple[list[PolicyRecord], int]:
        with self._lock:
            latest = self._latest(name)
            if latest is None or latest.deleted:
                raise not_found(name)
            total = self._db.execute(
                "SELECT COUNT(*) FROM policies WHERE name = ? AND deleted = 0", (name,)
            ).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE name = ? AND deleted = 0 "
                "ORDER BY version DESC LIMIT ? OFFSET ?",
                (name, limit, offset),
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(r: tuple[object, ...]) -> PolicyRecord:
    created = r[3] if isinstance(r[3], datetime) else datetime.fromisoformat(str(r[3]))
    return PolicyRecord(str(r[0]), int(str(r[1])), str(r[2]), created.astimezone(UTC),
                        str(r[4]), bool(r[5]))  # fmt: skip
