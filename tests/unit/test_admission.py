"""Admission control and out-of-memory recovery on a device's compute thread (ModelRegistry.run).

The registry is real; only its model lookup is replaced, so the work items can be plain functions
that block on an event, which makes the queue states exact instead of timing-dependent.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from chunkscope.config import Settings
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import ResourceExhausted


class _Registry(ModelRegistry):
    def ready(self, name: str, expected_hash: str = "") -> Any:
        return name


def _registry(tmp_path: Path, depth: int) -> _Registry:
    settings = Settings(data_dir=tmp_path, device="cpu", max_queue_depth=depth)
    return _Registry(settings)


def test_a_full_queue_refuses_at_once_and_admits_again_when_it_drains(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = _registry(tmp_path, depth=2)
        release = threading.Event()
        ran: list[str] = []

        def work(name: str) -> str:
            release.wait(10)
            ran.append(name)
            return name

        first = asyncio.ensure_future(registry.run("a", work))
        second = asyncio.ensure_future(registry.run("b", work))
        await asyncio.sleep(0.05)
        with pytest.raises(ResourceExhausted) as err:
            await registry.run("c", work)
        assert err.value.reason == "QUEUE_FULL" and "--max-queue-depth 2" in err.value.message
        release.set()
        assert await first == "a" and await second == "b"
        assert await registry.run("d", work) == "d"
        assert ran == ["a", "b", "d"]  # the refused request never ran
        await registry.close()

    asyncio.run(scenario())


def test_a_request_cancelled_while_queued_leaves_the_queue_and_never_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = _registry(tmp_path, depth=2)
        release = threading.Event()
        ran: list[str] = []

        def work(name: str) -> str:
            release.wait(10)
            ran.append(name)
            return name

        running = asyncio.ensure_future(registry.run("a", work))
        queued = asyncio.ensure_future(registry.run("b", work))
        await asyncio.sleep(0.05)
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        third = asyncio.ensure_future(registry.run("c", work))  # the freed slot is usable
        await asyncio.sleep(0.05)
        release.set()
        assert await running == "a" and await third == "c"
        assert ran == ["a", "c"]
        await registry.close()

    asyncio.run(scenario())


def test_device_out_of_memory_is_resource_exhausted_and_the_next_request_is_served(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        registry = _registry(tmp_path, depth=4)

        def too_big(name: str) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

        with pytest.raises(ResourceExhausted) as err:
            await registry.run("a", too_big)
        assert err.value.reason == "DEVICE_OUT_OF_MEMORY"
        assert "Tried to allocate 80.00 GiB" in err.value.message
        assert await registry.run("a", lambda name: name + "!") == "a!"
        await registry.close()

    asyncio.run(scenario())
