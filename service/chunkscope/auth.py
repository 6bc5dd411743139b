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
import stat
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("monitor", "analyst", "admin")  # each includes the ones before it
_RANK = {role: i for i, role in enumerate(ROLES)}
PREFIX = "cks_"
REFRESH_SECONDS = 1.0  # how stale the server's view of the key file may be (revocation delay)

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
    _V1 + "GuardService/GetPolicy": "monitor",
    _V1 + "GuardService/ListPolicies": "monitor",
    _V1 + "GuardService/Check": "monitor",
    # Envoy's external processing filter checks bodies against a policy: a gateway's key.
    "envoy.service.ext_proc.v3.ExternalProcessor/Process": "monitor",
    # Work that computes new results or reads dictionaries out: analysts.
    _V1 + "DictionaryService/ExtractDictionary": "analyst",
    _V1 + "DictionaryService/ExportDictionary": "analyst",
    _V1 + "PerturbationService/Perturb": "analyst",
    _V1 + "PerturbationService/Generate": "analyst",
    # Presets are named by Generate and Perturb: whoever may call them may read presets.
    _V1 + "GuardService/GetPreset": "analyst",
    _V1 + "GuardService/ListPresets": "analyst",
    _V1 + "AnalysisService/CompareRepresentations": "analyst",
    _V1 + "AnalysisService/LayerSimilarity": "analyst",
    _V1 + "AnalysisService/ConnectionCost": "analyst",
    _V1 + "AnalysisService/OptimizeNeuronLayout": "analyst",
    # Changing what the server holds: admins.
    _V1 + "ModelService/RegisterModel": "admin",
    _V1 + "ModelService/UnregisterModel": "admin",
    _V1 + "DictionaryService/ImportDictionary": "admin",
    _V1 + "DictionaryService/DeleteDictionary": "admin",
    _V1 + "GuardService/PutPolicy": "admin",
    _V1 + "GuardService/DeletePolicy": "admin",
    _V1 + "GuardService/PutPreset": "admin",
    _V1 + "GuardService/DeletePreset": "admin",
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


class KeyFileError(ValueError):
    """The key file cannot be trusted or read; the message says why and how to fix it."""


MAX_KEY_FILE_BYTES = 4 << 20  # a million keys would not reach this; more is not a key file
_HEX = frozenset("0123456789abcdef")
_FIELDS = {f.name for f in fields(KeyRecord)}


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _record(index: int, raw: object) -> KeyRecord:
    """One record of the file, checked field by field (nothing in the file is trusted)."""
    where = f"keys[{index}]"
    if not isinstance(raw, dict) or set(raw) - _FIELDS or not {"id", "role", "sha256"} <= set(raw):
        raise KeyFileError(
            f"{where} must be an object with the fields {', '.join(sorted(_FIELDS))}"
        )
    number = (int, float)
    ok = (
        _is_hex(raw["id"], 12)
        and _is_hex(raw["sha256"], 64)
        and isinstance(raw["role"], str)
        and raw["role"] in _RANK
        and isinstance(raw.get("name", ""), str)
        and isinstance(raw.get("created_at", 0.0), number)
        and isinstance(raw.get("revoked_at"), (*number, type(None)))
    )
    if not ok:
        raise KeyFileError(f"{where} has a malformed field (id, sha256, role or a time)")
    return KeyRecord(
        raw["id"], raw.get("name", ""), raw["role"], raw["sha256"],
        float(raw.get("created_at", 0.0)),
        None if raw.get("revoked_at") is None else float(raw["revoked_at"]),
    )  # fmt: skip


def read_key_file(path: Path) -> dict[str, KeyRecord] | None:
    """The records of the key file, None when there is none; KeyFileError when it is not trusted.

    Only a regular file that neither group nor others may write is read: a link could point the
    server at someone else's keys, a FIFO or device would block the reader.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot stat the key file {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise KeyFileError(
            f"the key file {path} is a symbolic link; keys are read only from a regular file "
            "(point --api-keys-file at the file itself)"
        )
    try:
        # O_NOFOLLOW and O_NONBLOCK: a link or FIFO swapped in after the lstat neither redirects
        # nor blocks the open; fstat below then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(f"cannot open the key file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"the key file {path} is not a regular file")
        if st.st_mode & 0o022:
            raise KeyFileError(
                f"the key file {path} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): anyone could add a key; "
                f"run `chmod 600 {path}`"
            )
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"the key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        chunks, size = [], 0
        while size <= MAX_KEY_FILE_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"the key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:  # RecursionError: '[' nested 100,000 deep
        raise KeyFileError(
            f"the key file {path} is not valid JSON ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
        raise KeyFileError(f"the key file {path} must be an object with a list 'keys'")
    try:
        records = [_record(i, raw) for i, raw in enumerate(data.get("keys", []))]
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. a time of 10**400
        raise KeyFileError(f"the key file {path} has a malformed record ({exc})") from None
    return {r.id: r for r in records}


class KeyFile:
    """The key file (JSON, written atomically, mode 0600); readers see changes without a restart.

    `refresh` does the file I/O (the server runs it off the event loop, see `stale`); `match`
    only looks at what was read. Anything wrong with the file admits no one (fail closed).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._records: dict[str, KeyRecord] = {}
        self._checked = -REFRESH_SECONDS

    # ----- reading ----------------------------------------------------------------------------

    def records(self) -> list[KeyRecord]:
        self.refresh(force=True)
        return sorted(self._records.values(), key=lambda r: r.created_at)

    def stale(self) -> bool:
        """Whether `refresh` would look at the file again (no I/O: a clock read)."""
        return time.monotonic() - self._checked >= REFRESH_SECONDS

    def refresh(self, *, force: bool = False) -> None:
        """Reload when the file changed; looked at most once a second unless forced. Blocking."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < REFRESH_SECONDS:
                return
            self._checked = now
            try:
                st = os.lstat(self.path)
                # ctime moves on every write, chmod and rename, so a changed mode is seen too.
                stamp: tuple[int, ...] | None = (
                    st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size, st.st_mode
                )  # fmt: skip
            except FileNotFoundError:
                stamp = None
            except OSError:
                stamp = (-1,)  # read_key_file says what is wrong
            if stamp == self._stamp and stamp != (-1,):
                return
            try:
                records = read_key_file(self.path) or {}
            except KeyFileError as exc:
                records = {}
                log.error("%s: every key is refused until it is fixed", exc)
            except Exception:  # a case read_key_file missed: still closed, never INTERNAL
                records = {}
                log.exception("key file %s unreadable: every key is refused", self.path)
            self._stamp, self._records = stamp, records

    def match(self, key: str) -> KeyRecord | None:
        """The active record for `key` as last read, or None; constant time, no I/O."""
        key_id = _split(key)
        record = self._records.get(key_id or "")
        expected = record.sha256 if record else "0" * 64
        matches = hmac.compare_digest(_digest(key), expected)
        if record is None or not matches or not record.active:
            return None
        return record

    def verify(self, key: str) -> KeyRecord | None:
        """`match` after a `refresh` (blocking: for the CLI and scripts, not the event loop)."""
        self.refresh()
        return self.match(key)

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
        """The records to change: an untrusted or unreadable file is refused, never overwritten."""
        return read_key_file(self.path) or {}

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
