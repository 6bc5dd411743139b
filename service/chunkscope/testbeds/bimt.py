"""BIMT test bed: an MLP trained on a toy modular task with brain-inspired modular training.

Task (Liu, Gan, Tegmark 2023, §3.1): y = [(x1 + x3)³, x2² + sin(π x4)] for x uniform in [−1, 1]⁴;
output 1 needs only inputs 1 and 3, output 2 only inputs 2 and 4, so a modular network exists.
Network [4, 20, 20, 2] with SiLU. Training: AdamW (lr 2e-3), MSE + λ·connection cost, λ = 1e-3
for the first quarter, 1e-2 in the middle half, 1e-3 at the end (the paper's ×10 / ×0.1
schedule); every `swap_every` steps the `top_k` most important neurons of each hidden layer take
the swap that lowers the cost most (chunkscope.analysis.bimt, function-preserving). With
`regularize=False` the same network is trained on the MSE alone (the control).
Everything random is seeded. This module may import torch and chunkscope.analysis, not gRPC.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from chunkscope.analysis import bimt

SHAPE = (4, 20, 20, 2)


def modular_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of the two-module task: (x [n, 4], y [n, 2])."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 4), generator=gen) * 2 - 1
    y = torch.stack([(x[:, 0] + x[:, 2]) ** 3, x[:, 1] ** 2 + torch.sin(torch.pi * x[:, 3])], 1)
    return x, y


@dataclass
class BimtRun:
    weights: list[np.ndarray]  # [out, in] per layer
    biases: list[np.ndarray | None]
    train_mse: float
    test_mse: float
    cost: float  # connection cost (A = 1, l0 = 0.1) at the end
    swaps: int


def _cost(layers: list[nn.Linear], a: float, l0: float) -> torch.Tensor:
    total = torch.zeros(())
    for layer in layers:
        n_out, n_in = layer.weight.shape
        x_out = (torch.arange(n_out) + 0.5) / n_out
        x_in = (torch.arange(n_in) + 0.5) / n_in
        dist = (x_out[:, None] - x_in[None, :]).abs()
        total = total + (layer.weight.abs() * (a * dist + l0)).sum() + layer.bias.abs().sum() * l0
    return total


def _apply_orders(layers: list[nn.Linear], orders: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for k in range(len(layers) - 1):
            order = orders.get(f"hidden.{k}")
            if order is None:
                continue
            idx = torch.as_tensor(order, dtype=torch.long)
            layers[k].weight.copy_(layers[k].weight[idx])
            layers[k].bias.copy_(layers[k].bias[idx])
            layers[k + 1].weight.copy_(layers[k + 1].weight[:, idx])


def train_bimt(
    *, steps: int = 4000, seed: int = 0, regularize: bool = True, swap_every: int = 200,
    top_k: int = 5, weight_factor: float = 1.0, layer_distance: float = 0.1,
) -> BimtRun:  # fmt: skip
    """Train the test-bed MLP; see the module docstring."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    x, y = modular_task(100, seed)
    x_test, y_test = modular_task(1000, seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [nn.Linear(a, b) for a, b in itertools.pairwise(SHAPE)]
    params = [p for layer in layers for p in layer.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
    cost_params = bimt.CostParams(weight_factor, layer_distance)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        h = inputs
        for k, layer in enumerate(layers):
            h = layer(h)
            if k < len(layers) - 1:
                h = nn.functional.silu(h)
        return h

    swaps = 0
    for step in range(steps):
        lam = 1e-3 if step < steps // 4 or step >= 3 * steps // 4 else 1e-2
        mse = ((forward(x) - y) ** 2).mean()
        loss = mse + lam * _cost(layers, weight_factor, layer_distance) if regularize else mse
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
        if regularize and swap_every and (step + 1) % swap_every == 0:
            weights, biases = _numpy(layers)
            graph = bimt.dense_graph(weights, biases)
            result = bimt.optimize_layout(graph, cost_params, max_rounds=1, top_k=top_k)
            _apply_orders(layers, result.orders)
            swaps += result.swaps
    with torch.no_grad():
        train_mse = float(((forward(x) - y) ** 2).mean())
        test_mse = float(((forward(x_test) - y_test) ** 2).mean())
    weights, biases = _numpy(layers)
    cost = bimt.connection_cost(bimt.dense_graph(weights, biases), cost_params).total
    return BimtRun(weights, biases, train_mse, test_mse, cost, swaps)


def _numpy(layers: list[nn.Linear]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    weights = [layer.weight.detach().double().numpy().copy() for layer in layers]
    biases: list[np.ndarray | None] = [
        layer.bias.detach().double().numpy().copy() for layer in layers
    ]
    return weights, biases


def dependencies(weights: list[np.ndarray], threshold: float = 0.05) -> list[set[int]]:
    """For each output, the inputs connected to it by paths of weights with |w| > threshold·max|W|
    of their layer (which inputs each output can still depend on after pruning small weights)."""
    reach = np.eye(weights[0].shape[1], dtype=bool)  # [in, in]
    for w in weights:
        alive = np.abs(w) > threshold * np.abs(w).max()
        reach = (reach.astype(int) @ alive.T.astype(int)) > 0  # [in, out of this layer]
    return [set(np.nonzero(reach[:, o])[0].tolist()) for o in range(reach.shape[1])]
