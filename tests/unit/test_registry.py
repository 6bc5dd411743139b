"""ModelRegistry in-process: life cycle, persistence, and concurrent forwards without hook leaks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from chunkscope.config import Settings
from chunkscope.engine.hooks import capture, hook_count
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)


def _settings(tmp_path: Path, model_root: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_roots=(model_root,), device="cpu", **kw)


def test_concurrent_requests_get_their_own_activations_and_leave_no_hooks(
    tmp_path: Path, model_root: Path
) -> None:
    texts = [f"the cat number {i} sat on the mat" + " again" * i for i in range(8)]

    def resid(text: str):
        def run(model: LoadedModel) -> torch.Tensor:
            ids = model.tokenizer(text, return_tensors="pt").input_ids
            site = {"blocks.1.resid_post": model.adapter.resolve("blocks.1.resid_post")}
            with torch.inference_mode(), capture(model.module, site) as rec:
                model.module(ids)
            return rec["blocks.1.resid_post"][0]

        return run

    async def scenario() -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        await registry.register("lm", "tiny-llama", "", "", wait=True)
        alone = [await registry.run("lm", resid(t)) for t in texts]
        together = await asyncio.gather(*(registry.run("lm", resid(t)) for t in texts))
        leaks = hook_count(registry.ready("lm").module)
        await registry.close()
        return alone, list(together), leaks

    alone, together, leaks = asyncio.run(scenario())
    assert leaks == 0
    for a, b in zip(alone, together, strict=True):
        assert torch.equal(a, b)
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
    async def scenario() -> None:
        registry = ModelRegistry(_settings(tmp_path, model_root))
        # With wait, the failure is the answer and the registration is rolled back.
        with pytest.raises(FailedPrecondition) as err:
            await registry.register("broken", "corrupt-llama", "", "", wait=True)
        assert err.value.reason == "MODEL_LOAD_FAILED"
        with pytest.raises(NotFound):
            registry.get("broken")
        assert registry.store.all() == []
        # Without wait, the model is listed and turns FAILED with the reason.
        await registry.register("broken", "corrupt-llama", "", "", wait=False)
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
