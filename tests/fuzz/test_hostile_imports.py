"""ImportDictionary against manifests built to break the parser or the store, and against races.

Each family here once answered INTERNAL: a manifest nested deeper than Python's recursion limit,
an integer of thousands of digits, a created_at that is not a time, values that validate but that
no reply can carry, and two imports of one new id renaming into place at the same moment. Every
one must be refused as an invalid dictionary (or, for the race, stored once) and leave the store
as it was.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_support import FuzzEnv
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chunkscope.errors import AlreadyExists
from chunkscope.store.dictionaries import LocalDictionaryStore, new_id
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import dictionaries_pb2_grpc as pbg
from support import archive_members, archive_of

TIMEOUT = 60


def _with_manifest(archive: bytes, text: bytes) -> bytes:
    members = archive_members(archive)
    members["manifest.json"] = text
    return archive_of(members)


def _edited(archive: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The archive under a new id with one manifest edit (so ALREADY_EXISTS cannot mask it)."""
    manifest = json.loads(archive_members(archive)["manifest.json"])
    manifest["id"] = new_id()
    edit(manifest)
    return _with_manifest(archive, json.dumps(manifest).encode())


def _import(env: FuzzEnv, data: bytes) -> tuple[grpc.StatusCode, str]:
    stub = pbg.DictionaryServiceStub(env.channel)
    try:
        reply = stub.ImportDictionary(
            iter([pb.ImportDictionaryRequest(data=data)]), timeout=TIMEOUT, metadata=env.metadata
        )
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, reply.dictionary.id


def _stored(env: FuzzEnv) -> list[str]:
    stub = pbg.DictionaryServiceStub(env.channel)
    reply = stub.ListDictionaries(
        pb.ListDictionariesRequest(), timeout=TIMEOUT, metadata=env.metadata
    )
    return sorted(d.id for d in reply.dictionaries)


def _files(env: FuzzEnv) -> list[str]:
    return sorted(p.name for p in env.work_dir.iterdir())


def _healthy(env: FuzzEnv) -> bool:
    reply = health_pb2_grpc.HealthStub(env.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=TIMEOUT
    )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        target: Any = manifest
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[key] = value

    return edit


# (what it is, the manifest bytes or an edit, words the refusal must hold)
HOSTILE: list[tuple[str, Any, str]] = [
    ("deep nesting", b"[" * 100_000, "nests too deeply"),
    ("deep object", b'{"a":' * 100_000, "nests too deeply"),
    ("5000-digit schema_version", b'{"schema_version": ' + b"9" * 5000 + b"}", "not a valid JSON"),
    ("created_at not a date", _set("created_at", "not-a-date"), "created_at"),
    ("created_at month 13", _set("created_at", "2020-13-45"), "created_at"),
    ("created_at empty", _set("created_at", ""), "created_at"),
    ("stat beyond a double", _set("stats.huge", 10**400), "stats"),
    ("n_tokens beyond int64", _set("corpus.n_tokens", 2**70), "cannot be served"),
    ("hidden_size beyond int64", _set("hidden_size", 2**70), "center"),
    ("unknown key in an example", _set("entries.0.examples", [{"bogus": 1}]), "cannot be served"),
    ("tau not a number", _set("entries.0.tau", "high"), "cannot be served"),
]


@pytest.mark.parametrize(("what", "change", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_manifests_are_refused_as_invalid_dictionaries(
    fuzz_env: FuzzEnv, what: str, change: Any, words: str
) -> None:
    before, files = _stored(fuzz_env), _files(fuzz_env)
    archive = fuzz_env.archive
    data = (
        _with_manifest(archive, change) if isinstance(change, bytes) else _edited(archive, change)
    )
    code, message = _import(fuzz_env, data)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, (what, code, message)
    assert words in message, message
    assert _healthy(fuzz_env)
    assert _stored(fuzz_env) == before and _files(fuzz_env) == files


def test_concurrent_imports_of_one_new_id_store_it_once(fuzz_env: FuzzEnv) -> None:
    data = _edited(fuzz_env.archive, lambda m: None)
    new = json.loads(archive_members(data)["manifest.json"])["id"]
    before = _stored(fuzz_env)
    with ThreadPoolExecutor(8) as pool:
        codes = [c for c, _ in pool.map(lambda _: _import(fuzz_env, data), range(8))]
    allowed = {
        grpc.StatusCode.OK,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    assert set(codes) <= allowed, codes
    assert codes.count(grpc.StatusCode.OK) == 1, codes  # the first admitted one always stores it
    assert _stored(fuzz_env) == sorted([*before, new])
    assert not [f for f in _files(fuzz_env) if f.startswith(".")]  # no temporary left behind
    stub = pbg.DictionaryServiceStub(fuzz_env.channel)
    got = stub.GetDictionary(
        pb.GetDictionaryRequest(id=new), timeout=TIMEOUT, metadata=fuzz_env.metadata
    )
    assert got.dictionary.id == new and got.dictionary.n_entries > 0
    stub.DeleteDictionary(
        pb.DeleteDictionaryRequest(id=new), timeout=TIMEOUT, metadata=fuzz_env.metadata
    )
    assert _stored(fuzz_env) == before


def test_racing_imports_in_one_store_rename_once(fuzz_env: FuzzEnv, tmp_path: Path) -> None:
    """The store without the API's concurrency limit: 8 threads released at once on one id."""
    store = LocalDictionaryStore(tmp_path)
    data = _edited(fuzz_env.archive, lambda m: None)
    start = threading.Barrier(8)

    def one(_: int) -> str:
        start.wait()
        try:
            return store.import_archive(data)["id"]
        except AlreadyExists:
            return "exists"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))  # any other exception fails the test here
    stored = [r for r in results if r != "exists"]
    assert len(stored) == 1, results
    records, total = store.list_page("", 0, 10)
    assert total == 1 and records[0].id == stored[0]
    manifest, _ = store.load(stored[0])
    assert manifest["id"] == stored[0]
    assert sorted(p.name for p in store.root.iterdir()) == stored
    store.close()
