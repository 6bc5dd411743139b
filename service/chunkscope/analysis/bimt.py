"""BIMT connection cost (Liu, Gan, Tegmark 2023) and the function-preserving neuron swap step.

Neurons of each layer sit on a line: neuron at slot s of a layer of n sits at x = (s + ½)/n;
successive layers are l0 apart. The cost of a weight matrix W from layer a to layer b is
Σ_ij |W_ij| · (A·|x_i − x_j| + gap·l0) (gap = number of layer steps between a and b), plus
Σ|b|·l0 for biases (permutation-invariant). Recurrent weights (h_{t−1} → h_t) are read as a
connection from the hidden layer to itself one step later (gap 1, the network unrolled in time);
gated cells (GRU, LSTM) place all gates of a unit at the unit's position, so their |W| add up.

`optimize_layout` swaps neurons within permutable (hidden) layers: for each neuron, most important
first (Σ|incoming| + Σ|outgoing|), the swap partner that lowers the cost most is taken, if any;
passes repeat until one makes no swap. Only hidden layers move, so inputs and outputs keep their
meaning and the network computes the same function; the cost never increases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope.analysis.states import ProgressFn, no_progress

MAX_LAYOUT_WIDTH = 1024  # neurons per permutable layer the swap search accepts


@dataclass(frozen=True)
class CostParams:
    weight_factor: float = 1.0  # A
    layer_distance: float = 0.1  # l0
    include_biases: bool = True

    def validate(self) -> None:
        if not (np.isfinite(self.weight_factor) and self.weight_factor >= 0):
            raise ValueError("weight_factor must be a finite number >= 0")
        if not (np.isfinite(self.layer_distance) and self.layer_distance >= 0):
            raise ValueError("layer_distance must be a finite number >= 0")


@dataclass(frozen=True)
class NeuronLayer:
    name: str
    size: int
    permutable: bool


@dataclass(frozen=True)
class Connection:
    name: str
    src: int  # index into Graph.layers
    dst: int
    magnitude: np.ndarray  # |W| summed over gates, [size(dst), size(src)], float64
    gap: int = 1


@dataclass
class Graph:
    """What the cost sees of a network: neuron layers, |W| between them, Σ|b| per layer."""

    layers: list[NeuronLayer]
    connections: list[Connection]
    bias_abs_sum: float = 0.0
    orders: list[np.ndarray] = field(default_factory=list)  # order[slot] = neuron index

    def __post_init__(self) -> None:
        if not self.orders:
            self.orders = [np.arange(layer.size) for layer in self.layers]

    def positions(self, layer: int) -> np.ndarray:
        """x of each neuron (by neuron index) under the current order."""
        n = self.layers[layer].size
        x = np.empty(n)
        x[self.orders[layer]] = (np.arange(n) + 0.5) / n
        return x


@dataclass(frozen=True)
class CostBreakdown:
    total: float
    terms: list[tuple[str, str, str, float]]  # (connection, from layer, to layer, cost)
    bias_cost: float


def connection_cost(graph: Graph, params: CostParams) -> CostBreakdown:
    params.validate()
    terms = []
    for c in graph.connections:
        dist = np.abs(graph.positions(c.dst)[:, None] - graph.positions(c.src)[None, :])
        if c.src == c.dst:
            np.fill_diagonal(dist, 0.0)
        cost = float(np.sum(c.magnitude * (params.weight_factor * dist
                                           + c.gap * params.layer_distance)))  # fmt: skip
        terms.append((c.name, graph.layers[c.src].name, graph.layers[c.dst].name, cost))
    bias = graph.bias_abs_sum * params.layer_distance if params.include_biases else 0.0
    return CostBreakdown(sum(t[3] for t in terms) + bias, terms, bias)


def _placement_costs(graph: Graph, layer: int, a: float) -> np.ndarray:
    """F[i, s]: distance cost of neuron i's links if it sat at slot s, others where they are."""
    n = graph.layers[layer].size
    slots = (np.arange(n) + 0.5) / n
    f = np.zeros((n, n))
    for c in graph.connections:
        if c.dst == layer:
            src_x = graph.positions(c.src)
            m = c.magnitude.copy()
            if c.src == layer:
                np.fill_diagonal(m, 0.0)
            f += m @ np.abs(src_x[:, None] - slots[None, :])
        if c.src == layer:
            dst_x = graph.positions(c.dst)
            m = c.magnitude.copy()
            if c.dst == layer:
                np.fill_diagonal(m, 0.0)
            f += m.T @ np.abs(dst_x[:, None] - slots[None, :])
    return a * f


def _importance(graph: Graph, layer: int) -> np.ndarray:
    score = np.zeros(graph.layers[layer].size)
    for c in graph.connections:
        if c.dst == layer:
            score += c.magnitude.sum(axis=1)
        if c.src == layer:
            score += c.magnitude.sum(axis=0)
    return score


@dataclass(frozen=True)
class LayoutResult:
    cost_before: float
    cost_after: float
    orders: dict[str, np.ndarray]  # per permutable layer: order[slot] = original neuron index
    swaps: int
    rounds: int


def optimize_layout(
    graph: Graph, params: CostParams, *, max_rounds: int = 10, top_k: int = 0,
    progress: ProgressFn = no_progress,
) -> LayoutResult:  # fmt: skip
    """Greedy function-preserving swaps within permutable layers (see the module docstring)."""
    params.validate()
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    if top_k < 0:
        raise ValueError("top_k must be >= 0 (0 = every neuron)")
    for layer in graph.layers:
        if layer.permutable and layer.size > MAX_LAYOUT_WIDTH:
            raise ValueError(
                f"layer {layer.name} has {layer.size} neurons; the swap search takes at most "
                f"{MAX_LAYOUT_WIDTH} per layer"
            )
    before = connection_cost(graph, params).total
    a = params.weight_factor
    swaps = rounds = 0
    movable = [i for i, layer in enumerate(graph.layers) if layer.permutable and layer.size > 1]
    for rounds in range(1, max_rounds + 1):
        made = 0
        for li in movable:
            n = graph.layers[li].size
            candidates = np.argsort(-_importance(graph, li), kind="stable")
            if top_k:
                candidates = candidates[:top_k]
            self_links = [c.magnitude for c in graph.connections if c.src == li and c.dst == li]
            f = _placement_costs(graph, li, a)
            for j in candidates.tolist():
                slot_of = np.empty(n, dtype=np.int64)
                slot_of[graph.orders[li]] = np.arange(n)
                x = (slot_of + 0.5) / n
                sj = slot_of[j]
                # Δ(j, k) for every k: j moves to k's slot and k to j's
                delta = f[j, slot_of] + f[np.arange(n), sj] - f[j, sj] - f[np.arange(n), slot_of]
                for s in self_links:  # the j-k links themselves keep their length
                    delta += 2 * a * (s[j, :] + s[:, j]) * np.abs(x[j] - x)
                delta[j] = 0.0
                k = int(np.argmin(delta))
                if delta[k] < -1e-12 * max(before, 1e-300):
                    order = graph.orders[li]
                    order[sj], order[slot_of[k]] = k, j
                    made += 1
                    f = _placement_costs(graph, li, a)
        swaps += made
        progress(rounds, max_rounds)
        if not made:
            break
    after = connection_cost(graph, params).total
    orders = {graph.layers[i].name: graph.orders[i].copy() for i in movable}
    return LayoutResult(before, min(after, before), orders, swaps, rounds)


# ----- feed-forward networks (inline weights) ---------------------------------------------------


def dense_graph(weights: list[np.ndarray], biases: list[np.ndarray | None]) -> Graph:
    """Graph of an MLP: weights[k] is [out, in]; hidden layers are permutable."""
    if not weights:
        raise ValueError("a network needs at least one layer")
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    names = ["input"] + [f"hidden.{k}" for k in range(len(weights) - 1)] + ["output"]
    layers = [NeuronLayer(nm, s, 0 < i < len(sizes) - 1)
              for i, (nm, s) in enumerate(zip(names, sizes, strict=True))]  # fmt: skip
    conns = [Connection(f"layers.{k}.weight", k, k + 1, np.abs(np.asarray(w, np.float64)))
             for k, w in enumerate(weights)]  # fmt: skip
    bias = float(sum(np.abs(b).sum() for b in biases if b is not None))
    return Graph(layers, conns, bias)


def check_dense(weights: list[np.ndarray], biases: list[np.ndarray | None]) -> None:
    for k, w in enumerate(weights):
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"layers[{k}].weight must be [out_features, in_features]")
        if k and w.shape[1] != weights[k - 1].shape[0]:
            raise ValueError(
                f"layers[{k}].weight has {w.shape[1]} inputs but layers[{k - 1}] has "
                f"{weights[k - 1].shape[0]} outputs"
            )
        b = biases[k]
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"layers[{k}].bias must have shape [{w.shape[0]}]")


def permute_dense(
    weights: list[np.ndarray], biases: list[np.ndarray | None], orders: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Reorder hidden neurons: rows of the layer into them, columns of the layer out of them."""
    w = [np.array(x) for x in weights]
    b = [None if x is None else np.array(x) for x in biases]
    for k in range(len(weights) - 1):
        order = orders.get(f"hidden.{k}")
        if order is None:
            continue
        w[k] = w[k][order]
        bk = b[k]
        if bk is not None:
            b[k] = bk[order]
        w[k + 1] = w[k + 1][:, order]
    return w, b


def dense_forward(
    weights: list[np.ndarray], biases: list[np.ndarray | None], x: np.ndarray
) -> np.ndarray:
    """The MLP with tanh between layers (any elementwise activation commutes with the swaps)."""
    h = x
    for k, w in enumerate(weights):
        h = h @ w.T
        bk = biases[k]
        if bk is not None:
            h = h + bk
        if k < len(weights) - 1:
            h = np.tanh(h)
    return h


# ----- recurrent models (chunkscope.engine.recurrent.RecurrentLM state dicts) ------------------

_GATES = {"elman": 1, "gru": 3, "lstm": 4}


def recurrent_graph(architecture: str, state: dict[str, torch.Tensor], vocab: int) -> Graph:
    """Graph of a recurrent test-bed model: input symbols -> rnn.hidden -> output logits."""
    s = {k: v.detach().double().abs().cpu().numpy() for k, v in state.items()}
    layers = [NeuronLayer("input", vocab, False), NeuronLayer("rnn.hidden", 0, True),
              NeuronLayer("output", vocab, False)]  # fmt: skip
    if architecture == "elman":
        w = s["cell.weight"]
        d = w.shape[0]
        r = s["readout.weight"]
        conns = [
            Connection("cell.weight[:, input]", 0, 1, w[:, :vocab]),
            Connection("cell.weight[:, hidden] (recurrent)", 1, 1, w[:, vocab:]),
            Connection("readout.weight[:, input]", 0, 2, r[:, :vocab], gap=2),
            Connection("readout.weight[:, hidden]", 1, 2, r[:, vocab:]),
        ]
        bias = float(s["cell.bias"].sum() + s["readout.bias"].sum())
    elif architecture in ("gru", "lstm"):
        g = _GATES[architecture]
        wi, wh = s["cell.weight_ih"], s["cell.weight_hh"]
        d = wh.shape[1]
        conns = [
            Connection("cell.weight_ih", 0, 1, wi.reshape(g, d, vocab).sum(axis=0)),
            Connection("cell.weight_hh (recurrent)", 1, 1, wh.reshape(g, d, d).sum(axis=0)),
            Connection("readout.weight", 1, 2, s["readout.weight"]),
        ]
        bias = float(s["cell.bias_ih"].sum() + s["cell.bias_hh"].sum() + s["readout.bias"].sum())
    else:
        raise ValueError(f"architecture {architecture!r} has no connection-cost layout")
    layers[1] = NeuronLayer("rnn.hidden", d, True)
    return Graph(layers, conns, bias)


def permute_recurrent(
    architecture: str, state: dict[str, torch.Tensor], vocab: int, order: np.ndarray
) -> dict[str, torch.Tensor]:
    """The state dict with hidden unit order[p] moved to position p (function unchanged)."""
    idx = torch.as_tensor(order, dtype=torch.long)
    out = {k: v.clone() for k, v in state.items()}
    if architecture == "elman":
        cols = torch.cat([torch.arange(vocab), vocab + idx])
        out["cell.weight"] = state["cell.weight"][idx][:, cols]
        out["cell.bias"] = state["cell.bias"][idx]
        out["readout.weight"] = state["readout.weight"][:, cols]
        return out
    g = _GATES[architecture]
    d = state["cell.weight_hh"].shape[1]
    rows = torch.cat([k * d + idx for k in range(g)])
    out["cell.weight_ih"] = state["cell.weight_ih"][rows]
    out["cell.weight_hh"] = state["cell.weight_hh"][rows][:, idx]
    out["cell.bias_ih"] = state["cell.bias_ih"][rows]
    out["cell.bias_hh"] = state["cell.bias_hh"][rows]
    out["readout.weight"] = state["readout.weight"][:, idx]
    return out


def one_hot_inputs(vocab: int, batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, steps), generator=gen)
