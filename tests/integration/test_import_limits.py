"""ImportDictionary's limits: uploads are spooled to disk under --max-import-bytes, and at most
--max-concurrent-imports run at once; refusals leave the server healthy and nothing on disk."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest

from chunkscope.store.dictionaries import LocalDictionaryStore, new_id
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from support import ServerProcess, start_server

LIMIT = 256 << 10


def _archive(tmp_path: Path) -> bytes:
    """A small valid cosine-dictionary archive, made by a store of its own."""
    store = LocalDictionaryStore(tmp_path / "maker")
    manifest = {
        "schema_version": 1, "id": new_id(),
        "model": {"name": "m", "content_hash": "sha256:" + "a" * 64, "architecture": "llama"},
        "hook_point": "blocks.0.resid_post", "hidden_size": 4, "dtype": "float32",
        "method": "cosine_dictionary", "parameters": {"k": 3},
        "corpus": {"fingerprint": "sha256:" + "b" * 64, "n_inputs": 2, "n_tokens": 10,
                   "context": "whole_text", "max_tokens": 512},
        "created_at": datetime.now(UTC).isoformat(), "chunkscope_version": "test",
        "description": "", "stats": {"dead_atoms": 0.0},
        "entries": [{"id": i, "label": f"chunk-{i}"} for i in range(3)], "tensors_sha256": "",
    }  # fmt: skip
    tensors = {
        "atoms": np.eye(3, 4, dtype=np.float32),
        "counts": np.arange(3, dtype=np.int64),
        "center": np.full(4, 0.5, np.float32),
    }
    store.save(manifest, tensors)
    archive = store.export_archive(manifest["id"])
    store.close()
    return archive


def _leftovers(server: ServerProcess) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "dictionaries").iterdir())


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("imports"), model_root,
        "--max-import-bytes", str(LIMIT), "--max-concurrent-imports", "1",
    )  # fmt: skip
    yield proc
    proc.terminate()


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(server: ServerProcess) -> None:
    sent = 0

    def zeros() -> Iterator[pb.ImportDictionaryRequest]:
        nonlocal sent
        for _ in range(64):  # 4 MiB in all, 16 times the limit
            sent += 1
            yield pb.ImportDictionaryRequest(data=bytes(64 << 10))

    with Client.connect(server.address, timeout=60) as c:
        with pytest.raises(ChunkscopeError) as err:
            c._call(c.dictionaries.ImportDictionary, zeros())
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.reason == "ARCHIVE_TOO_LARGE"
        assert "--max-import-bytes" in err.value.message and str(LIMIT) in err.value.message
        assert c.health() == "SERVING"
        assert list(c.list_dictionaries()) == []
    assert _leftovers(server) == []  # the spooled upload is gone too


def test_imports_beyond_the_concurrency_limit_are_refused_not_queued(
    server: ServerProcess, tmp_path: Path
) -> None:
    archive = _archive(tmp_path)
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    release = threading.Event()
    outcome: list[object] = []

    def held() -> Iterator[pb.ImportDictionaryRequest]:
        yield pb.ImportDictionaryRequest(data=archive[:100], sha256=digest)
        release.wait(60)
        yield pb.ImportDictionaryRequest(data=archive[100:])

    with Client.connect(server.address, timeout=60) as c:

        def first() -> None:
            try:
                outcome.append(c._call(c.dictionaries.ImportDictionary, held()).dictionary.id)
            except ChunkscopeError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=first)
        thread.start()
        try:
            # Until the first call is admitted, the probe is an ordinary empty upload. The two
            # race for the one slot: a probe admitted first makes the held call's refusal the
            # right answer (TOO_MANY_IMPORTS), and the held call is sent again.
            deadline = time.monotonic() + 30
            while True:
                with pytest.raises(ChunkscopeError) as err:
                    c.import_dictionary(b"")
                if err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    break
                assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT, err.value
                if outcome:  # the held call lost the race to a probe
                    [lost] = outcome
                    assert isinstance(lost, ChunkscopeError), lost
                    assert lost.reason == "TOO_MANY_IMPORTS", lost
                    thread.join(60)
                    outcome.clear()
                    thread = threading.Thread(target=first)
                    thread.start()
                assert time.monotonic() < deadline, "the held import was never admitted"
                time.sleep(0.05)
            assert err.value.reason == "TOO_MANY_IMPORTS"
            assert "--max-concurrent-imports 1" in err.value.message
            assert c.health() == "SERVING"
        finally:
            release.set()
            thread.join(60)
        [stored] = outcome
        assert isinstance(stored, str) and stored.startswith("dict-"), stored
        assert [d.id for d in c.list_dictionaries()] == [stored]
        # The slot is free again: the same archive is now refused as a duplicate, not as busy.
        with pytest.raises(ChunkscopeError) as again:
            c.import_dictionary(archive)
        assert again.value.code is grpc.StatusCode.ALREADY_EXISTS
        c.delete_dictionary(stored)
    assert _leftovers(server) == []
