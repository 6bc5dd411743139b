"""Admission control, cancellation and out-of-memory recovery in a device's scheduler.

The scheduler is real; the model is a stand-in whose forward blocks on an event (or raises), so
the queue states are exact instead of timing-dependent. Each row's single token id names it, so
the forwards the stand-in saw tell which requests ran.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from chunkscope.engine.scheduler import LogitsWork, Scheduler
from chunkscope.errors import ResourceExhausted


@dataclass
class _Blocking(torch.nn.Module):
    release: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    seen: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Any:
        self.seen.append(input_ids[:, 0].tolist())
        if self.error is not None:
            raise self.error
        self.release.wait(10)
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], input_ids.shape[1], 3))

    __hash__ = object.__hash__


def _model(module: _Blocking) -> Any:
    return SimpleNamespace(module=module, is_recurrent=False, device=torch.device("cpu"))


def _work(model: Any, ident: int) -> LogitsWork:
    loop = asyncio.get_running_loop()
    return LogitsWork(model=model, loop=loop, future=loop.create_future(),
                      rows=[torch.tensor([ident])], steerings=[None])  # fmt: skip


def _scheduler(depth: int) -> Scheduler:
    return Scheduler("cpu", max_queue_depth=depth, max_batch_tokens=1, max_batch_delay_s=0)


def test_a_full_queue_refuses_at_once_and_admits_again_when_it_drains() -> None:
    async def scenario() -> None:
        module = _Blocking()
        model, scheduler = _model(module), _scheduler(depth=2)
        first = asyncio.ensure_future(scheduler.submit(_work(model, 1)))
        second = asyncio.ensure_future(scheduler.submit(_work(model, 2)))
        await asyncio.sleep(0.05)
        with pytest.raises(ResourceExhausted) as err:
            await scheduler.submit(_work(model, 3))
        assert err.value.reason == "QUEUE_FULL" and "--max-queue-depth 2" in err.value.message
        module.release.set()
        await first
        await second
        await scheduler.submit(_work(model, 4))
        assert module.seen == [[1], [2], [4]]  # the refused request never ran
        scheduler.close()

    asyncio.run(scenario())


def test_a_request_cancelled_while_queued_leaves_the_queue_and_never_runs() -> None:
    async def scenario() -> None:
        module = _Blocking()
        model, scheduler = _model(module), _scheduler(depth=2)
        running = asyncio.ensure_future(scheduler.submit(_work(model, 1)))
        queued = asyncio.ensure_future(scheduler.submit(_work(model, 2)))
        await asyncio.sleep(0.05)
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        third = asyncio.ensure_future(scheduler.submit(_work(model, 3)))  # the freed slot
        await asyncio.sleep(0.05)
        module.release.set()
        await running
        await third
        assert module.seen == [[1], [3]]
        scheduler.close()

    asyncio.run(scenario())


def test_device_out_of_memory_is_resource_exhausted_and_the_next_request_is_served() -> None:
    async def scenario() -> None:
        module = _Blocking()
        model, scheduler = _model(module), _scheduler(depth=4)
        module.error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        with pytest.raises(ResourceExhausted) as err:
            await scheduler.submit(_work(model, 1))
        assert err.value.reason == "DEVICE_OUT_OF_MEMORY"
        assert "Tried to allocate 80.00 GiB" in err.value.message
        module.error = None
        module.release.set()
        work = _work(model, 2)
        await scheduler.submit(work)
        assert len(work.results) == 1 and work.results[0].shape == (3,)
        scheduler.close()

    asyncio.run(scenario())
