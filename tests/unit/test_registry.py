"""ModelRegistry in-process: life cycle, persistence, and concurrent forwards without hook leaks."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from chunkscope.config import Settings
from chunkscope.engine import loading
from chunkscope.engine.capture import Segment
from chunkscope.engine.device import DeviceUnavailable
from chunkscope.engine.hooks import hook_count
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from chunkscope.store.registry import RegistryStore
from helpers.model_files import copy_model, mismatched_llama


def _settings(tmp_path: Path, model_root: Path, **kw: object) -> Settings:
    kw = {"model_roots": (model_root,), "device": "cpu", **kw}
    return Settings(data_dir=tmp_path / "data", **kw)  # type: ignore[arg-type]


def test_concurrent_requests_get_their_own_activations_and_leave_no_hooks(
    tmp_path: Path, model_root: Path
) -> None:
    texts = [f"the cat number {i} sat on the mat" + " again" * i for i in range(8)]
    point = "blocks.1.resid_post"

    async def scenario() -> tuple[list[np.ndarray], list[np.ndarray], int]:
        registry = ModelRegistry(_settings(tmp_path, model_root, max_batch_delay_ms=200))
        await registry.register("lm", "tiny-llama", "", "", wait=True)

        async def resid(text: str) -> np.ndarray:
            got = await registry.capture("lm", [Segment(0, 0, text)], [point], 128)
            return got.states[point]

        alone = [await resid(t) for t in texts]
        together = await asyncio.gather(*(resid(t) for t in texts))
        leaks = hook_count(registry.ready("lm").module)
        await registry.close()
        return alone, list(together), leaks

    alone, together, leaks = asyncio.run(scenario())
    assert leaks == 0
    for a, b in zip(alone, together, strict=True):
        # Shared, padded forwards sum in another order: within float32 rounding of the solo run
        # (tests/unit/test_scheduler.py derives the bound).
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * float(np.abs(a).max()))
    assert alone[0].shape != alone[-1].shape  # different inputs really did differ


def test_registrations_survive_a_new_registry_on_the_same_data_dir(
    tmp_path: Path, model_root: Path
) -> None:
    async def first() -> str:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        info = await registry.register("rnn", "rnn-gru", "", "", wait=True)
        await registry.close()
        return info.content_hash

    async def second() -> tuple[str, str, int]:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        await registry.restore()
        info = registry.get("rnn")
        points = registry.hook_points("rnn")
        await registry.close()
        return info.state, info.content_hash, len(points)

    digest = asyncio.run(first())
    assert asyncio.run(second()) == ("READY", digest, 1)


def test_bad_registrations_are_refused_before_anything_is_stored(
    tmp_path: Path, model_root: Path
) -> None:
    async def scenario() -> None:
        registry = ModelRegistry(_settings(tmp_path, model_root, max_models=2))
        with pytest.raises(InvalidArgument) as err:
            await registry.register("Has Spaces", "", "", "", wait=True)
        assert {v.field for v in err.value.violations} == {"name", "source_path"}
        with pytest.raises(InvalidArgument):
            await registry.register("ok", "rnn-elman", "", "float8", wait=True)
        await registry.register("a", "rnn-elman", "", "", wait=True)
        with pytest.raises(AlreadyExists):
            await registry.register("a", "rnn-gru", "", "", wait=True)
        await registry.register("b", "rnn-gru", "", "", wait=True)
        with pytest.raises(ResourceExhausted):
            await registry.register("c", "rnn-lstm", "", "", wait=True)
        assert [r.name for r in registry.store.all()] == ["a", "b"]
        await registry.close()

    asyncio.run(scenario())


def test_a_failed_load_is_reported_and_can_be_replaced(tmp_path: Path, model_root: Path) -> None:
    mismatched = mismatched_llama(model_root / "tiny-llama", tmp_path / "models" / "mismatched")

    async def scenario() -> None:
        registry = ModelRegistry(
            _settings(tmp_path, model_root, model_roots=(model_root, mismatched.parent))
        )
        # A weights file whose header does not describe it is refused before anything is stored.
        for wait in (True, False):
            with pytest.raises(FailedPrecondition) as bad:
                await registry.register("broken", "corrupt-llama", "", "", wait=wait)
            assert bad.value.reason == "BAD_SAFETENSORS"
        # With wait, a failed load is the answer and the registration is rolled back.
        with pytest.raises(FailedPrecondition) as err:
            await registry.register("broken", str(mismatched), "", "", wait=True)
        assert err.value.reason == "MODEL_LOAD_FAILED"
        with pytest.raises(NotFound):
            registry.get("broken")
        assert registry.store.all() == []
        # Without wait, the model is listed and turns FAILED with the reason.
        await registry.register("broken", str(mismatched), "", "", wait=False)
        for _ in range(600):
            if (info := registry.get("broken")).state != "LOADING":
                break
            await asyncio.sleep(0.1)
        assert info.state == "FAILED" and info.state_reason
        with pytest.raises(FailedPrecondition) as not_ready:
            registry.hook_points("broken")
        assert not_ready.value.reason == "MODEL_NOT_READY"
        # Registering again under a FAILED name replaces it.
        info = await registry.register("broken", "rnn-elman", "", "", wait=True)
        assert info.state == "READY"
        await registry.close()

    asyncio.run(scenario())


def test_list_pages_through_models_in_name_order(tmp_path: Path, model_root: Path) -> None:
    async def scenario() -> list[list[str]]:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        for name in ("c", "a", "b"):
            await registry.register(name, "rnn-elman", "", "", wait=True)
        pages, token = [], ""
        while True:
            infos, token, total = registry.list_page(2, token)
            assert total == 3
            pages.append([i.name for i in infos])
            if not token:
                break
        with pytest.raises(InvalidArgument):
            registry.list_page(2, "not-a-token!")
        await registry.close()
        return pages

    assert asyncio.run(scenario()) == [["a", "b"], ["c"]]


def test_content_hash_covers_configs_and_tokenizer_but_not_their_formatting(
    tmp_path: Path, model_root: Path
) -> None:
    """Dictionaries bind to the hash: any file that changes what the model computes changes it."""
    lm = copy_model(model_root / "tiny-llama", tmp_path / "lm")
    rnn = copy_model(model_root / "rnn-elman", tmp_path / "rnn")

    def digest(path: Path) -> str:
        return loading.content_hash(loading.inspect_source(path, ""))

    def edit(path: Path, **changes: object) -> None:
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    for model, name in ((lm, "config.json"), (rnn, "config.json"), (lm, "tokenizer.json")):
        before = digest(model)
        document = json.loads((model / name).read_text())
        (model / name).write_text(json.dumps(document, indent=7, sort_keys=True))
        assert digest(model) == before, f"reformatting {name} changed the hash"
    tokenizer = json.loads((lm / "tokenizer.json").read_text())
    tokenizer["model"]["merges"] = tokenizer["model"]["merges"][:-1]
    # Each edit of a model file that changes what the model computes gives a new hash.
    fresh = copy_model(model_root / "tiny-llama", tmp_path / "lm2")
    steps = [
        ("config.json", {"rms_norm_eps": 0.5}),
        ("generation_config.json", {"temperature": 0.1}),
        ("tokenizer_config.json", {"model_max_length": 7}),
    ]
    seen = {digest(fresh)}
    for name, change in steps:
        edit(fresh / name, **change)
        seen.add(digest(fresh))
    (fresh / "tokenizer.json").write_text(json.dumps(tokenizer))
    seen.add(digest(fresh))
    assert len(seen) == len(steps) + 2
    rnn_before = digest(rnn)
    edit(rnn / "config.json", nonlinearity="tanh")
    assert digest(rnn) != rnn_before


def _schema_1_store(data_dir: Path, name: str, source: Path, content_hash: str) -> None:
    """A registry database as chunkscope wrote it before schema 2 (hash of the weights only)."""
    data_dir.mkdir(parents=True)
    db = sqlite3.connect(data_dir / "registry.sqlite3")
    db.executescript(
        "CREATE TABLE models (name TEXT PRIMARY KEY, source_path TEXT NOT NULL, format TEXT NOT "
        "NULL, dtype TEXT NOT NULL, content_hash TEXT NOT NULL, registered_at TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
    )
    db.execute(
        "INSERT INTO models VALUES (?, ?, 'recurrent', '', ?, '2026-01-01T00:00:00+00:00')",
        (name, str(source), content_hash),
    )
    db.commit()
    db.close()


def test_a_registration_from_before_schema_2_keeps_its_hash_then_pins_every_file(
    tmp_path: Path, model_root: Path
) -> None:
    root = tmp_path / "models"
    rnn = copy_model(model_root / "rnn-elman", root / "rnn")
    legacy = loading.weights_hash(loading.inspect_source(rnn, ""))
    _schema_1_store(tmp_path / "data", "rnn", rnn, legacy)

    async def restored() -> tuple[str, str, str]:
        registry = ModelRegistry(_settings(tmp_path, root))
        await registry.restore()
        info = registry.get("rnn")
        await registry.close()
        return info.state, info.state_reason, info.content_hash

    # Upgraded: the old hash still names the model (its dictionaries stay bound) ...
    assert asyncio.run(restored()) == ("READY", "", legacy)
    [record] = RegistryStore(tmp_path / "data").all()
    assert record.content_hash == legacy
    assert record.files_hash == loading.content_hash(loading.inspect_source(rnn, ""))
    assert record.files_hash != legacy and record.compute_dtype == "float32"
    # ... and from now on a changed config is caught, not only changed weights.
    config = json.loads((rnn / "config.json").read_text())
    (rnn / "config.json").write_text(json.dumps({**config, "nonlinearity": "tanh"}))
    state, reason, digest = asyncio.run(restored())
    assert (state, digest) == ("FAILED", legacy)
    assert "changed since registration" in reason


def test_the_metrics_scrape_reads_a_snapshot_while_models_come_and_go(
    tmp_path: Path, model_root: Path
) -> None:
    """The scrape runs on the Prometheus thread while the event loop registers and unregisters."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    async def scenario() -> list[BaseException]:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        scrape_registry = CollectorRegistry()
        gauge = Gauge("hooks", "hooks", registry=scrape_registry)
        gauge.set_function(registry.hooks_installed)
        errors: list[BaseException] = []
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                try:
                    generate_latest(scrape_registry)
                except Exception as exc:  # what a failed scrape would be
                    errors.append(exc)

        for name in ("a", "b", "c"):
            await registry.register(name, "rnn-elman", "", "", wait=True)
        thread = threading.Thread(target=scrape)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen any race
        thread.start()
        try:
            for i in range(40):
                name = "abc"[i % 3]
                await registry.unregister(name)
                await registry.register(name, "rnn-elman", "", "", wait=True)
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(interval)
        assert registry.hooks_installed() == 0
        await registry.close()
        return errors

    errors = asyncio.run(scenario())
    assert errors == [], errors[:3]


def test_unregister_collects_garbage_off_the_event_loop(tmp_path: Path, model_root: Path) -> None:
    ran_on: list[str] = []
    real = gc.collect

    def recording_collect(*args: int) -> int:
        ran_on.append(threading.current_thread().name)
        return real(*args)

    async def scenario() -> str:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        await registry.register("m", "rnn-elman", "", "", wait=True)
        gc.collect = recording_collect
        try:
            await registry.unregister("m")
            for _ in range(200):  # the collection runs in a thread: give it time to start
                if ran_on:
                    break
                await asyncio.sleep(0.05)
        finally:
            gc.collect = real
        await registry.close()
        return threading.current_thread().name

    loop_thread = asyncio.run(scenario())
    assert ran_on, "unregister never collected the dropped model"
    assert loop_thread not in ran_on


def test_a_missing_cuda_device_is_a_clear_start_up_error(tmp_path: Path, model_root: Path) -> None:
    settings = [_settings(tmp_path, model_root, device="cuda:99")]
    if not torch.cuda.is_available():
        settings.append(_settings(tmp_path, model_root, device="cuda"))
    for s in settings:
        with pytest.raises(DeviceUnavailable) as err:
            ModelRegistry(s)
        assert "--device" in err.value.message and "--device auto" in err.value.message
