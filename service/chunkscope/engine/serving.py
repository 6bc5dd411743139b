"""The engine's entry points for the servicers: Detect, Perturb and Generate as work items.

Each call builds a typed work item (engine/scheduler.py), submits it to the device's scheduler
and returns typed results. Host work (tokenizing, converting states, matching, decoding token
text, comparing distributions) runs on the tokenizer pool, never on the event loop and never on
the device thread. The servicers validate and map; they call only these functions, the
registry and the dictionary cache.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from chunkscope import observability
from chunkscope.engine import tokens
from chunkscope.engine.capture import Segment, decode_token
from chunkscope.engine.decoding import Row, Step
from chunkscope.engine.detection import (
    Detector,
    InputDetection,
    hook_points_of,
    match,
)
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.engine.relay import relay
from chunkscope.engine.scheduler import GenerateWork, LogitsWork, on_loop
from chunkscope.engine.steering import Action, PerturbResult, Rule, Sampling, Steering, compare

# Segments of one request submitted at a time: their states are held until matched, so this
# bounds a large request's memory; concurrent requests still share forwards.
DETECT_CHUNK = 16
# Held states per chunk are inputs x hook points: past this many hook points a chunk takes fewer
# inputs, so a request over many hook points holds no more than DETECT_CHUNK x this many.
DETECT_CHUNK_HOOK_POINTS = 16


async def detect(
    registry: ModelRegistry,
    name: str,
    content_hash: str,
    detectors: list[Detector],
    segments: Sequence[Segment],
    max_tokens: int,
) -> tuple[list[InputDetection], int]:
    """Every detector on every segment; returns the results and the wall time in ns."""
    started = time.perf_counter_ns()
    points = hook_points_of(detectors)
    found: list[InputDetection] = []
    step = detect_chunk(len(points))
    for i in range(0, len(segments), step):
        chunk = segments[i : i + step]
        captured = await registry.capture(name, chunk, points, max_tokens, content_hash)
        with observability.span("chunkscope.detect.match", dictionaries=len(detectors),
                                 inputs=len(chunk)):  # fmt: skip
            found += await tokens.off_loop(match, detectors, captured)
    return found, time.perf_counter_ns() - started


def detect_chunk(n_hook_points: int) -> int:
    """Inputs per capture: every hook point in one forward, the states held bounded."""
    return max(1, DETECT_CHUNK * DETECT_CHUNK_HOOK_POINTS // max(DETECT_CHUNK_HOOK_POINTS,
                                                                  n_hook_points))  # fmt: skip


async def perturb(
    registry: ModelRegistry,
    name: str,
    content_hash: str,
    ids: torch.Tensor,
    actions: list[Action],
    targets: list[int],
    top_k: int,
) -> PerturbResult:
    """Next-token log-probabilities without and with `actions`: two rows of one forward."""
    model = registry.ready(name, content_hash)
    with observability.span("chunkscope.interventions", interventions=len(actions)):
        steering = Steering(list(actions), int(ids.shape[0]), model.is_recurrent)
    loop = asyncio.get_running_loop()
    work = LogitsWork(
        model=model, loop=loop, future=loop.create_future(), rows=[ids, ids],
        steerings=[None, steering],
    )  # fmt: skip
    await registry.scheduler_for(model).submit(work)
    before, after = work.results
    return await tokens.off_loop(compare, before, after, steering, targets, top_k, work.device_ns)


@dataclass(frozen=True)
class Arm:
    """One arm of a Generate: its interventions and rules (the control arm has none)."""

    actions: list[Action]
    rules: list[Rule]


@dataclass(frozen=True)
class Token:
    arm: int
    step: int
    token_id: int
    token: str
    matches: list[tuple[Detector, int, float]]
    rule_events: list[tuple[int, str]]


@dataclass(frozen=True)
class Finished:
    arm: int
    new_tokens: list[int]
    text: str
    applied: dict[str, int]


async def generate(
    registry: ModelRegistry,
    name: str,
    content_hash: str,
    prompt: torch.Tensor,
    arms: list[Arm],
    sampling: Sampling,
    detectors: list[Detector],
) -> AsyncGenerator[Token | Finished, None]:
    """Each arm as one row of its model's decoding batch; its tokens, then its end, in order.

    Arms advance together, so their events interleave. Leaving the iterator early (the
    caller was cancelled) takes every arm out of the batch at the next step.
    """
    model = registry.ready(name, content_hash)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    future: asyncio.Future[None] = loop.create_future()
    left = len(arms)

    def finished(arm: int, new_tokens: list[int], error: BaseException | None) -> None:
        nonlocal left
        queue.put_nowait((arm, (new_tokens, error)))
        left -= 1
        if left == 0 and not future.done():
            future.set_result(None)

    rows = []
    steerings = []
    detect_points = frozenset(d.hook_point for d in detectors)
    resolving = time.time_ns()
    for index, arm in enumerate(arms):
        steering = Steering(list(arm.actions), int(prompt.shape[0]), model.is_recurrent)
        steerings.append(steering)
        rows.append(Row(
            prompt=prompt[None, :], steering=steering, sampling=sampling, rules=arm.rules,
            detect_points=detect_points,
            emit=on_loop(loop, lambda step, i=index: queue.put_nowait((i, step))),
            finish=on_loop(loop, lambda toks, err, i=index: finished(i, toks, err)),
            cancel=threading.Event(),
        ))  # fmt: skip
    trace = observability.current_context()
    observability.record_span("chunkscope.interventions", trace, resolving, time.time_ns(),
                              interventions=sum(len(a.actions) for a in arms))  # fmt: skip
    work = GenerateWork(model=model, loop=loop, future=future, rows=rows)
    task = asyncio.ensure_future(registry.scheduler_for(model).submit(work))
    # The decoding as one span per arm: its first token to its end, with what it produced
    # (the device thread's per-step work is shared by every row of the batch).
    first_token_ns: list[int] = [0] * len(arms)
    matched = [0] * len(arms)
    # Each arm's states so far at the sequential (DSC) dictionaries' hook points: a DSC chunk
    # spans several steps, so it is parsed over the running sequence, not one state at a time.
    history: list[dict[str, list[np.ndarray]]] = [{} for _ in arms]
    try:
        async for index, event in relay(queue, task):
            if isinstance(event, Step):
                first_token_ns[index] = first_token_ns[index] or time.time_ns()
                if detectors:  # matching is host work: the tokenizer pool
                    token = await tokens.off_loop(
                        _token, model, index, event, detectors, history[index]
                    )
                    matched[index] += len(token.matches)
                    yield token
                else:  # one token's text only: cheaper here than a thread hop
                    yield _token(model, index, event, detectors, history[index])
                continue
            new_tokens, error = event
            if error is not None:
                raise error
            observability.record_span(
                "chunkscope.decode", trace, first_token_ns[index] or time.time_ns(),
                time.time_ns(), arm=index, tokens=len(new_tokens), detections=matched[index],
            )  # fmt: skip
            text = await tokens.off_loop(_text, model, new_tokens)
            yield Finished(index, new_tokens, text, dict(steerings[index].applied))
        await task
    finally:
        if not task.done():
            task.cancel()


def _token(
    model: LoadedModel, arm: int, step: Step, detectors: list[Detector],
    history: dict[str, list[np.ndarray]],
) -> Token:  # fmt: skip
    """A generated token's text and detections (host work).

    A sequential (DSC) dictionary matches the newest state when a chunk of its parse of every
    state generated so far ends there or spans it; the other methods match each state on its own.
    """
    for point in {d.hook_point for d in detectors if d.sequential}:
        history.setdefault(point, []).append(step.states[point])
    matches = []
    for detector in detectors:
        if detector.sequential:
            states = np.concatenate(history[detector.hook_point], axis=0)
            result = detector.detect(states).since(-1)
        else:
            result = detector.detect(step.states[detector.hook_point])
        for entry in result.matches[0].nonzero()[0].tolist():
            matches.append((detector, entry, float(result.scores[0, entry])))
    token = decode_token(model, step.token_id)
    return Token(arm, step.step, step.token_id, token, matches, step.rule_events)


def _text(model: LoadedModel, new_tokens: list[int]) -> str:
    if model.is_recurrent:
        return " ".join(model.symbols[t] for t in new_tokens)
    return str(model.tokenizer.decode(new_tokens, skip_special_tokens=True))
