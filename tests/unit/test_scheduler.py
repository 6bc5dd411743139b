"""Correctness under batching: every request answered from a shared batch equals it run alone.

Real tiny models (random weights, built from configs) and the real scheduler. Requests mix
interventions, modes, hook points, seeds, temperatures, prompt lengths and stop conditions; each
is compared with the same request run alone.

Tolerances: a padded batch changes the shapes the kernels see (and adds masked positions), so
sums are accumulated in another order. Each reduction here has at most 64 float32 terms (the
models' widest dimension), so it can differ by about 64 * 6e-8 = 4e-6 of the magnitudes summed;
through 4 blocks of attention and MLP that stays below 1e-4 of a state's largest magnitude, the
bound used for states. Log-probabilities get the issue's bound, 1e-4 absolute.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from chunkscope.engine import loading
from chunkscope.engine import steering as st
from chunkscope.engine.capture import Segment, encode, forward_states
from chunkscope.engine.decoding import Cancelled, Row, Step, generate_alone
from chunkscope.engine.detection import Detector
from chunkscope.engine.hooks import hook_count
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.scheduler import CaptureWork, GenerateWork, LogitsWork, Scheduler
from support import save_tiny_lm

TEXTS = [
    "the cat sat",
    "a dog ran far away from the house",
    "the cat sat on the mat and then the dog came in and sat on it too",
    "cake",
    "on day two the cat slept near the window while the cake cooled",
    "mountains and rivers",
    "the dog",
    "coffee in the morning and tea at night, then coffee again",
    "a window",
    "the house on the hill",
]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = save_tiny_lm(tmp_path_factory.mktemp("lm") / "llama4", "llama", layers=4)
    return loading.load(loading.inspect_source(path, ""), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = save_tiny_lm(tmp_path_factory.mktemp("lm") / "gpt2", "gpt2", layers=2)
    return loading.load(loading.inspect_source(path, ""), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def gru(model_root: Path) -> LoadedModel:
    source = loading.inspect_source(model_root / "rnn-gru", "")
    return loading.load(source, torch.device("cpu"), torch.float32)


def _scheduler(delay_s: float = 0.0) -> Scheduler:
    return Scheduler("cpu", max_queue_depth=64, max_batch_tokens=4096, max_batch_delay_s=delay_s)


def _sample(name: str, kind: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def _close_states(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(1.0, float(np.abs(b).max())))


# ----- forward-only work ------------------------------------------------------------------------


def test_concurrent_captures_share_one_forward_and_each_equals_its_solo_run(
    llama: LoadedModel,
) -> None:
    points = [
        ("blocks.0.resid_post",),
        ("blocks.2.resid_post", "embed"),
        ("blocks.1.attn_out",),
        ("blocks.3.resid_post",),
    ]

    async def capture(scheduler: Scheduler, i: int) -> list[dict[str, torch.Tensor]]:
        [encoded] = encode(llama, [Segment(i, 0, TEXTS[i])], 128)
        loop = asyncio.get_running_loop()
        work = CaptureWork(model=llama, loop=loop, future=loop.create_future(),
                           rows=[encoded.ids], hook_points=points[i % len(points)])  # fmt: skip
        await scheduler.submit(work)
        return [{p: t[: len(encoded.ids)] for p, t in work.results[0].items()}]

    async def scenario() -> tuple[list[Any], list[Any], float, float]:
        alone_scheduler, shared = _scheduler(), _scheduler(delay_s=0.5)
        alone = [await capture(alone_scheduler, i) for i in range(len(TEXTS))]
        count, rows = (
            _sample("chunkscope_batch_rows_count", "capture"),
            _sample("chunkscope_batch_rows_sum", "capture"),
        )
        together = await asyncio.gather(*(capture(shared, i) for i in range(len(TEXTS))))
        batches = _sample("chunkscope_batch_rows_count", "capture") - count
        batched_rows = _sample("chunkscope_batch_rows_sum", "capture") - rows
        alone_scheduler.close()
        shared.close()
        return alone, list(together), batches, batched_rows

    alone, together, batches, batched_rows = asyncio.run(scenario())
    # The delay let every request join the first one's forward.
    assert (batches, batched_rows) == (1, len(TEXTS))
    for a, b in zip(alone, together, strict=True):
        assert a[0].keys() == b[0].keys()
        for point in a[0]:
            _close_states(b[0][point].numpy(), a[0][point].numpy())
    assert hook_count(llama.module) == 0


def test_forward_only_work_stops_at_its_deepest_hook_point(llama: LoadedModel) -> None:
    calls: dict[str, int] = {}
    watched = {f"block {i}": llama.module.model.layers[i] for i in range(4)}
    watched["lm_head"] = llama.module.lm_head
    handles = [
        module.register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls.get(n, 0) + 1))
        for name, module in watched.items()
    ]
    rows = [e.ids for e in encode(llama, [Segment(0, 0, t) for t in TEXTS[:3]], 128)]
    try:
        early = forward_states(llama, rows, ["blocks.1.resid_post", "embed"], early_exit=True)
        assert calls == {"block 0": 1, "block 1": 1}  # blocks 2-3 and the LM head never ran
        calls.clear()
        full = forward_states(llama, rows, ["blocks.1.resid_post", "embed"], early_exit=False)
        assert calls == {"block 0": 1, "block 1": 1, "block 2": 1, "block 3": 1, "lm_head": 1}
        for point in early:  # the same computation up to where it stopped: bit for bit
            assert torch.equal(early[point], full[point])
        calls.clear()
        st.last_logprobs(llama, rows, [None] * len(rows))
        assert calls.get("lm_head") == 1  # Perturb needs the logits: whole forward
    finally:
        for handle in handles:
            handle.remove()


def _actions(model: LoadedModel, i: int, prompt_length: int) -> list[st.Action]:
    """A different intervention per request (none for every third)."""
    d = model.hidden_size
    rng = np.random.default_rng(i)
    direction = rng.normal(size=d).astype(np.float32)
    direction /= np.linalg.norm(direction)
    point = ["blocks.0.resid_post", "blocks.1.resid_post", "blocks.0.mlp_out"][i % 3]
    if model.is_recurrent:
        point = "rnn.hidden"
    positions = tuple(range(0, prompt_length, 1 + i % 2))
    if i % 3 == 0:
        return []
    if i % 3 == 1:
        return [st.Action(point, "add", direction, alpha=2.0 + i, prompt_positions=positions,
                          generated=True)]  # fmt: skip
    values = rng.normal(size=d).astype(np.float32)
    return [
        st.Action(point, "project_out", direction, prompt_positions=positions, generated=True),
        st.Action(point, "activate", direction, values=values, prompt_positions=positions[:1]),
    ]


@pytest.mark.parametrize("family", ["llama", "gru"])
def test_concurrent_perturbs_each_see_only_their_own_interventions(
    family: str, request: pytest.FixtureRequest
) -> None:
    model: LoadedModel = request.getfixturevalue(family)
    prompts = _prompts(model, len(TEXTS))

    async def perturb(scheduler: Scheduler, i: int) -> tuple[list[torch.Tensor], dict[str, int]]:
        ids = prompts[i]
        steering = st.Steering(_actions(model, i, len(ids)), len(ids), model.is_recurrent)
        loop = asyncio.get_running_loop()
        work = LogitsWork(model=model, loop=loop, future=loop.create_future(), rows=[ids, ids],
                          steerings=[None, steering])  # fmt: skip
        await scheduler.submit(work)
        return work.results, steering.applied

    async def scenario() -> tuple[list[Any], list[Any]]:
        alone_scheduler, shared = _scheduler(), _scheduler(delay_s=0.5)
        alone = [await perturb(alone_scheduler, i) for i in range(len(TEXTS))]
        together = await asyncio.gather(*(perturb(shared, i) for i in range(len(TEXTS))))
        alone_scheduler.close()
        shared.close()
        return alone, list(together)

    alone, together = asyncio.run(scenario())
    for i, ((solo, solo_applied), (batched, batched_applied)) in enumerate(
        zip(alone, together, strict=True)
    ):
        assert solo_applied == batched_applied
        for a, b in zip(solo, batched, strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
        if i % 3 == 0:  # no intervention: before and after are the same row's computation
            torch.testing.assert_close(batched[1], batched[0], rtol=0, atol=1e-4)
        else:
            assert float((batched[1] - batched[0]).abs().max()) > 1e-3
    assert hook_count(model.module) == 0


# ----- generation -------------------------------------------------------------------------------


def _always(model: LoadedModel, point: str) -> Detector:
    """A PA dictionary whose one entry fires on every state (a radius nothing exceeds)."""
    manifest = {"id": "always", "method": "population_averaging", "hook_point": point,
                "entries": [{"label": "any"}], "parameters": {}}  # fmt: skip
    tensors = {
        "radius": np.array([1e30]),
        "neuron_offsets": np.array([0, 2]),
        "neurons": np.array([0, 1]),
        "prototype": np.zeros(2, np.float32),
    }
    return Detector(manifest, tensors)


def _request(model: LoadedModel, i: int, prompt: torch.Tensor) -> dict[str, Any]:
    """Request i's arm: interventions, sampling, rules and detection all vary with i."""
    point = "rnn.hidden" if model.is_recurrent else "blocks.1.resid_post"
    sampling = st.Sampling(
        max_new_tokens=3 + (i * 5) % 11,
        temperature=0.0 if i % 2 == 0 else 0.9,
        top_p=0.9 if i % 4 == 1 else 0.0,
        top_k=5 if i % 4 == 3 else 0,
        seed=100 + i,
        stop_at_eos=i % 5 == 0,
    )
    rules = []
    if i % 4 == 2:  # stop after 2 tokens on which the detector fires (every token)
        rules = [st.Rule(_always(model, point), 0, 2, None)]
    detect = frozenset({point}) if i % 3 == 1 else frozenset()
    return {
        "actions": _actions(model, i, int(prompt.shape[0])),
        "sampling": sampling,
        "rules": rules,
        "detect_points": detect,
    }


def _prompts(model: LoadedModel, n: int) -> list[torch.Tensor]:
    if model.is_recurrent:
        symbols = list(model.symbols)
        return [torch.tensor([(i + k) % len(symbols) for k in range(2 + i)]) for i in range(n)]
    return [e.ids for e in encode(model, [Segment(i, 0, TEXTS[i]) for i in range(n)], 128)]


def _alone(model: LoadedModel, prompt: torch.Tensor, req: dict[str, Any]) -> dict[str, Any]:
    steps: list[Step] = []
    steering = st.Steering(list(req["actions"]), int(prompt.shape[0]), model.is_recurrent)
    tokens = generate_alone(model, prompt, steering, req["sampling"], req["rules"],
                            req["detect_points"], steps.append)  # fmt: skip
    return {"tokens": tokens, "steps": steps, "applied": steering.applied}


async def _generate(
    scheduler: Scheduler, model: LoadedModel, prompts: Sequence[torch.Tensor],
    requests: Sequence[dict[str, Any]], stagger: bool, cancel_at: dict[int, int] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every request as one row; later ones join while earlier ones decode (with `stagger`).

    Rows that arrive together are prefilled together (one left-padded forward).
    """
    loop = asyncio.get_running_loop()
    cancel_at = cancel_at or {}
    out: list[dict[str, Any]] = []

    async def one(i: int) -> dict[str, Any]:
        if stagger:  # in threes: rows join a running batch, several at a time
            await asyncio.sleep(0.05 * (i // 3))
        req, prompt = requests[i], prompts[i]
        steps: list[Step] = []
        ended: list[tuple[list[int], BaseException | None]] = []
        cancel = threading.Event()
        steering = st.Steering(list(req["actions"]), int(prompt.shape[0]), model.is_recurrent)
        future = loop.create_future()

        def emit(step: Step) -> None:
            steps.append(step)
            if cancel_at.get(i) == step.step:
                cancel.set()

        def finish(tokens: list[int], error: BaseException | None) -> None:
            ended.append((tokens, error))
            loop.call_soon_threadsafe(future.set_result, None)

        row = Row(prompt=prompt[None, :], steering=steering, sampling=req["sampling"],
                  rules=req["rules"], detect_points=req["detect_points"], emit=emit,
                  finish=finish, cancel=cancel)  # fmt: skip
        await scheduler.submit(GenerateWork(model=model, loop=loop, future=future, rows=[row]))
        [(tokens, error)] = ended
        return {"tokens": tokens, "steps": steps, "applied": steering.applied, "error": error}

    out = list(await asyncio.gather(*(one(i) for i in range(len(requests)))))
    return out


def _same_generation(solo: dict[str, Any], batched: dict[str, Any]) -> None:
    assert batched["tokens"] == solo["tokens"]
    assert batched["applied"] == solo["applied"]
    assert [s.step for s in batched["steps"]] == [s.step for s in solo["steps"]]
    for a, b in zip(solo["steps"], batched["steps"], strict=True):
        assert (a.token_id, a.rule_events) == (b.token_id, b.rule_events)
        assert a.states.keys() == b.states.keys()
        for point in a.states:
            _close_states(b.states[point], a.states[point])


@pytest.mark.parametrize("family", ["llama", "gpt2", "gru"])
def test_continuous_batching_gives_every_row_its_solo_generation(
    family: str, request: pytest.FixtureRequest
) -> None:
    model: LoadedModel = request.getfixturevalue(family)
    n = 10
    prompts = _prompts(model, n)
    requests = [_request(model, i, prompts[i]) for i in range(n)]
    solo = [_alone(model, prompts[i], requests[i]) for i in range(n)]
    scheduler = _scheduler()
    try:
        batched = asyncio.run(_generate(scheduler, model, prompts, requests, stagger=True))
    finally:
        scheduler.close()
    for i in range(n):
        assert batched[i]["error"] is None
        _same_generation(solo[i], batched[i])
    # The requests really varied: stop rules cut rows short, lengths differ, tokens differ.
    assert len({len(s["tokens"]) for s in solo}) > 3
    assert all(len(solo[i]["tokens"]) == 2 for i in range(n) if requests[i]["rules"])
    assert hook_count(model.module) == 0


def test_a_cancelled_row_leaves_at_the_next_step_and_the_others_carry_on(
    llama: LoadedModel,
) -> None:
    n = 6
    prompts = _prompts(llama, n)
    requests = [_request(llama, i, prompts[i]) for i in range(n)]
    for req in requests:  # long enough to be cancelled midway, no early stops
        req["sampling"] = st.Sampling(12, 0.0, 0.0, 0, 1, False)
        req["rules"] = []
    solo = [_alone(llama, prompts[i], requests[i]) for i in range(n)]
    scheduler = _scheduler()
    try:
        batched = asyncio.run(
            _generate(scheduler, llama, prompts, requests, stagger=False, cancel_at={2: 3})
        )
    finally:
        scheduler.close()
    assert isinstance(batched[2]["error"], Cancelled)
    assert batched[2]["tokens"] == solo[2]["tokens"][:4]  # steps 0-3, then it left
    for i in set(range(n)) - {2}:
        _same_generation(solo[i], batched[i])
    assert hook_count(llama.module) == 0


def test_dsc_chunks_are_parsed_over_the_running_state_sequence_of_a_generation(
    gru: LoadedModel,
) -> None:
    """A two-state chunk matches when its second state is generated, seen with the first."""
    from chunkscope.engine.serving import _token

    manifest = {"id": "dsc", "method": "discrete_sequence_chunking", "hook_point": "rnn.hidden",
                "entries": [{"label": "low-high"}], "parameters": {}}  # fmt: skip
    tensors = {
        "centroids": np.array([[0.0, 1.0]] + [[0.0, 0.0]] * (gru.hidden_size - 1)),
        "state_bins": np.array([[0] * gru.hidden_size, [1] + [0] * (gru.hidden_size - 1)]),
        "chunk_offsets": np.array([0, 2]),
        "chunk_states": np.array([0, 1]),  # state 0 (neuron 0 low), then state 1 (high)
    }
    detector = Detector(manifest, tensors)
    low, high = np.zeros((1, gru.hidden_size)), np.zeros((1, gru.hidden_size))
    high[0, 0] = 1.0
    history: dict[str, list[np.ndarray]] = {}
    first = _token(gru, 0, Step(0, 0, {"rnn.hidden": low}, []), [detector], history)
    second = _token(gru, 0, Step(1, 0, {"rnn.hidden": high}, []), [detector], history)
    assert first.matches == []  # half a chunk: nothing yet
    assert [(d.id, entry) for d, entry, _ in second.matches] == [("dsc", 0)]
    # The same state on its own is no chunk: the match came from the running sequence.
    assert _token(gru, 0, Step(0, 0, {"rnn.hidden": high}, []), [detector], {}).matches == []


def test_a_model_split_by_a_device_map_is_one_placement_and_computes_the_same(
    llama: LoadedModel, tmp_path: Path
) -> None:
    """accelerate's split on a CPU-only machine: blocks 2-3 offloaded to disk, the rest on CPU.

    The placement names both; capture (stopping early or not) and generation through the
    scheduler give what the model loaded whole gives.
    """
    source = loading.inspect_source(Path(llama.module.name_or_path), "")
    split_map = {
        "model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
        "model.layers.1": "cpu", "model.layers.2": "disk", "model.layers.3": "disk",
        "model.norm": "cpu", "lm_head": "cpu",
    }  # fmt: skip
    split = loading.load(source, torch.device("cpu"), torch.float32, split_map,
                         str(tmp_path / "offload"))  # fmt: skip
    assert split.placement == ("cpu", "disk") and llama.placement == ("cpu",)
    # Really offloaded: between forwards the block's weights are not in memory.
    assert {p.device.type for p in split.module.model.layers[3].parameters()} == {"meta"}
    assert {p.device.type for p in split.module.model.layers[1].parameters()} == {"cpu"}
    rows = [e.ids for e in encode(llama, [Segment(i, 0, t) for i, t in enumerate(TEXTS[:4])], 64)]
    points = ["blocks.1.resid_post", "blocks.3.resid_post"]
    for early in (True, False):
        whole = forward_states(llama, rows, points, early)
        parts = forward_states(split, rows, points, early)
        for point in points:
            _close_states(parts[point].numpy(), whole[point].numpy())
    prompts = _prompts(llama, 4)
    requests = [_request(llama, i, prompts[i]) for i in range(4)]
    scheduler = _scheduler()
    try:
        batched = asyncio.run(_generate(scheduler, split, prompts, requests, stagger=False))
    finally:
        scheduler.close()
    for i in range(4):
        _same_generation(_alone(llama, prompts[i], requests[i]), batched[i])
    assert hook_count(split.module) == 0
