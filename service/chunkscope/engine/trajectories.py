"""Hidden-state trajectories for the representation measures (docs/METHODS.md section 6).

AnalysisService's captured states: the inputs run through the registry's capture a batch at a
time (the same capture as extraction, padding masked out), each batch's flat rows cut back into
one trajectory per input and held in double precision, then pooled per input into States.

The caller bounds what is held: `admit(rows)` is given the running count of captured rows after
each batch, before that batch's states are kept, and raises to stop the capture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from chunkscope.analysis.states import States
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import CapturedBatch, segments
from chunkscope.engine.registry import ModelRegistry

BATCH = 8  # inputs per forward pass
STATE_DTYPE = np.float64  # captured states are held, and measured, in double precision


@dataclass(frozen=True)
class CaptureProgress:
    """`done` of `total` batches captured."""

    done: int
    total: int


async def capture_states(
    registry: ModelRegistry,
    model: str,
    expected_hash: str,
    inputs: Inputs,
    hook_points: Sequence[str],
    max_tokens: int,
    pooling: str,
    admit: Callable[[int], None],
) -> AsyncIterator[CaptureProgress | dict[str, States]]:
    """Yields a CaptureProgress after each batch, then {hook point: States} of every input.

    Each input is one forward pass of at most `max_tokens` tokens (or steps); the splitting and
    pooling run on a worker thread, the forwards on the registry's compute thread.
    """
    segs = segments(inputs, "whole_text")
    batches = [segs[i : i + BATCH] for i in range(0, len(segs), BATCH)]
    held: dict[str, list[np.ndarray]] = {h: [] for h in hook_points}
    rows = 0
    for done, batch in enumerate(batches, 1):
        got = await registry.capture(model, batch, hook_points, max_tokens, expected_hash)
        rows += sum(got.lengths)
        admit(rows)
        for name, trajectories in (await asyncio.to_thread(split, got, hook_points)).items():
            held[name].extend(trajectories)
        yield CaptureProgress(done, len(batches))
    yield await asyncio.to_thread(pool, held, pooling)


def split(got: CapturedBatch, hook_points: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """One capture batch's flat states, cut back into one trajectory per input."""
    out: dict[str, list[np.ndarray]] = {}
    for name in hook_points:
        flat, start, out[name] = got.states[name], 0, []
        for length in got.lengths:
            out[name].append(flat[start : start + length].astype(STATE_DTYPE))
            start += length
    return out


def pool(states: dict[str, list[np.ndarray]], pooling: str) -> dict[str, States]:
    """Each hook point's trajectories as States: all tokens, the last one, or their mean."""
    out: dict[str, States] = {}
    for name, trajs in states.items():
        if pooling == "last":
            out[name] = States((np.stack([t[-1] for t in trajs]),))
        elif pooling == "mean":
            out[name] = States((np.stack([t.mean(axis=0) for t in trajs]),))
        else:
            out[name] = States(tuple(trajs))
    return out
