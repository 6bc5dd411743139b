"""The relay from a worker thread to an async caller, when the caller leaves early."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from chunkscope.engine.relay import relay


def test_a_caller_that_leaves_early_leaves_nothing_to_report() -> None:
    """A cancelled Generate stops reading; its worker then fails with its cancellation. Neither
    that exception nor the relay's pending queue read may be reported as lost by asyncio (both
    were, in the server log of every cancelled generation)."""
    reported: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        queue: asyncio.Queue[int] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            loop.call_soon_threadsafe(queue.put_nowait, 1)
            stop.wait(10)
            raise RuntimeError("cancelled by its caller")

        worker = loop.run_in_executor(None, work)
        events = relay(queue, worker)
        assert await anext(events) == 1
        reading = asyncio.ensure_future(anext(events))  # waits on the queue and the worker
        await asyncio.sleep(0.05)
        reading.cancel()  # the caller's call ends here
        await asyncio.gather(reading, return_exceptions=True)
        await events.aclose()
        stop.set()
        await asyncio.wait({worker})
        del worker, events, reading
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(main())
    gc.collect()
    assert [c.get("message") for c in reported] == []
