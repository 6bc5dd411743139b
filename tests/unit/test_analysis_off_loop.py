"""AnalysisService work that takes real time runs off the event loop: while a ConnectionCost of a
large inline network is computed, other coroutines keep running."""

from __future__ import annotations

import asyncio

import numpy as np

from chunkscope.api.analysis import AnalysisServicer
from chunkscope.api.tensors import to_proto
from chunkscope_client.v1 import analysis_pb2 as pb


def _request(out: int, inner: int) -> pb.ConnectionCostRequest:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(out, inner)).astype(np.float32)
    w2 = rng.normal(size=(inner, out)).astype(np.float32)
    layers = [pb.DenseLayer(weight=to_proto(w)) for w in (w1, w2)]
    return pb.ConnectionCostRequest(
        network=pb.NetworkSource(network=pb.DenseNetwork(layers=layers))
    )


async def _ticks_while(coroutine: asyncio.Future | asyncio.Task) -> tuple[int, object]:  # type: ignore[type-arg]
    """How often a bare coroutine got the loop while `coroutine` was pending."""
    task = asyncio.ensure_future(coroutine)
    ticks = 0
    while not task.done():
        ticks += 1
        await asyncio.sleep(0)
    return ticks, task.result()


def test_connection_cost_leaves_the_loop_free() -> None:
    """A handler that computed on the loop would run to its end in one step, before the ticker
    ran again (1 tick). Off the loop, it is suspended at least while the network is built and
    while its cost is computed, and the ticker runs in each pause: at least 3 ticks, however
    busy the machine (on an idle one, thousands)."""
    servicer = AnalysisServicer(registry=None)  # type: ignore[arg-type]  # inline networks only

    async def main() -> tuple[int, object]:
        return await _ticks_while(servicer.ConnectionCost(_request(1000, 1000), None))

    ticks, reply = asyncio.run(main())
    assert isinstance(reply, pb.ConnectionCostResponse) and reply.cost > 0
    assert ticks >= 3
