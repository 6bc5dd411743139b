"""API keys and roles: the key file, the role each RPC needs, and checking a bearer token.

A key looks like `cks_<id>_<secret>`: the id (12 hex characters) finds the record, the secret
(32 random bytes) proves possession. Only sha256 of the whole key is stored, so the key file
leaks nothing usable; keys are random enough that a salt adds nothing. Comparison is constant
time, and an unknown id costs the same comparison as a known one.

Roles nest: admin > analyst > monitor. `REQUIRED_ROLE` names the least role for every RPC; an RPC
missing from it needs admin (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("monitor", "analyst", "admin")  # each includes the ones before it
_RANK = {role: i for i, role in enumerate(ROLES)}
PREFIX = "cks_"

_V1 = "chunkscope.v1."
REQUIRED_ROLE: dict[str, str] = {
    # Read-only listing and detection: monitoring boxes.
    _V1 + "ModelService/GetModel": "monitor",
    _V1 + "ModelService/ListModels": "monitor",
    _V1 + "ModelService/ListHookPoints": "monitor",
    _V1 + "DictionaryService/GetDictionary": "monitor",
    _V1 + "DictionaryService/ListDictionaries": "monitor",
    _V1 + "DetectionService/Detect": "monitor",
    _V1 + "DetectionService/StreamDetect": "monitor",
    # Work that computes new results or reads dictionaries out: analysts.
    _V1 + "DictionaryService/ExtractDictionary": "analyst",
    _V1 + "DictionaryService/ExportDictionary": "analyst",
    _V1 + "PerturbationService/Perturb": "analyst",
    _V1 + "PerturbationService/Generate": "analyst",
    _V1 + "AnalysisService/CompareRepresentations": "analyst",
    _V1 + "AnalysisService/LayerSimilarity": "analyst",
    _V1 + "AnalysisService/ConnectionCost": "analyst",
    _V1 + "AnalysisService/OptimizeNeuronLayout": "analyst",
    # Changing what the server holds: admins.
    _V1 + "ModelService/RegisterModel": "admin",
    _V1 + "ModelService/UnregisterModel": "admin",
    _V1 + "DictionaryService/ImportDictionary": "admin",
    _V1 + "DictionaryService/DeleteDictionary": "admin",
}


def required_role(method: str) -> str:
    """The least role that may call `method` ("/pkg.Service/Method" or without the slash)."""
    return REQUIRED_ROLE.get(method.lstrip("/"), "admin")


def permits(role: str, method: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[required_role(method)]


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored: never the key itself."""

    id: str
    name: str
    role: str
    sha256: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(key: str) -> str | None:
    """The id part of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


class KeyFile:
    """The key file (JSON, written atomically). Readers pick up changes without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: dict[str, KeyRecord] = {}
        self._checked = 0.0

    # ----- reading ----------------------------------------------------------------------------

    def records(self) -> list[KeyRecord]:
        self._refresh(force=True)
        return sorted(self._records.values(), key=lambda r: r.created_at)

    def _refresh(self, *, force: bool = False) -> None:
        """Reload when the file changed; checked at most once a second unless forced."""
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._records = None, {}
                return
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                data = json.loads(self.path.read_text())
                self._records = {r["id"]: KeyRecord(**r) for r in data.get("keys", [])}
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                # Fail closed: an unreadable key file admits no one until it is fixed.
                self._records = {}
                log.error("key file %s is unreadable (%s): every key is refused", self.path, exc)

    def verify(self, key: str) -> KeyRecord | None:
        """The active record for `key`, or None. Constant time in the secret."""
        self._refresh()
        key_id = _split(key)
        record = self._records.get(key_id or "")
        expected = record.sha256 if record else "0" * 64
        matches = hmac.compare_digest(_digest(key), expected)
        if record is None or not matches or not record.active:
            return None
        return record

    # ----- changing (the CLI) -----------------------------------------------------------------

    def create(self, role: str, name: str = "") -> tuple[str, KeyRecord]:
        """A new key for `role`; returns the key (shown once) and its record."""
        if role not in _RANK:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(key_id, name, role, _digest(key), time.time())
        with self._lock:
            records = self._load_for_update()
            records[key_id] = record
            self._write(records)
        return key, record

    def revoke(self, key_id: str) -> KeyRecord:
        with self._lock:
            records = self._load_for_update()
            if key_id not in records:
                raise KeyError(f"no key with id {key_id!r} (see `chunkscope keys list`)")
            old = records[key_id]
            record = (
                old if not old.active else KeyRecord(**{**asdict(old), "revoked_at": time.time()})
            )
            records[key_id] = record
            self._write(records)
        return record

    def _load_for_update(self) -> dict[str, KeyRecord]:
        if not self.path.exists():
            return {}
        return {r["id"]: KeyRecord(**r) for r in json.loads(self.path.read_text()).get("keys", [])}

    def _write(self, records: dict[str, KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": 1, "keys": [asdict(r) for r in records.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
