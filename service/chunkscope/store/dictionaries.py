"""Stored dictionaries: a manifest (manifest.json) and tensors (chunks.safetensors) under an id.

Two backends: LocalDictionaryStore (a directory each under the data dir, indexed in SQLite) and
store.postgres (rows of a PostgreSQL database shared by replicas). Both store a dictionary all or
nothing. Manifests are validated strictly (unknown keys, wrong types, missing tensors, shapes
that disagree) on every load and import, so a tampered or truncated archive is refused rather than
served.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from chunkscope.engine.methods import registry as methods
from chunkscope.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TENSORS = "chunks.safetensors"
ID_PATTERN = re.compile(r"^dict-[0-9a-f]{12}$")
# A manifest is a few MiB even with examples for thousands of entries; more is not ours.
MAX_MANIFEST_BYTES = 64 << 20

# Each method's tensors and their shape rules are its `layout` (engine/methods/, one module per
# method); _check_tensors applies them. Every dictionary stores `center`, the mean of all states
# it was fitted on: steering directions are entry minus center, since raw means are dominated by
# the component all tokens share.

_MANIFEST_KEYS = {
    "schema_version": int, "id": str, "model": dict, "hook_point": str, "hidden_size": int,
    "dtype": str, "method": str, "parameters": dict, "corpus": dict, "created_at": str,
    "chunkscope_version": str, "description": str, "stats": dict, "entries": list,
    "tensors_sha256": str,
}  # fmt: skip
# Keys a manifest may lack (dictionaries stored before they existed still load).
# PA's per-cell results: the concepts without an entry at this hook point, and per concept the
# hook point recommended among the dictionaries of the same extraction.
_OPTIONAL_MANIFEST_KEYS = {"infeasible_cells": list, "recommended": list}
_INFEASIBLE_KEYS = {
    "hook_point": str, "concept": str, "reason": str, "message": str, "count": int, "sweep": list,
}  # fmt: skip
_RECOMMENDED_KEYS = {
    "concept": str, "hook_point": str, "dictionary_id": str, "entry_id": int, "honest_tpr": float,
}  # fmt: skip
_RECOMMENDED_OPTIONAL = {"out_of_sample": dict, "cross_validated": dict}
_MODEL_KEYS = {"name": str, "content_hash": str, "architecture": str}
_CORPUS_KEYS = {
    "fingerprint": str,
    "n_inputs": int,
    "n_tokens": int,
    "context": str,
    "max_tokens": int,
}


@dataclass(frozen=True)
class DictionaryRecord:
    """The index row of a stored dictionary (what listing needs, without opening files)."""

    id: str
    model_name: str
    model_hash: str
    hook_point: str
    method: str
    created_at: datetime
    n_entries: int


def new_id() -> str:
    return "dict-" + secrets.token_hex(6)


def _bad(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="INVALID_DICTIONARY")


def _check_keys(
    obj: dict[str, Any], spec: Mapping[str, type], where: str,
    optional: Mapping[str, type] | None = None,
) -> None:  # fmt: skip
    optional = optional or {}
    missing, unknown = set(spec) - set(obj), set(obj) - set(spec) - set(optional)
    if missing or unknown:
        raise _bad(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    for key, kind in {**spec, **{k: v for k, v in optional.items() if k in obj}}.items():
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _bad(f"{where}.{key} must be {kind.__name__}, got {type(value).__name__}")


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check a manifest's structure; FailedPrecondition(INVALID_DICTIONARY) names the fault."""
    if not isinstance(manifest, dict):
        raise _bad("manifest must be a JSON object")
    _check_keys(manifest, _MANIFEST_KEYS, "manifest", _OPTIONAL_MANIFEST_KEYS)
    if manifest["schema_version"] < 1 or manifest["schema_version"] > SCHEMA_VERSION:
        raise _bad(
            f"manifest.schema_version {manifest['schema_version']} is not supported by this "
            f"chunkscope (1..{SCHEMA_VERSION})"
        )
    if not ID_PATTERN.match(manifest["id"]):
        raise _bad(f"manifest.id {manifest['id'][:40]!r} is not a dictionary id")
    if manifest["method"] not in methods.METHODS:
        known = tuple(methods.METHODS)
        raise _bad(f"manifest.method {manifest['method'][:40]!r} is not one of {known}")
    _check_keys(manifest["model"], _MODEL_KEYS, "manifest.model")
    _check_keys(manifest["corpus"], _CORPUS_KEYS, "manifest.corpus")
    if manifest["hidden_size"] <= 0:
        raise _bad("manifest.hidden_size must be positive")
    try:
        datetime.fromisoformat(manifest["created_at"])
    except ValueError:
        raise _bad(
            f"manifest.created_at {manifest['created_at'][:40]!r} is not an ISO 8601 time"
        ) from None
    for i, entry in enumerate(manifest["entries"]):
        if (
            not isinstance(entry, dict)
            or entry.get("id") != i
            or not isinstance(entry.get("label"), str)
        ):
            raise _bad(f"manifest.entries[{i}] must be an object with id {i} and a label")
    for key, spec, optional in (
        ("infeasible_cells", _INFEASIBLE_KEYS, None),
        ("recommended", _RECOMMENDED_KEYS, _RECOMMENDED_OPTIONAL),
    ):
        for i, item in enumerate(manifest.get(key, [])):
            if not isinstance(item, dict):
                raise _bad(f"manifest.{key}[{i}] must be an object")
            _check_keys(item, spec, f"manifest.{key}[{i}]", optional)
    if not all(_is_double(v) for v in manifest["stats"].values()):
        raise _bad("manifest.stats values must be numbers (within the range of a double)")
    return manifest


def _is_double(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)  # a JSON integer may have hundreds of digits
    except OverflowError:
        return False
    return True


def _check_tensors(manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """The tensors against the method's layout (names, dtype kinds, ranks, rows per entry, widths,
    offsets), then the method's own checks."""
    method, d, n = manifest["method"], manifest["hidden_size"], len(manifest["entries"])
    kind = methods.get(method)
    layout = kind.layout
    spec = layout.tensors
    if not set(spec) <= set(tensors) <= set(spec) | set(layout.optional):
        needs = f"needs {sorted(spec)}"
        if layout.optional:
            needs += f" and may hold {sorted(layout.optional)}"
        raise _bad(f"{TENSORS} holds {sorted(tensors)}, a {method} dictionary {needs}")
    present = {**spec, **{k: v for k, v in layout.optional.items() if k in tensors}}
    for name, (dtype_kind, ndim) in present.items():
        t = tensors[name]
        if t.dtype.kind != dtype_kind or t.ndim != ndim:
            raise _bad(
                f"tensor {name}: dtype {t.dtype}, ndim {t.ndim}; "
                f"expected kind {dtype_kind!r}, ndim {ndim}"
            )
    for name in layout.entry_rows:
        if tensors[name].shape[0] != n:
            raise _bad(f"tensor {name} has {tensors[name].shape[0]} rows for {n} entries")
    if tensors["center"].shape != (d,):
        raise _bad(f"tensor center has shape {list(tensors['center'].shape)}, expected [{d}]")
    for name in layout.width:
        if tensors[name].shape[1] != d:
            raise _bad(f"tensor {name} has width {tensors[name].shape[1]}, hidden_size is {d}")
    for offsets, flat in layout.offsets:
        o = tensors[offsets]
        expected_rows = n + 1
        if o.shape[0] != expected_rows or o[0] != 0 or np.any(np.diff(o) < 0):
            raise _bad(f"tensor {offsets} must be {expected_rows} non-decreasing offsets from 0")
        for name in flat:
            if tensors[name].shape[0] != o[-1]:
                raise _bad(
                    f"tensor {name} has {tensors[name].shape[0]} values, offsets say {o[-1]}"
                )
    kind.check_tensors(tensors, d)


def require_binding(
    manifest: dict[str, Any], *, model: str, content_hash: str, hook_point: str, dtype: str
) -> None:
    """Refuse a dictionary used with another model, weights, hook point or dtype (names which)."""
    expected = {
        "model": (manifest["model"]["name"], model),
        "model content hash": (manifest["model"]["content_hash"], content_hash),
        "hook point": (manifest["hook_point"], hook_point),
        "dtype": (manifest["dtype"], dtype),
    }
    for what, (stored, given) in expected.items():
        if stored != given:
            raise FailedPrecondition(
                f"dictionary {manifest['id']} was extracted for {what} {stored!r}, "
                f"not {given!r}; extract a dictionary for this {what}",
                reason="DICTIONARY_MISMATCH",
                metadata={"dictionary": manifest["id"], "field": what.replace(" ", "_")},
            )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def record_of(manifest: dict[str, Any]) -> DictionaryRecord:
    """The index row of a validated manifest."""
    return DictionaryRecord(
        manifest["id"], manifest["model"]["name"], manifest["model"]["content_hash"],
        manifest["hook_point"], manifest["method"],
        datetime.fromisoformat(manifest["created_at"]), len(manifest["entries"]),
    )  # fmt: skip


def check_id(dictionary_id: str) -> None:
    """INVALID_ARGUMENT naming the field `id` unless `dictionary_id` is a dictionary id."""
    if not dictionary_id:
        raise InvalidArgument.field("id", "required: a dictionary id such as dict-3f9a1c2b7d4e")
    if not ID_PATTERN.match(dictionary_id):
        raise InvalidArgument.field(
            "id", f"{dictionary_id[:40]!r} is not a dictionary id (dict- and 12 hex digits)"
        )


def not_found(dictionary_id: str) -> NotFound:
    return NotFound(
        f"no dictionary {dictionary_id}; ListDictionaries shows the stored ones",
        reason="DICTIONARY_NOT_FOUND",
        metadata={"dictionary": dictionary_id},
    )


def already_exists(dictionary_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"dictionary {dictionary_id} is already stored; delete it first to re-import",
        reason="DICTIONARY_EXISTS",
        metadata={"dictionary": dictionary_id},
    )


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """A manifest as it is stored and exported."""
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


class DictionaryStore(ABC):
    """Stored dictionaries: validation, archives and the API every backend serves.

    A backend stores a manifest's bytes and its tensors' bytes under the dictionary's id, all or
    nothing, and never changes them (an id names one content: its tensors' sha256 is in its
    manifest). Everything read back is validated again, so a tampered store is refused, not served.
    """

    # True when other processes write to the same store (replicas on one database): cached
    # copies of dictionaries must then be checked against `existing` before use.
    shared: bool = False

    # ----- what a backend provides ----------------------------------------------------------

    @abstractmethod
    def _put(self, manifest: dict[str, Any], blob: bytes) -> None:
        """Store both parts at once; AlreadyExists if the id is taken."""

    @abstractmethod
    def _get(self, dictionary_id: str) -> tuple[bytes, bytes]:
        """The manifest's and the tensors' bytes; NotFound if there is no such dictionary."""

    @abstractmethod
    def _get_manifest(self, dictionary_id: str) -> bytes:
        """The manifest's bytes alone; NotFound if there is no such dictionary."""

    @abstractmethod
    def _remove(self, dictionary_id: str) -> None:
        """Remove both parts at once; NotFound if there is no such dictionary."""

    @abstractmethod
    def list_page(self, model: str, offset: int, limit: int) -> tuple[list[DictionaryRecord], int]:
        """Index rows, newest first, optionally of one model; and how many there are in all."""

    @abstractmethod
    def existing(self, dictionary_ids: Collection[str]) -> set[str]:
        """Those of `dictionary_ids` that are stored now."""

    @abstractmethod
    def spool(self) -> ArchiveSpool:
        """A new file for an archive being received (see ArchiveSpool)."""

    @abstractmethod
    def recover(self) -> None:
        """Clean up after a crash of this process (never another process's work in progress)."""

    @abstractmethod
    def close(self) -> None: ...

    # ----- the API ---------------------------------------------------------------------------

    def _put_all(self, items: Sequence[tuple[dict[str, Any], bytes]]) -> None:
        """Store several dictionaries, all or none. This default removes the ones already stored
        when a later one fails; a backend with transactions does better (a crash midway too)."""
        stored: list[str] = []
        try:
            for manifest, blob in items:
                self._put(manifest, blob)
                stored.append(manifest["id"])
        except BaseException:
            for dictionary_id in stored:
                with contextlib.suppress(NotFound):
                    self._remove(dictionary_id)
            raise

    def save(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> DictionaryRecord:
        """Validate, then store all or nothing. The manifest's tensors_sha256 is filled in here."""
        return self.save_all([(manifest, tensors)])[0]

    def save_all(
        self, dictionaries: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]]
    ) -> list[DictionaryRecord]:
        """`save` for the dictionaries of one extraction job: all of them or none."""
        items = []
        for manifest, tensors in dictionaries:
            blob = save_tensors({k: np.ascontiguousarray(v) for k, v in tensors.items()})
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            manifest = {**manifest, "tensors_sha256": digest}
            validate_manifest(manifest)
            _check_tensors(manifest, load_tensors(blob))
            items.append((manifest, blob))
        self._put_all(items)
        return [record_of(manifest) for manifest, _ in items]

    def delete(self, dictionary_id: str) -> dict[str, Any]:
        """Remove a dictionary; returns its manifest."""
        manifest = self.read_manifest(dictionary_id)
        self._remove(dictionary_id)
        return manifest

    def load(self, dictionary_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        check_id(dictionary_id)
        raw, blob = self._get(dictionary_id)
        return self._validated(_parse(raw, dictionary_id), blob)

    def read_manifest(self, dictionary_id: str) -> dict[str, Any]:
        """The validated manifest alone (listing does not need the tensors)."""
        check_id(dictionary_id)
        return validate_manifest(_parse(self._get_manifest(dictionary_id), dictionary_id))

    def _validated(
        self, manifest: Any, blob: bytes
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        validate_manifest(manifest)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        if digest != manifest["tensors_sha256"]:
            raise _bad(f"{TENSORS} does not match the manifest's tensors_sha256")
        try:
            tensors = load_tensors(blob)
        except (SafetensorError, ValueError) as exc:
            raise _bad(f"{TENSORS} is not a valid safetensors file: {exc}") from None
        _check_tensors(manifest, tensors)
        return manifest, tensors

    # ----- archives -----------------------------------------------------------------------

    def export_archive(self, dictionary_id: str) -> bytes:
        """A tar of manifest.json and chunks.safetensors, as stored."""
        check_id(dictionary_id)
        raw, blob = self._get(dictionary_id)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in ((MANIFEST, raw), (TENSORS, blob)):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def import_archive(
        self,
        archive: bytes | Path,
        check: Callable[[dict[str, Any], dict[str, np.ndarray]], None] | None = None,
    ) -> dict[str, Any]:
        """Validate an exported archive (bytes or a file) and store it under its own id.

        `check` sees the validated manifest and tensors before anything is written; it raises to
        refuse the archive (the API uses it to make sure every stored dictionary can be served).
        """
        manifest, blob = self._read_archive(archive)
        manifest, tensors = self._validated(manifest, blob)
        if check is not None:
            check(manifest, tensors)
        self._put(manifest, blob)
        return manifest

    def _read_archive(self, archive: bytes | Path) -> tuple[Any, bytes]:
        members: dict[str, bytes] = {}
        source: dict[str, Any] = (
            {"name": archive} if isinstance(archive, Path) else {"fileobj": io.BytesIO(archive)}
        )
        try:
            with tarfile.open(mode="r:", **source) as tar:
                for info in tar:
                    if info.name not in (MANIFEST, TENSORS) or not info.isfile():
                        raise _bad(f"archive member {info.name[:80]!r} is not allowed; an archive "
                                   f"holds exactly {MANIFEST} and {TENSORS}")  # fmt: skip
                    if info.name in members:
                        raise _bad(f"archive holds {info.name} twice")
                    if info.name == MANIFEST and info.size > MAX_MANIFEST_BYTES:
                        raise _bad(f"{MANIFEST} is {info.size} bytes; at most {MAX_MANIFEST_BYTES}")
                    extracted: IO[bytes] | None = tar.extractfile(info)
                    assert extracted is not None
                    members[info.name] = extracted.read()
        except tarfile.TarError as exc:
            raise _bad(f"not a dictionary archive (tar): {exc}") from None
        if set(members) != {MANIFEST, TENSORS}:
            raise _bad(f"archive must hold {MANIFEST} and {TENSORS}; it holds {sorted(members)}")
        try:
            manifest = json.loads(members[MANIFEST])
        except RecursionError:
            raise _bad(f"{MANIFEST} nests too deeply to be a manifest") from None
        except ValueError as exc:  # not JSON, not UTF-8, or an integer of thousands of digits
            raise _bad(f"{MANIFEST} is not a valid JSON manifest: {str(exc)[:200]}") from None
        return manifest, members[TENSORS]


def _parse(raw: bytes, dictionary_id: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"dictionary {dictionary_id} is unreadable: {str(exc)[:200]}") from None


class LocalDictionaryStore(DictionaryStore):
    """A directory per dictionary under <data-dir>/dictionaries, indexed in the SQLite registry.

    Writes are atomic: a temporary directory is written and fsynced, renamed into place, then
    indexed. A crash at any moment leaves no dictionary or a complete one: on start-up `recover()`
    deletes temporary and half-deleted directories and indexes complete directories the index
    lacks. The data directory belongs to one server (the server locks it).
    """

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "dictionaries"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rename_lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "registry.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dictionaries (id TEXT PRIMARY KEY,"
            " model_name TEXT NOT NULL,"
            " model_hash TEXT NOT NULL, hook_point TEXT NOT NULL, method TEXT NOT NULL,"
            " created_at TEXT NOT NULL, n_entries INTEGER NOT NULL)"
        )
        self.recover()

    def _put(self, manifest: dict[str, Any], blob: bytes) -> None:
        final = self.root / manifest["id"]
        self._refuse_existing(manifest["id"])
        tmp = self.root / f".tmp-{manifest['id']}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            _write_synced(tmp / TENSORS, blob)
            _write_synced(tmp / MANIFEST, manifest_bytes(manifest))
            _fsync_dir(tmp)
            # Two imports of one archive may race to here: the check and the rename are one step.
            with self._rename_lock:
                self._refuse_existing(manifest["id"])
                os.rename(tmp, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._index(manifest)

    def _refuse_existing(self, dictionary_id: str) -> None:
        if (self.root / dictionary_id).exists():
            raise already_exists(dictionary_id)

    def _index(self, manifest: dict[str, Any]) -> None:
        record = record_of(manifest)
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO dictionaries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.model_name, record.model_hash, record.hook_point,
                 record.method, record.created_at.isoformat(), record.n_entries),
            )  # fmt: skip

    def _remove(self, dictionary_id: str) -> None:
        trash = self.root / f".trash-{dictionary_id}-{secrets.token_hex(4)}"
        try:
            os.rename(self.root / dictionary_id, trash)  # atomic: gone for readers from here on
        except FileNotFoundError:
            raise not_found(dictionary_id) from None
        with self._lock, self._db:
            self._db.execute("DELETE FROM dictionaries WHERE id = ?", (dictionary_id,))
        shutil.rmtree(trash, ignore_errors=True)

    def recover(self) -> None:
        """Make the index and the directories agree after a crash."""
        for path in self.root.iterdir():
            if path.name.startswith((".tmp-", ".trash-")):  # the uploads (files) too
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        with self._lock:
            indexed = {row[0] for row in self._db.execute("SELECT id FROM dictionaries")}
        on_disk = {p.name for p in self.root.iterdir() if ID_PATTERN.match(p.name)}
        for missing in indexed - on_disk:
            with self._lock, self._db:
                self._db.execute("DELETE FROM dictionaries WHERE id = ?", (missing,))
        for unindexed in on_disk - indexed:
            try:
                manifest, _ = self.load(unindexed)
            except FailedPrecondition:
                shutil.rmtree(self.root / unindexed, ignore_errors=True)
                continue
            self._index(manifest)

    def _dir(self, dictionary_id: str) -> Path:
        path = self.root / dictionary_id
        if not path.is_dir():
            raise not_found(dictionary_id)
        return path

    def _get(self, dictionary_id: str) -> tuple[bytes, bytes]:
        path = self._dir(dictionary_id)
        try:
            return (path / MANIFEST).read_bytes(), (path / TENSORS).read_bytes()
        except OSError as exc:
            raise _bad(f"dictionary {dictionary_id} is unreadable: {exc}") from None

    def _get_manifest(self, dictionary_id: str) -> bytes:
        path = self._dir(dictionary_id)
        try:
            return (path / MANIFEST).read_bytes()
        except OSError as exc:
            raise _bad(f"dictionary {dictionary_id} is unreadable: {exc}") from None

    def existing(self, dictionary_ids: Collection[str]) -> set[str]:
        return {i for i in dictionary_ids if ID_PATTERN.match(i) and (self.root / i).is_dir()}

    def list_page(self, model: str, offset: int, limit: int) -> tuple[list[DictionaryRecord], int]:
        where, args = ("WHERE model_name = ?", (model,)) if model else ("", ())
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM dictionaries {where}", args).fetchone()[
                0
            ]
        records = self._query(f"{where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                              (*args, limit, offset))  # fmt: skip
        return records, int(total)

    def _query(self, clause: str, args: tuple[Any, ...]) -> list[DictionaryRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, model_name, model_hash, hook_point, method, created_at, n_entries "
                f"FROM dictionaries {clause}",
                args,
            ).fetchall()
        return [
            DictionaryRecord(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), r[6])
            for r in rows
        ]

    def spool(self) -> ArchiveSpool:
        return ArchiveSpool(self.root)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ArchiveSpool:
    """An archive arriving in pieces, written to a file under the data dir and hashed as it comes.

    Holding uploads on disk instead of in memory keeps the server's memory flat however large or
    however many the uploads are. The file is removed by `discard` (and by `recover` after a crash).
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / f".tmp-upload-{secrets.token_hex(8)}.tar"
        self.size = 0
        self._digest = hashlib.sha256()
        self._file: IO[bytes] = self.path.open("xb")

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._file.write(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return "sha256:" + self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
