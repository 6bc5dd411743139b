"""Dynamical Similarity Analysis (Ostrow et al. 2023) and its eigenvalue-only variant.

1. Delay (Hankel) embedding of each trajectory: row t = [x_{t+(d−1)τ}, …, x_{t+τ}, x_t].
2. HAVOK-style DMD: SVD of the stacked embedding H = U S Vᵀ (rows = time steps); the first r
   columns of U are the time courses in the reduced space. Their signs are fixed (largest-magnitude
   entry positive) so that a rotated copy of a system gets the very same coordinates. The operator
   A (r×r) solves U₊ ≈ U₋ Aᵀ by (ridge) least squares, steps paired within each trajectory.
3. Angular Procrustes over vector fields: A and B scaled to unit Frobenius norm, then
   θ = arccos max_{C ∈ O(r)} tr(Aᵀ C B Cᵀ) in [0, π]. The maximum is sought by Adam on
   C = expm(M − Mᵀ)·R, M starting at 0, for several orthogonal R: the identity, a reflection (so
   both components of O(r) are covered), the eigenvector alignment of the two symmetric parts,
   and `restarts` seeded Haar-random orthogonal matrices; the best start is kept. The step size
   decays linearly to 1% of `lr` over the `iters` steps.
4. Eigenvalue variant: 2-Wasserstein distance between the eigenvalues of A and of B (unscaled),
   as points in the complex plane with uniform weights (POT's exact solver, squared Euclidean
   ground cost, square root of the optimum).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import ot
import torch

from chunkscope.analysis.states import ProgressFn, States, no_progress


@dataclass(frozen=True)
class DSAParams:
    n_delays: int = 1
    delay_interval: int = 1
    rank: int = 0  # 0: min(10, embedding width of either set)
    ridge: float = 0.0
    iters: int = 500
    lr: float = 0.05
    restarts: int = 4
    seed: int = 0
    max_samples: int = 20_000

    def validate(self) -> None:
        if not 1 <= self.n_delays <= 1000:
            raise ValueError("n_delays must be in 1..1000")
        if not 1 <= self.delay_interval <= 1000:
            raise ValueError("delay_interval must be in 1..1000")
        if not 0 <= self.rank <= 1000:
            raise ValueError("rank must be in 0..1000 (0 = automatic)")
        if self.ridge < 0 or not math.isfinite(self.ridge):
            raise ValueError("ridge must be >= 0")
        if not 1 <= self.iters <= 100_000:
            raise ValueError("iters must be in 1..100000")
        if not 0 < self.lr <= 10:
            raise ValueError("learning_rate must be in (0, 10]")
        if not 0 <= self.restarts <= 64:
            raise ValueError("restarts must be in 0..64")
        if self.max_samples < 10:
            raise ValueError("max_samples must be >= 10")


@dataclass(frozen=True)
class Operator:
    matrix: np.ndarray  # A, r×r
    explained_variance: float  # share of the embedding's variance in the first r directions
    samples: int  # embedded time steps used

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvals(self.matrix)


@dataclass(frozen=True)
class DSAResult:
    angle: float  # radians in [0, π]
    loss: float  # ||A − C B Cᵀ||²_F of the unit-norm operators at the best C
    start: str  # which start won: "identity", "reflection" or "random-k"


def embedding_width(width: int, params: DSAParams) -> int:
    return width * params.n_delays


def hankel(trajectory: np.ndarray, n_delays: int, interval: int) -> np.ndarray:
    """Delay embedding of one trajectory [T, N] -> [T − (d−1)τ, N·d], most recent block first."""
    t, n = trajectory.shape
    rows = t - (n_delays - 1) * interval
    if rows <= 0:
        return np.zeros((0, n * n_delays))
    blocks = [trajectory[k * interval : k * interval + rows] for k in range(n_delays)]
    return np.concatenate(blocks[::-1], axis=1)


def subsample_trajectories(states: States, max_samples: int, seed: int) -> tuple[States, bool]:
    """Whole trajectories in seeded random order while they fit in `max_samples` time steps;
    if not even one fits, a seeded contiguous window of one trajectory. Returns (states, cut)."""
    if states.n_samples <= max_samples:
        return states, False
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(states.trajectories))
    kept: list[np.ndarray] = []
    total = 0
    for i in order:
        t = states.trajectories[int(i)]
        if total + t.shape[0] <= max_samples:
            kept.append(t)
            total += t.shape[0]
    if not kept:
        t = states.trajectories[int(order[0])]
        start = int(rng.integers(0, t.shape[0] - max_samples + 1))
        kept = [t[start : start + max_samples]]
    return States(tuple(kept)), True


def fit_operator(states: States, params: DSAParams, rank: int) -> Operator:
    """The reduced-rank linear operator of one set of trajectories (steps 1 and 2 above)."""
    embedded = [hankel(t, params.n_delays, params.delay_interval) for t in states.trajectories]
    embedded = [h for h in embedded if h.shape[0] >= 2]
    need = (params.n_delays - 1) * params.delay_interval + 1
    if not embedded:
        raise ValueError(
            "no trajectory is long enough for the delay embedding: each needs more than "
            f"(n_delays − 1)·delay_interval + 1 = {need} time steps"
        )
    lengths = [h.shape[0] for h in embedded]
    h = np.concatenate(embedded, axis=0)
    u, s, _ = np.linalg.svd(h, full_matrices=False)
    if rank > s.shape[0]:
        raise ValueError(f"rank {rank} exceeds the embedding's rank bound {s.shape[0]}")
    if s[rank - 1] <= s[0] * 1e-12:
        raise ValueError(
            f"the embedding has fewer than {rank} non-zero singular values; lower the rank"
        )
    v = u[:, :rank]
    pivot = np.argmax(np.abs(v), axis=0)
    v = v * np.sign(v[pivot, np.arange(rank)])  # deterministic signs
    starts = np.cumsum([0, *lengths])
    minus = np.concatenate([v[a : b - 1] for a, b in itertools.pairwise(starts)])
    plus = np.concatenate([v[a + 1 : b] for a, b in itertools.pairwise(starts)])
    gram = minus.T @ minus + params.ridge * np.eye(rank)
    a_t = np.linalg.lstsq(gram, minus.T @ plus, rcond=None)[0]
    explained = float(np.sum(s[:rank] ** 2) / np.sum(s**2)) if s.size else 0.0
    return Operator(a_t.T, explained, int(h.shape[0]))


def default_rank(width_a: int, width_b: int, params: DSAParams) -> int:
    return params.rank or min(
        10, embedding_width(width_a, params), embedding_width(width_b, params)
    )


def _reflection(n: int) -> np.ndarray:
    r = np.eye(n)
    r[0, 0] = -1.0
    return r


def _eigenbasis_start(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = U_a D U_bᵀ from the eigenvectors of the symmetric parts, signs D chosen greedily.

    If B = Qᵀ A Q exactly, U_a = Q U_b D for some signs D, so this start is already optimal
    (up to eigenvalue ties); otherwise it is one more heuristic start.
    """
    _, ua = np.linalg.eigh((a + a.T) / 2)
    _, ub = np.linalg.eigh((b + b.T) / 2)
    signs = np.ones(a.shape[0])

    def score(d: np.ndarray) -> float:
        c = (ua * d) @ ub.T
        return float(np.sum(a * (c @ b @ c.T)))

    best = score(signs)
    for _ in range(3):
        improved = False
        for i in range(len(signs)):
            signs[i] = -signs[i]
            trial = score(signs)
            if trial > best + 1e-15:
                best, improved = trial, True
            else:
                signs[i] = -signs[i]
        if not improved:
            break
    return (ua * signs) @ ub.T


def procrustes_vector_fields(
    a: np.ndarray, b: np.ndarray, params: DSAParams, progress: ProgressFn = no_progress
) -> DSAResult:
    """θ = arccos max_{C∈O(n)} tr(Âᵀ C B̂ Cᵀ) for unit-norm Â, B̂ (step 3 above)."""
    n = a.shape[0]
    if a.shape != (n, n) or b.shape != (n, n):
        raise ValueError(f"operators must be square and of equal size, got {a.shape}, {b.shape}")
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        raise ValueError("an operator is zero: the states do not change over time")
    at = torch.as_tensor(a / na, dtype=torch.float64)
    bt = torch.as_tensor(b / nb, dtype=torch.float64)
    names, bases = ["identity", "reflection", "eigenbasis"], [np.eye(n), _reflection(n)]
    bases.append(_eigenbasis_start(a / na, b / nb))
    rng = np.random.default_rng(params.seed)
    for k in range(params.restarts):
        q, r = np.linalg.qr(rng.normal(size=(n, n)))
        bases.append(q * np.sign(np.diag(r)))  # Haar-distributed orthogonal matrix
        names.append(f"random-{k}")
    k = len(names)
    refl = torch.as_tensor(np.stack(bases), dtype=torch.float64)
    init = torch.zeros((k, n, n), dtype=torch.float64)
    m = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=params.lr)
    # the step size decays linearly to 1% so that the end is a fine search, not an oscillation
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: max(0.01, 1.0 - step / max(params.iters, 1))
    )

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.linalg.matrix_exp(m - m.transpose(1, 2)) @ refl
        diff = at.unsqueeze(0) - c @ bt.unsqueeze(0) @ c.transpose(1, 2)
        return (diff**2).sum(dim=(1, 2)), c

    best_loss = torch.full((k,), math.inf, dtype=torch.float64)
    for step in range(params.iters + 1):
        loss, _ = losses()
        best_loss = torch.minimum(best_loss, loss.detach())
        if step == params.iters:
            break
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        sched.step()
        if step % 50 == 49:
            progress(step + 1, params.iters)
    winner = int(torch.argmin(best_loss))
    value = float(best_loss[winner])
    cos = min(max(1.0 - value / 2.0, -1.0), 1.0)  # ||Â − C B̂ Cᵀ||² = 2 − 2 tr(Âᵀ C B̂ Cᵀ)
    return DSAResult(math.acos(cos), value, names[winner])


def eigenvalue_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """2-Wasserstein distance between the eigenvalue sets of a and b (step 4 above)."""
    ea, eb = np.linalg.eigvals(a), np.linalg.eigvals(b)
    pa = np.stack([ea.real, ea.imag], axis=1)
    pb = np.stack([eb.real, eb.imag], axis=1)
    # Squared Euclidean distances from the differences themselves: ot.dist's |a|²+|b|²−2ab form
    # leaves rounding residue (~1e-17) where a point meets itself, which the square root below
    # would lift to ~1e-8 (seen with OpenBLAS's Haswell kernels), so identical sets would not be 0.
    cost = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=2)
    return math.sqrt(max(float(ot.emd2(ot.unif(len(pa)), ot.unif(len(pb)), cost)), 0.0))
