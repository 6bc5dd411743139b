"""Dictionary storage: atomic writes, crash recovery, strict validation, binding checks."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkscope.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from chunkscope.store.dictionaries import LocalDictionaryStore, new_id, require_binding


def _cosine(n: int = 3, d: int = 4) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    manifest = {
        "schema_version": 1, "id": new_id(),
        "model": {"name": "m", "content_hash": "sha256:" + "a" * 64, "architecture": "llama"},
        "hook_point": "blocks.0.resid_post", "hidden_size": d, "dtype": "float32",
        "method": "cosine_dictionary", "parameters": {"k": n},
        "corpus": {"fingerprint": "sha256:" + "b" * 64, "n_inputs": 2, "n_tokens": 10,
                   "context": "whole_text", "max_tokens": 512},
        "created_at": datetime.now(UTC).isoformat(), "chunkscope_version": "test",
        "description": "", "stats": {"dead_atoms": 0.0},
        "entries": [{"id": i, "label": f"chunk-{i}"} for i in range(n)], "tensors_sha256": "",
    }  # fmt: skip
    atoms = np.eye(n, d, dtype=np.float32)
    center = np.full(d, 0.5, np.float32)
    return manifest, {"atoms": atoms, "counts": np.arange(n, dtype=np.int64), "center": center}


def test_save_load_round_trip_and_listing(tmp_path: Path) -> None:
    store = LocalDictionaryStore(tmp_path)
    manifest, tensors = _cosine()
    store.save(manifest, tensors)
    loaded, got = store.load(manifest["id"])
    assert loaded["entries"] == manifest["entries"]
    assert loaded["tensors_sha256"].startswith("sha256:")
    np.testing.assert_array_equal(got["atoms"], tensors["atoms"])
    records, total = store.list_page("m", 0, 10)
    assert total == 1 and records[0].id == manifest["id"] and records[0].n_entries == 3
    assert store.list_page("other", 0, 10) == ([], 0)
    with pytest.raises(AlreadyExists):
        store.save(manifest, tensors)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m, t: t.update(counts=np.arange(2, dtype=np.int64)), "rows"),
        (lambda m, t: t.update(atoms=np.zeros((3, 5), np.float32)), "width"),
        (lambda m, t: t.pop("counts"), "needs"),
        (lambda m, t: m.update(method="magic"), "method"),
        (lambda m, t: m.update(extra=1), "unknown keys"),
        (lambda m, t: m["entries"].reverse(), "entries[0]"),
        (lambda m, t: m.update(hidden_size="4"), "hidden_size"),
    ],
)
def test_inconsistent_dictionaries_are_refused_before_writing(
    tmp_path: Path, change: Any, words: str
) -> None:
    store = LocalDictionaryStore(tmp_path)
    manifest, tensors = _cosine()
    change(manifest, tensors)
    with pytest.raises(FailedPrecondition) as err:
        store.save(manifest, tensors)
    assert words in err.value.message
    assert err.value.reason == "INVALID_DICTIONARY"
    assert list((tmp_path / "dictionaries").iterdir()) == []


def test_recovery_after_crashes_at_each_step(tmp_path: Path) -> None:
    store = LocalDictionaryStore(tmp_path)
    complete, tensors = _cosine()
    store.save(complete, tensors)
    root = tmp_path / "dictionaries"
    # Crash while writing: a temporary directory is left behind.
    (root / f".tmp-{new_id()}-abcd").mkdir()
    (root / f".tmp-{new_id()}-ef01").mkdir()
    # Crash after the rename, before indexing: a complete directory without its index row.
    unindexed, t2 = _cosine()
    store.save(unindexed, t2)
    with store._lock, store._db:
        store._db.execute("DELETE FROM dictionaries WHERE id = ?", (unindexed["id"],))
    # Crash mid-delete: a renamed-away directory, and an index row whose directory is gone.
    (root / f".trash-{new_id()}-beef").mkdir()
    ghost, t3 = _cosine()
    store.save(ghost, t3)
    os.rename(root / ghost["id"], root / f".trash-{ghost['id']}-0000")
    # A directory with a corrupt manifest and no index row.
    broken = root / new_id()
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    store.close()

    reopened = LocalDictionaryStore(tmp_path)
    ids = {r.id for r in reopened.list_page("", 0, 100)[0]}
    assert ids == {complete["id"], unindexed["id"]}
    assert sorted(p.name for p in root.iterdir()) == sorted(ids)
    with pytest.raises(NotFound):
        reopened.load(ghost["id"])


def test_bit_rot_on_disk_is_detected_on_load(tmp_path: Path) -> None:
    store = LocalDictionaryStore(tmp_path)
    manifest, tensors = _cosine()
    store.save(manifest, tensors)
    path = tmp_path / "dictionaries" / manifest["id"] / "chunks.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-2] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(FailedPrecondition, match="tensors_sha256"):
        store.load(manifest["id"])


def test_ids_are_validated(tmp_path: Path) -> None:
    store = LocalDictionaryStore(tmp_path)
    for bad in ("", "../etc", "dict-XYZ", "dict-" + "0" * 11):
        with pytest.raises(InvalidArgument):
            store.load(bad)
    with pytest.raises(NotFound):
        store.load("dict-" + "0" * 12)


def test_binding_names_the_mismatch() -> None:
    manifest, _ = _cosine()
    ok = {"model": "m", "content_hash": manifest["model"]["content_hash"],
          "hook_point": "blocks.0.resid_post", "dtype": "float32"}  # fmt: skip
    require_binding(manifest, **ok)
    for key, value, words in (
        ("model", "other", "model 'm'"),
        ("content_hash", "sha256:" + "c" * 64, "content hash"),
        ("hook_point", "blocks.1.resid_post", "hook point"),
        ("dtype", "bfloat16", "dtype"),
    ):
        with pytest.raises(FailedPrecondition) as err:
            require_binding(manifest, **{**ok, key: value})
        assert words in err.value.message and err.value.reason == "DICTIONARY_MISMATCH"


def test_manifest_on_disk_is_readable_json(tmp_path: Path) -> None:
    store = LocalDictionaryStore(tmp_path)
    manifest, tensors = _cosine()
    store.save(manifest, tensors)
    on_disk = json.loads((tmp_path / "dictionaries" / manifest["id"] / "manifest.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["method"] == "cosine_dictionary"
