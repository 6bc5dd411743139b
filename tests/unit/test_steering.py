"""Interventions as data: what each mode does to h, and that hooks never outlive a request."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from chunkscope.engine import decoding, loading
from chunkscope.engine import steering as st
from chunkscope.engine.hooks import hook_count

H = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]])


def test_activate_sets_only_the_chunk_neurons() -> None:
    action = st.Action("x", "activate", np.zeros(4, np.float32), neurons=np.array([1, 3]),
                       values=np.array([9.0, 8.0], np.float32))  # fmt: skip
    out = st.apply(action, H)
    assert out.tolist() == [[1.0, 9.0, 3.0, 8.0], [-1.0, 9.0, 0.0, 8.0]]
    assert H[0, 1] == 2.0  # the input is not modified in place


def test_inhibit_zeroes_the_chunk_neurons_and_projects_vector_chunks() -> None:
    pa = st.Action("x", "inhibit", np.zeros(4, np.float32), neurons=np.array([0, 2]))
    assert st.apply(pa, H).tolist() == [[0.0, 2.0, 0.0, 4.0], [0.0, 0.5, 0.0, 2.0]]
    direction = np.array([0.0, 0.0, 0.0, 1.0], np.float32)
    vector = st.Action("x", "inhibit", direction, values=direction)
    assert st.apply(vector, H)[:, 3].tolist() == [0.0, 0.0]


def test_add_and_project_out() -> None:
    direction = np.array([0.6, 0.8, 0.0, 0.0], np.float32)
    added = st.apply(st.Action("x", "add", direction, alpha=2.0), H)
    torch.testing.assert_close(added - H, torch.tensor([[1.2, 1.6, 0, 0], [1.2, 1.6, 0, 0]]))
    projected = st.apply(st.Action("x", "project_out", direction), H)
    torch.testing.assert_close(projected @ torch.tensor(direction), torch.zeros(2))


def test_cosine_activation_keeps_the_state_norm() -> None:
    atom = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    out = st.apply(st.Action("x", "activate", atom, values=atom, scale_to_norm=True), H)
    torch.testing.assert_close(out.norm(dim=1), H.norm(dim=1))
    assert out[:, 1].tolist() == pytest.approx(H.norm(dim=1).tolist())


def test_prompt_positions_apply_in_prefill_and_generated_ones_while_decoding(
    model_root: Path,
) -> None:
    model = loading.load(loading.inspect_source(model_root / "tiny-llama", ""), torch.device("cpu"),
                         torch.float32)  # fmt: skip
    direction = np.ones(32, np.float32) / np.sqrt(32)
    action = st.Action("blocks.0.resid_post", "add", direction, alpha=3.0, prompt_positions=(1,),
                       generated=True)  # fmt: skip
    steering = st.Steering([action], prompt_length=4, recurrent=False)
    seen: list[decoding.Step] = []
    sampling = st.Sampling(5, 0.0, 0.0, 0, 0, False)
    ids = torch.tensor([5, 6, 7, 8])
    tokens = decoding.generate_alone(model, ids, steering, sampling, emit=seen.append)
    assert len(tokens) == 5 and [s.step for s in seen] == [0, 1, 2, 3, 4]
    assert steering.applied == {"add": 1 + 5}  # one prompt position, then each new token
    assert hook_count(model.module) == 0


def test_hooks_are_removed_when_generation_is_cancelled(model_root: Path) -> None:
    model = loading.load(loading.inspect_source(model_root / "rnn-gru", ""), torch.device("cpu"),
                         torch.float32)  # fmt: skip
    cancel = threading.Event()
    action = st.Action("rnn.hidden", "add", np.ones(12, np.float32), alpha=1.0, generated=True)
    steering = st.Steering([action], prompt_length=3, recurrent=True)
    outcome: list[tuple[list[int], BaseException | None]] = []

    def emit(step: decoding.Step) -> None:
        if step.step == 2:
            cancel.set()

    row = decoding.Row(
        prompt=torch.tensor([[0, 1, 2]]), steering=steering,
        sampling=st.Sampling(50, 1.0, 0.9, 0, 3, False), rules=[], detect_points=frozenset(),
        emit=emit, finish=lambda tokens, error: outcome.append((tokens, error)), cancel=cancel,
    )  # fmt: skip
    group = decoding.Group(model)
    group.join([row])
    while group.rows:
        group.step()
    [(tokens, error)] = outcome
    assert isinstance(error, decoding.Cancelled) and len(tokens) == 3  # left at the next step
    assert hook_count(model.module) == 0
    assert steering.applied == {"add": 3}


def test_project_out_is_measured_from_the_center() -> None:
    direction = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    center = np.array([0.0, 10.0, 0.0, 0.0], np.float32)
    out = st.apply(st.Action("x", "project_out", direction, center=center), H)
    # The component along the direction becomes the center's, not zero.
    assert out[:, 1].tolist() == [10.0, 10.0]
    assert out[:, [0, 2, 3]].tolist() == H[:, [0, 2, 3]].tolist()


def test_a_temperature_too_small_to_divide_by_is_greedy() -> None:
    import torch

    from chunkscope.engine.steering import Sampling, sample

    logits = torch.tensor([1.0, 9.5, 3.0, -2.0])
    for temperature in (5e-324, 1e-40, 1e-12):
        s = Sampling(4, temperature, 0.0, 0, 0, False)
        assert sample(logits, s, torch.Generator().manual_seed(0)) == 1
