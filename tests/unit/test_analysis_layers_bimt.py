"""Known answers for layer grouping, the PNG heatmap, and the BIMT cost and neuron swaps."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from chunkscope.analysis import bimt, compare, layers
from chunkscope.analysis.states import States
from chunkscope.engine.recurrent import RecurrentConfig, RecurrentLM


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def planted_layers(seed: int = 0) -> list[States]:
    """[X, XQ1, 2·XQ2, g(X), g(X)Q3, g(X)Q4 + 1], g strongly non-linear: groups {0,1,2}, {3,4,5}."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 6))
    g = np.sin(3 * x[:, :3]) * np.exp(x[:, 3:]) ** 2
    out = [x, x @ _orthogonal(6, 1), 2 * x @ _orthogonal(6, 2), g, g @ _orthogonal(3, 3),
           g @ _orthogonal(3, 4) + 1.0]  # fmt: skip
    return [States.from_array(a) for a in out]


@pytest.mark.parametrize("measure", ["linear_cka", "procrustes", "gromov_wasserstein"])
@pytest.mark.parametrize("contiguous", [False, True])
def test_planted_groups_of_layers_are_recovered(measure: str, contiguous: bool) -> None:
    lm = compare.layer_matrix(measure, planted_layers(), compare.Params())
    m = lm.matrix
    assert np.allclose(m, m.T)
    dis = 1 - m if measure == "linear_cka" else m
    assert np.allclose(np.diag(dis), 0, atol=1e-9)
    grouping = layers.group_layers(dis, contiguous=contiguous)
    assert grouping.groups == [[0, 1, 2], [3, 4, 5]], grouping.description


def test_interleaved_groups_need_the_unconstrained_clustering() -> None:
    base = planted_layers()
    order = [0, 3, 1, 4, 2, 5]
    lm = compare.layer_matrix("linear_cka", [base[i] for i in order], compare.Params())
    dis = 1 - lm.matrix
    assert layers.group_layers(dis).groups == [[0, 2, 4], [1, 3, 5]]
    # contiguous groups cannot interleave: it must return ranges
    for group in layers.group_layers(dis, contiguous=True, n_groups=2).groups:
        assert group == list(range(group[0], group[-1] + 1))


def test_grouping_by_count_and_threshold() -> None:
    d = np.array([[0, 1, 5, 5], [1, 0, 5, 5], [5, 5, 0, 2], [5, 5, 2, 0]], dtype=float)
    assert layers.group_layers(d, n_groups=3).groups == [[0, 1], [2], [3]]
    assert layers.group_layers(d, threshold=1.5).groups == [[0, 1], [2], [3]]
    assert layers.group_layers(d, threshold=3).groups == [[0, 1], [2, 3]]
    assert layers.group_layers(d, n_groups=1).groups == [[0, 1, 2, 3]]
    assert layers.mean_within(d, [2, 3]) == 2.0


def test_heatmap_is_a_valid_png() -> None:
    m = np.array([[0.0, 1.0], [1.0, 0.0]])
    png = layers.heatmap_png(m, cell=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (6, 6)
    idat_len = struct.unpack(">I", png[33:37])[0]
    assert png[37:41] == b"IDAT"
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert len(raw) == 6 * (1 + 6 * 3)
    rows = [raw[r * 19 + 1 : (r + 1) * 19] for r in range(6)]
    assert rows[0][:3] == bytes([68, 1, 84])  # 0 -> darkest
    assert rows[0][9:12] == bytes([253, 231, 37])  # 1 -> brightest


# ----- BIMT --------------------------------------------------------------------------------------

P = bimt.CostParams(weight_factor=1.0, layer_distance=0.2)


def test_connection_cost_by_hand_and_the_swap_that_would_raise_it() -> None:
    w1, b1, w2 = np.array([[1.0, 2], [3, 4]]), np.array([0.5, -0.5]), np.eye(2)
    cost = bimt.connection_cost(bimt.dense_graph([w1, w2], [b1, None]), P)
    assert cost.total == pytest.approx(5.1)
    assert cost.bias_cost == pytest.approx(0.2)
    w, b = bimt.permute_dense([w1, w2], [b1, None], {"hidden.0": np.array([1, 0])})
    assert bimt.connection_cost(bimt.dense_graph(w, b), P).total == pytest.approx(6.1)
    kept = bimt.optimize_layout(bimt.dense_graph([w1, w2], [b1, None]), P)
    assert kept.swaps == 0 and kept.orders["hidden.0"].tolist() == [0, 1]
    assert kept.cost_after == pytest.approx(5.1)


def test_planted_modules_become_blocks() -> None:
    rng = np.random.default_rng(0)
    n = 12
    w1, w2 = np.zeros((n, 2)), np.zeros((2, n))
    for i in range(n):  # interleaved: even units serve input/output 0, odd ones 1
        w1[i, i % 2] = rng.uniform(0.5, 1)
        w2[i % 2, i] = rng.uniform(0.5, 1)
    r = bimt.optimize_layout(bimt.dense_graph([w1, w2], [None, None]), P)
    assert r.cost_after < r.cost_before
    w, _ = bimt.permute_dense([w1, w2], [None, None], r.orders)
    assert (w[0][:6, 0] > 0).all() and (w[0][6:, 1] > 0).all()  # two contiguous blocks
    assert (w[0][:6, 1] == 0).all() and (w[0][6:, 0] == 0).all()


def test_swaps_keep_the_function_and_never_raise_the_cost() -> None:
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=(30, 8)), rng.normal(size=(30, 30)), rng.normal(size=(4, 30))]
    bs = [rng.normal(size=30), rng.normal(size=30), None]
    graph = bimt.dense_graph(ws, bs)
    r = bimt.optimize_layout(graph, P, top_k=10)
    assert r.cost_after <= r.cost_before and r.swaps > 0
    w, b = bimt.permute_dense(ws, bs, r.orders)
    # the incremental search's bookkeeping matches a cost computed from scratch
    assert bimt.connection_cost(bimt.dense_graph(w, b), P).total == pytest.approx(r.cost_after)
    x = rng.normal(size=(50, 8))
    difference = np.abs(bimt.dense_forward(ws, bs, x) - bimt.dense_forward(w, b, x))
    assert np.all(difference <= 2 * _forward_rounding_bound(ws, bs, x))


def _forward_rounding_bound(
    weights: list[np.ndarray], biases: list[np.ndarray | None], x: np.ndarray
) -> np.ndarray:
    """How far rounding can move dense_forward's outputs: each dot product of n terms is off by
    at most n·eps·Σ|terms| (Higham, Thm 3.1), tanh is 1-Lipschitz and rounds once, and earlier
    errors pass through |W|. Reordering the units changes only the order of the sums."""
    eps = np.finfo(np.float64).eps
    h, error = x, np.zeros_like(x)
    for k, w in enumerate(weights):
        bias = biases[k] if biases[k] is not None else np.zeros(w.shape[0])
        scale = np.abs(h) @ np.abs(w).T + np.abs(bias)
        error = error @ np.abs(w).T + (w.shape[1] + 1) * eps * scale
        h = h @ w.T + bias
        if k < len(weights) - 1:
            h = np.tanh(h)
            error = error + eps * np.abs(h)
    return error


@pytest.mark.parametrize("architecture", ["elman", "gru", "lstm"])
def test_recurrent_swaps_keep_the_outputs(architecture: str) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(RecurrentConfig(architecture, tuple("ABCDE"), 10)).double()
    state = model.state_dict()
    graph = bimt.recurrent_graph(architecture, state, 5)
    r = bimt.optimize_layout(graph, P)
    assert r.cost_after <= r.cost_before
    moved = bimt.permute_recurrent(architecture, state, 5, r.orders["rnn.hidden"])
    again = bimt.connection_cost(bimt.recurrent_graph(architecture, moved, 5), P).total
    assert again == pytest.approx(r.cost_after)
    other = RecurrentLM(model.config).double()
    other.load_state_dict(moved)
    tokens = bimt.one_hot_inputs(5, 4, 30)
    with torch.no_grad():
        # Reordering changes only the order of sums of 11-15 terms of size < 3 over 30 steps of a
        # contracting recurrence: rounding bounds that by about 30·15·eps·3 ≈ 3e-13.
        assert (model(tokens)[0] - other(tokens)[0]).abs().max() < 1e-12
        # the hidden states are the same units, reordered
        h0, h1 = model(tokens)[1], other(tokens)[1]
        assert torch.allclose(h0[..., torch.as_tensor(r.orders["rnn.hidden"])], h1)


def test_cost_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="weight_factor"):
        bimt.CostParams(weight_factor=-1).validate()
    with pytest.raises(ValueError, match="inputs"):
        bimt.check_dense([np.ones((3, 2)), np.ones((2, 4))], [None, None])
