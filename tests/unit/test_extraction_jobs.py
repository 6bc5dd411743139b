"""Extraction jobs in-process (real registry, store and tiny model): which thread a device fit runs
on, what a device out-of-memory there becomes, the weights a job is pinned to; and dictionaries
loaded for detectors off the event loop."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch

from chunkscope.chunking import ucd
from chunkscope.config import Settings
from chunkscope.corpus import Inputs
from chunkscope.engine import methods
from chunkscope.engine.chunks import DetectorCache
from chunkscope.engine.extraction import ExtractionSpec, Extractor, Progress
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import FailedPrecondition, NotFound, ResourceExhausted
from chunkscope.store.dictionaries import LocalDictionaryStore

TEXTS = tuple(f"On day {i} the cat slept near the window while the cake cooled." for i in range(4))


def _spec(**kw: Any) -> ExtractionSpec:
    fields: dict[str, Any] = {
        "model": "lm", "content_hash": "", "hook_points": ("blocks.1.resid_post",),
        "corpus": Inputs(texts=TEXTS), "heldout": None, "context": "whole_text",
        "batch_size": 1, "max_tokens": 0, "description": "", "method": "cosine_dictionary",
        "method_spec": ucd.CosineParams(k=4, epochs=2, lr=1e-2, batch_size=16, seed=0),
    }  # fmt: skip
    fields.update(kw)
    return ExtractionSpec(**fields)


async def _setup(tmp_path: Path, model_root: Path) -> tuple[ModelRegistry, Extractor]:
    settings = Settings(data_dir=tmp_path / "data", model_roots=(model_root,), device="cpu")
    registry = ModelRegistry(settings)
    await registry.register("lm", "tiny-llama", "", "", wait=True)
    store = LocalDictionaryStore(settings.data_dir)
    return registry, Extractor(registry, store, max_capture_bytes=1 << 30)


async def _drain(events: AsyncIterator[Any]) -> list[Any]:
    return [e async for e in events]


def test_cosine_fit_runs_off_the_device_thread_and_the_event_loop(
    tmp_path: Path, model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = ucd.fit_cosine

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(methods.ucd, "fit_cosine", recorded)

    async def scenario() -> list[Any]:
        registry, extractor = await _setup(tmp_path, model_root)
        try:
            return await _drain(extractor.run(_spec()))
        finally:
            await registry.close()

    *progress, [manifest] = asyncio.run(scenario())
    # A thread of its own: neither the event loop nor the device's scheduler, whose forwards
    # (other requests' Detects) must not wait for a fit.
    assert len(threads) == 1 and threads[0] not in ("MainThread", "chunkscope-cpu"), threads
    assert manifest["method"] == "cosine_dictionary" and len(manifest["entries"]) == 4
    assert any(p.phase == "fit" for p in progress)


def test_device_out_of_memory_in_a_cosine_fit_is_resource_exhausted(
    tmp_path: Path, model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_big(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr(methods.ucd, "fit_cosine", too_big)

    async def scenario() -> tuple[ResourceExhausted, int]:
        registry, extractor = await _setup(tmp_path, model_root)
        try:
            with pytest.raises(ResourceExhausted) as err:
                await _drain(extractor.run(_spec()))
            return err.value, extractor.store.list_page("", 0, 10)[1]
        finally:
            await registry.close()

    error, stored = asyncio.run(scenario())
    assert error.reason == "DEVICE_OUT_OF_MEMORY" and "40.00 GiB" in error.message
    assert stored == 0


def test_a_model_re_registered_mid_job_fails_the_job_instead_of_mixing_weights(
    tmp_path: Path, model_root: Path
) -> None:
    async def scenario() -> tuple[str, str, FailedPrecondition, int]:
        registry, extractor = await _setup(tmp_path, model_root)
        try:
            old = registry.get("lm").content_hash
            job = extractor.run(_spec())
            first = await anext(job)  # the job is suspended here, after its first batch
            assert isinstance(first, Progress) and first.phase == "capture" and first.done == 1
            await registry.unregister("lm")
            await registry.register("lm", "tiny-gpt2", "", "", wait=True)
            new = registry.get("lm").content_hash
            with pytest.raises(FailedPrecondition) as err:
                await _drain(job)
            return old, new, err.value, extractor.store.list_page("", 0, 10)[1]
        finally:
            await registry.close()

    old, new, error, stored = asyncio.run(scenario())
    assert old != new
    assert error.reason == "MODEL_HASH_MISMATCH" and old in error.message
    assert stored == 0


def test_prefetch_loads_dictionaries_on_a_worker_thread_and_get_serves_them_from_memory(
    tmp_path: Path, model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        registry, extractor = await _setup(tmp_path, model_root)
        try:
            *_, [manifest] = await _drain(extractor.run(_spec()))
            store = extractor.store
            cache = DetectorCache(store)
            on_loop: list[bool] = []
            real = store.load

            def load(dictionary_id: str) -> Any:
                on_loop.append(threading.current_thread() is threading.main_thread())
                return real(dictionary_id)

            monkeypatch.setattr(store, "load", load)
            missing = "dict-000000000000"
            await cache.prefetch([manifest["id"], manifest["id"], missing, "", "not-an-id"])
            assert on_loop == [False, False, False]  # each distinct id once, none on the loop
            # Gone from disk now: get() can only answer from what prefetch cached.
            shutil.rmtree(store.root / manifest["id"])
            model = registry.ready("lm")
            detector = cache.get(
                manifest["id"], "lm", manifest["model"]["content_hash"], model, "f"
            )
            assert detector.id == manifest["id"] and len(detector.labels) == 4
            assert on_loop == [False, False, False]
            with pytest.raises(NotFound):  # a fault is still reported by get(), with its field
                cache.get(missing, "lm", manifest["model"]["content_hash"], model, "f")
        finally:
            await registry.close()

    asyncio.run(scenario())
