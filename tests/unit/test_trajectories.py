"""engine.trajectories against a stand-in registry: inputs go through `registry.capture` in
batches of 8, each batch is admitted before it is kept, and the flat rows come back as one float64
trajectory per input, pooled as asked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from chunkscope.analysis.states import States
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import CapturedBatch, Segment
from chunkscope.engine.trajectories import CaptureProgress, capture_states

WIDTH = 3


class FakeRegistry:
    """Input i of length n gives rows i*100 + 0..n-1 in every unit."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int], tuple[str, ...], int, str]] = []

    async def capture(
        self, name: str, batch: Sequence[Segment], hook_points: Sequence[str], max_tokens: int,
        expected_hash: str = "",
    ) -> CapturedBatch:  # fmt: skip
        self.calls.append(
            (name, [s.input_index for s in batch], tuple(hook_points), max_tokens, expected_hash)
        )
        lengths = [min(len(s.symbols), max_tokens) for s in batch]
        rows = np.concatenate(
            [
                s.input_index * 100 + np.arange(n, dtype=np.float32)
                for s, n in zip(batch, lengths, strict=True)
            ]
        )
        flat = np.repeat(rows[:, None], WIDTH, axis=1)
        return CapturedBatch(batch, {h: flat for h in hook_points}, lengths, [], [])


def _run(inputs: Inputs, pooling: str, admit=lambda rows: None):  # type: ignore[no-untyped-def]
    registry: Any = FakeRegistry()

    async def main() -> list[object]:
        events = capture_states(registry, "m", "sha256:x", inputs, ["h"], 4, pooling, admit)
        return [e async for e in events]

    return registry, asyncio.run(main())


SEQS = Inputs(sequences=tuple(("A",) * (1 + i % 6) for i in range(10)))


def test_batches_of_eight_through_registry_capture_then_trajectories_per_input() -> None:
    registry, events = _run(SEQS, "all")
    assert [c[1] for c in registry.calls] == [list(range(8)), [8, 9]]
    assert all(c[0] == "m" and c[2:] == (("h",), 4, "sha256:x") for c in registry.calls)
    assert events[:2] == [CaptureProgress(1, 2), CaptureProgress(2, 2)]
    states = events[2]
    assert isinstance(states, dict) and isinstance(states["h"], States)
    trajs = states["h"].trajectories
    assert len(trajs) == 10 and all(t.dtype == np.float64 for t in trajs)
    for i, t in enumerate(trajs):
        n = min(1 + i % 6, 4)
        assert t.shape == (n, WIDTH)
        np.testing.assert_array_equal(t[:, 0], i * 100 + np.arange(n))


POOLED = [("last", lambda i, n: i * 100 + n - 1), ("mean", lambda i, n: i * 100 + (n - 1) / 2)]


@pytest.mark.parametrize(("pooling", "row"), POOLED)
def test_pooling_gives_one_row_per_input(pooling: str, row) -> None:  # type: ignore[no-untyped-def]
    _, events = _run(SEQS, pooling)
    (pooled,) = events[-1]["h"].trajectories  # type: ignore[index]
    want = [row(i, min(1 + i % 6, 4)) for i in range(10)]
    np.testing.assert_allclose(pooled[:, 0], want)


def test_admit_sees_the_running_row_count_and_stops_the_capture_before_keeping() -> None:
    seen: list[int] = []

    def admit(rows: int) -> None:
        seen.append(rows)
        if rows > 20:
            raise OverflowError(rows)

    with pytest.raises(OverflowError):
        _run(SEQS, "all", admit)
    # First batch: inputs 0..7 of 1,2,3,4,4,4,1,2 steps = 21 rows, refused before any progress.
    assert seen == [21]
