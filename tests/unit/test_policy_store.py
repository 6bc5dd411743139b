"""Guard policy storage on the local store and on PostgreSQL (a real server): versions only grow,
deletions are tombstones, expected versions are enforced, concurrent writers never collide;
intervention presets are the same table's other kind, apart from policies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chunkscope.errors import FailedPrecondition, NotFound
from chunkscope.store.policies import PRESETS, LocalPolicyStore, PolicyStore
from chunkscope.store.postgres import open_postgres, policy_store

_DATABASES = itertools.count()


@pytest.fixture(params=["local", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PolicyStore]:
    if request.param == "local":
        local = LocalPolicyStore(tmp_path)
        yield local
        local.close()
        return
    postgres: Any = request.getfixturevalue("postgres")
    dsn = postgres.create_database(f"policies_{next(_DATABASES)}")
    _, dictionaries = open_postgres(dsn, tmp_path / "spool", 10.0)
    yield policy_store(dictionaries)
    dictionaries.close()


def test_versions_grow_and_old_ones_stay_readable(store: PolicyStore) -> None:
    first = store.put("p", '{"a": 1}', "key1", None)
    second = store.put("p", '{"a": 2}', "key2", 1)
    assert (first.version, second.version) == (1, 2)
    assert store.get("p").body == '{"a": 2}' and store.get("p").author == "key2"
    assert store.get("p", 1).body == '{"a": 1}' and store.get("p", 1).author == "key1"
    assert store.get("p", 2) == second
    with pytest.raises(NotFound) as err:
        store.get("p", 3)
    assert err.value.reason == "POLICY_NOT_FOUND" and err.value.metadata["version"] == "3"
    with pytest.raises(NotFound):
        store.get("q")
    versions, total = store.list_versions("p", 0, 10)
    assert [r.version for r in versions] == [2, 1] and total == 2
    assert [r.version for r in store.list_versions("p", 1, 10)[0]] == [1]


def test_expected_version_is_enforced(store: PolicyStore) -> None:
    with pytest.raises(FailedPrecondition) as err:
        store.put("p", "{}", "", 3)  # does not exist yet
    assert err.value.reason == "POLICY_VERSION_CONFLICT"
    assert err.value.metadata["latest_version"] == "0"
    store.put("p", "{}", "", 0)  # 0: must not exist
    with pytest.raises(FailedPrecondition) as err:
        store.put("p", "{}", "", 0)
    assert err.value.metadata["latest_version"] == "1"
    with pytest.raises(FailedPrecondition):
        store.delete("p", "", 2)
    assert store.get("p").version == 1  # refused writes left nothing behind
    assert store.list_versions("p", 0, 10)[1] == 1


def test_delete_is_a_tombstone_and_versions_are_not_reused(store: PolicyStore) -> None:
    store.put("p", '{"v": 1}', "", None)
    store.put("p", '{"v": 2}', "", None)
    deleted = store.delete("p", "admin", 2)
    assert deleted.version == 2 and deleted.body == '{"v": 2}'
    gone = (
        lambda: store.get("p"),
        lambda: store.get("p", 1),
        lambda: store.list_versions("p", 0, 10),
        lambda: store.delete("p", "", None),
    )
    for call in gone:
        with pytest.raises(NotFound):
            call()
    assert store.list_latest(0, 10) == ([], 0)
    again = store.put("p", '{"v": 4}', "", 0)  # deleted: 0 is the expected version again
    assert again.version == 4
    assert store.get("p").body == '{"v": 4}' and store.get("p", 1).body == '{"v": 1}'


def test_listing_shows_the_latest_of_each_by_name(store: PolicyStore) -> None:
    for name in ("b", "a", "c"):
        store.put(name, f'"{name}1"', "", None)
    store.put("a", '"a2"', "", None)
    store.delete("c", "", None)
    records, total = store.list_latest(0, 10)
    assert [(r.name, r.version, r.body) for r in records] == [("a", 2, '"a2"'), ("b", 1, '"b1"')]
    assert total == 2
    page, total = store.list_latest(1, 1)
    assert [r.name for r in page] == ["b"] and total == 2


def test_concurrent_writers_get_consecutive_versions(store: PolicyStore) -> None:
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda i: store.put("p", str(i), "", None).version, range(12)))
    assert sorted(versions) == list(range(1, 13))

    def guarded(i: int) -> int | None:  # every writer read version 12: one wins
        try:
            return store.put("p", str(i), "", 12).version
        except FailedPrecondition:
            return None

    with ThreadPoolExecutor(4) as pool:
        won = [v for v in pool.map(guarded, range(6)) if v is not None]
    assert won == [13] and store.get("p").version == 13


def test_presets_are_a_kind_of_their_own(store: PolicyStore) -> None:
    presets = store.of(PRESETS)
    store.put("p", '"policy 1"', "", None)
    store.put("p", '"policy 2"', "", None)
    first = presets.put("p", '"preset 1"', "k", 0)  # same name, other kind: its own versions
    assert first.version == 1 and first.body == '"preset 1"'
    assert store.get("p").body == '"policy 2"' and presets.get("p").body == '"preset 1"'
    with pytest.raises(FailedPrecondition) as err:
        presets.put("p", "{}", "", 2)  # the policy's latest version is not the preset's
    assert err.value.reason == "PRESET_VERSION_CONFLICT"
    assert err.value.metadata == {"preset": "p", "latest_version": "1", "expected_version": "2"}
    presets.put("q", '"q1"', "", None)
    assert [r.name for r in presets.list_latest(0, 10)[0]] == ["p", "q"]
    assert [r.name for r in store.list_latest(0, 10)[0]] == ["p"]
    assert presets.delete("p", "", 1).version == 1
    with pytest.raises(NotFound) as missing:
        presets.get("p")
    assert missing.value.reason == "PRESET_NOT_FOUND" and "ListPresets" in missing.value.message
    assert store.get("p").version == 2  # deleting the preset left the policy alone
    assert presets.put("p", '"again"', "", 0).version == 3


def test_a_table_from_before_presets_is_migrated_keeping_its_policies(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.execute(
        "CREATE TABLE policies (name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT "
        "NOT NULL, author TEXT NOT NULL, deleted INTEGER NOT NULL, body TEXT NOT NULL, "
        "PRIMARY KEY (name, version))"
    )
    rows = [("p", 1, "2026-01-01T00:00:00+00:00", "k", 0, '"one"'),
            ("p", 2, "2026-01-02T00:00:00+00:00", "k", 0, '"two"')]  # fmt: skip
    db.executemany("INSERT INTO policies VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    store = LocalPolicyStore(tmp_path)
    try:
        assert [(r.version, r.body) for r in store.list_versions("p", 0, 10)[0]] == [
            (2, '"two"'), (1, '"one"')
        ]  # fmt: skip
        assert store.put("p", '"three"', "", 2).version == 3
        assert store.of(PRESETS).put("p", '"preset"', "", 0).version == 1
    finally:
        store.close()
    again = LocalPolicyStore(tmp_path)  # an already migrated table is left as it is
    try:
        assert again.get("p").body == '"three"' and again.of(PRESETS).get("p").version == 1
    finally:
        again.close()
