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
    `worker` afterwards for its result (or exception); a caller that leaves early (its call was
    cancelled) never does, so the worker's outcome is marked retrieved here, not logged as lost.
    """
    worker.add_done_callback(_retrieve)
    getter: asyncio.Future[T] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({worker, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            break
    finally:
        if getter is not None and not getter.done():
            getter.cancel()  # else it is destroyed pending when the caller leaves
    while not queue.empty():
        yield queue.get_nowait()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
