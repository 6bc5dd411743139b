"""Events from a worker thread to an async caller, in order, none lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


async def relay(queue: asyncio.Queue[T], worker: asyncio.Future[Any]) -> AsyncIterator[T]:
    """Yield what the worker puts on `queue` (with loop.call_soon_threadsafe) until it is done.

    The worker's puts are scheduled on the loop before its completion is, so once `worker` is
    seen done with the queue empty at that moment, nothing more can arrive. The caller awaits
    `worker` afterwards for its result (or exception).
    """
    while True:
        getter: asyncio.Future[T] = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({worker, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            yield getter.result()
            continue
        getter.cancel()
        while not queue.empty():
            yield queue.get_nowait()
        return
