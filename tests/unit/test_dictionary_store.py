"""Dictionary storage: atomic writes, crash recovery, strict validation, binding checks, on the
local store and on PostgreSQL (a real server); registrations' hash pinning on both."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkscope.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from chunkscope.store.dictionaries import (
    DictionaryStore,
    LocalDictionaryStore,
    new_id,
    require_binding,
)
from chunkscope.store.postgres import open_postgres
from chunkscope.store.registry import ModelRecord, RegistryStore, now


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


# ----- the same contract on PostgreSQL, and what only the shared store does ------------------


@pytest.fixture(params=["local", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DictionaryStore]:
    if request.param == "local":
        store: DictionaryStore = LocalDictionaryStore(tmp_path)
    else:
        url = request.getfixturevalue("postgres").create_database(f"d{new_id()[5:]}")
        _, store = open_postgres(url, tmp_path / "spool", 10)
    yield store
    store.close()


def test_both_stores_keep_the_same_contract(any_store: DictionaryStore) -> None:
    manifest, tensors = _cosine()
    record = any_store.save(manifest, tensors)
    loaded, got = any_store.load(manifest["id"])
    assert loaded["entries"] == manifest["entries"] and record.n_entries == 3
    np.testing.assert_array_equal(got["atoms"], tensors["atoms"])
    assert any_store.read_manifest(manifest["id"]) == loaded
    second, t2 = _cosine()
    any_store.save(second, t2)
    records, total = any_store.list_page("m", 0, 1)
    assert total == 2 and len(records) == 1
    assert {r.id for r in any_store.list_page("m", 0, 10)[0]} == {manifest["id"], second["id"]}
    assert any_store.list_page("other", 0, 10) == ([], 0)
    assert any_store.existing([manifest["id"], "dict-" + "0" * 12]) == {manifest["id"]}
    with pytest.raises(AlreadyExists):
        any_store.save(manifest, tensors)
    archive = any_store.export_archive(manifest["id"])
    assert any_store.delete(manifest["id"])["id"] == manifest["id"]
    with pytest.raises(NotFound):
        any_store.load(manifest["id"])
    with pytest.raises(NotFound):
        any_store.delete(manifest["id"])
    assert any_store.import_archive(archive)["id"] == manifest["id"]
    assert any_store.export_archive(manifest["id"]) == archive
    for bad in ("", "../etc", "dict-XYZ"):
        with pytest.raises(InvalidArgument):
            any_store.load(bad)


def test_a_job_is_stored_whole_or_not_at_all(any_store: DictionaryStore) -> None:
    taken, t1 = _cosine()
    any_store.save(taken, t1)
    fresh, t2 = _cosine()
    with pytest.raises(AlreadyExists):
        any_store.save_all([(fresh, t2), (taken, t1)])  # the second id is taken: neither stored
    assert any_store.existing([fresh["id"], taken["id"]]) == {taken["id"]}
    with pytest.raises(FailedPrecondition):  # refused while validating: nothing written
        any_store.save_all([(fresh, t2), ({**taken, "id": new_id(), "method": "magic"}, t1)])
    assert any_store.list_page("", 0, 10)[1] == 1


def test_tampered_rows_are_refused_on_load(postgres: Any, tmp_path: Path) -> None:
    import psycopg

    url = postgres.create_database(f"d{new_id()[5:]}")
    _, store = open_postgres(url, tmp_path / "spool", 10)
    manifest, tensors = _cosine()
    store.save(manifest, tensors)
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE dictionaries SET tensors = overlay(tensors placing '\\x00'::bytea from 20)"
            " WHERE id = %s",
            (manifest["id"],),
        )
    with pytest.raises(FailedPrecondition, match="tensors_sha256"):
        store.load(manifest["id"])
    store.close()


def test_migrations_run_once_and_refuse_a_newer_schema(postgres: Any, tmp_path: Path) -> None:
    import psycopg

    from chunkscope.store.postgres import MIGRATIONS, SCHEMA_VERSION

    url = postgres.create_database(f"d{new_id()[5:]}")
    for _ in range(2):  # a second start finds the schema in place
        _, store = open_postgres(url, tmp_path / "spool", 10)
        store.close()
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM chunkscope_schema ORDER BY 1").fetchall()
        assert versions == [(v,) for v, _ in MIGRATIONS]  # each once, in order
        conn.execute("INSERT INTO chunkscope_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(OSError, match="newer than this chunkscope"):
        open_postgres(url, tmp_path / "spool", 10)


def test_an_unreachable_store_is_unavailable_not_internal(postgres: Any, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot use the store") as err:
        open_postgres(postgres.dsn("no-such-db"), tmp_path / "spool", 2)
    assert "no-such-db" in str(err.value)
    url = postgres.create_database(f"d{new_id()[5:]}")
    _, store = open_postgres(url, tmp_path / "spool", 2)
    import psycopg

    with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (url.rsplit("/", 1)[1],),
        )
        admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS false')
    with pytest.raises(Unavailable) as gone:
        store.load(new_id())
    assert gone.value.reason == "STORE_UNAVAILABLE" and "retry" in gone.value.message
    store.close()


def test_pin_fills_in_hashes_of_the_same_registration_only(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database(f"d{new_id()[5:]}")
    pg_models, pg_dicts = open_postgres(url, tmp_path / "spool", 10)
    for models in (RegistryStore(tmp_path / "local"), pg_models):
        first = ModelRecord("m", "/models/m", "hf_safetensors", "", "", now(), "float32")
        models.put(first)
        pinned = replace(first, content_hash="sha256:1", files_hash="sha256:1")
        assert models.pin(pinned) == pinned
        # Another replica pins other files for the same registration: the first pin stands.
        assert models.pin(replace(first, content_hash="sha256:2", files_hash="sha256:2")) == pinned
        # A registration made again under the name is not pinned with the old one's hashes.
        again = replace(first, registered_at=now())
        models.put(again)
        assert models.pin(replace(pinned, registered_at=first.registered_at)) == again
        models.delete("m")
        assert models.pin(pinned) is None and models.all() == []
        models.close()
    pg_dicts.close()


def _pa(*, cells: bool, n: int = 2, d: int = 4) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A PA dictionary; with `cells`, the per-cell results (infeasible cells, recommendation)."""
    manifest, _ = _cosine(n, d)
    scores = {"tpr": 0.5, "fpr": 0.0, "accuracy": 0.9, "positives": 10, "negatives": 90}
    manifest.update(method="population_averaging", parameters={"n_samples": 5})
    manifest["entries"] = [
        {"id": i, "label": f"c{i}", "train": scores, "cross_validated": scores, "cv_folds": 5}
        for i in range(n)
    ]
    if cells:
        point = {"tau": 1.0, "n_neurons": 3, "radius": 0.1, "tpr": 0.9, "fpr": 0.01,
                 "accuracy": 0.98}  # fmt: skip
        manifest["infeasible_cells"] = [{
            "hook_point": manifest["hook_point"], "concept": "x", "reason": "NO_VALID_TOLERANCE",
            "message": "no tau satisfied FPR <= max_fpr=0.001", "count": 12, "sweep": [point],
        }]  # fmt: skip
        manifest["recommended"] = [{
            "concept": "c1", "hook_point": manifest["hook_point"], "dictionary_id": manifest["id"],
            "entry_id": 1, "honest_tpr": 0.5, "cross_validated": scores,
        }]  # fmt: skip
    tensors = {
        "neurons": np.arange(2 * n, dtype=np.int64) % d,
        "neuron_offsets": np.arange(0, 2 * n + 1, 2, dtype=np.int64),
        "prototype": np.ones(2 * n, np.float32), "mean": np.zeros((n, d), np.float32),
        "radius": np.ones(n, np.float32), "tau": np.ones(n, np.float32),
        "center": np.zeros(d, np.float32),
    }  # fmt: skip
    return manifest, tensors


@pytest.mark.parametrize("cells", [True, False], ids=["per-cell results", "stored before them"])
def test_pa_per_cell_results_round_trip_and_older_manifests_load(
    any_store: DictionaryStore, cells: bool
) -> None:
    manifest, tensors = _pa(cells=cells)
    any_store.save(manifest, tensors)
    loaded, _ = any_store.load(manifest["id"])
    assert loaded["entries"] == manifest["entries"]
    assert loaded.get("infeasible_cells") == manifest.get("infeasible_cells")
    assert loaded.get("recommended") == manifest.get("recommended")
    assert ("recommended" in loaded) is cells
    archive = any_store.export_archive(manifest["id"])
    any_store.delete(manifest["id"])
    assert any_store.import_archive(archive) == loaded


def test_pa_dictionary_without_entries_round_trips(any_store: DictionaryStore) -> None:
    manifest, tensors = _pa(cells=True, n=0)
    any_store.save(manifest, tensors)
    loaded, got = any_store.load(manifest["id"])
    assert loaded["entries"] == [] and len(loaded["infeasible_cells"]) == 1
    assert got["mean"].shape == (0, 4) and got["neuron_offsets"].tolist() == [0]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m["infeasible_cells"][0].pop("sweep"), "infeasible_cells[0]"),
        (lambda m: m["recommended"][0].update(entry_id="1"), "entry_id"),
        (lambda m: m["recommended"][0].update(honest_tpr=None), "honest_tpr"),
        (lambda m: m["recommended"][0].update(out_of_sample=[]), "out_of_sample"),
        (lambda m: m.update(recommended={}), "recommended"),
        (lambda m: m["infeasible_cells"].append(3), "infeasible_cells[1]"),
    ],
)
def test_malformed_per_cell_results_are_refused(tmp_path: Path, change: Any, words: str) -> None:
    manifest, tensors = _pa(cells=True)
    change(manifest)
    with pytest.raises(FailedPrecondition, match=words.replace("[", r"\[").replace("]", r"\]")):
        LocalDictionaryStore(tmp_path).save(manifest, tensors)
