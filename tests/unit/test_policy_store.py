"""Guard policy storage on the local store and on PostgreSQL (a real server): versions only grow,
deletions are tombstones, expected versions are enforced, concurrent writers never collide."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chunkscope.errors import FailedPrecondition, NotFound
from chunkscope.store.policies import LocalPolicyStore, PolicyStore
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
