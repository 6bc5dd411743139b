"""Gromov-Wasserstein distance between two sets of samples (POT's conditional-gradient solver).

C_a, C_b = pairwise distances within each set (Euclidean by default), each divided by its mean
off-diagonal entry (default) so that isotropic scaling does not count. The value is POT's
`gromov_wasserstein2` with square loss and uniform weights:
GW = min_T Σ_ijkl (C_a[i,k] − C_b[j,l])² T_ij T_kl; Mémoli's metric is ½·√GW (reported too).
Invariant to rotations, translations, neuron permutations and (with normalisation) scale of
either set, and to the order of samples. GW is non-convex: each start gives an upper bound.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import ot

METRICS = ("euclidean", "sqeuclidean", "cosine")
NORMALIZATIONS = ("mean", "max", "none")
INITS = ("product", "identity", "best_of_both")


@dataclass(frozen=True)
class GWParams:
    metric: str = "euclidean"
    normalization: str = "mean"
    max_samples: int = 300
    seed: int = 0
    max_iter: int = 1000
    tol: float = 1e-9
    init: str = "best_of_both"

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}")
        if self.max_samples < 2:
            raise ValueError("max_samples must be >= 2")
        if not 1 <= self.max_iter <= 100_000:
            raise ValueError("max_iter must be in 1..100000")
        if not 0 < self.tol < 1:
            raise ValueError("tol must be in (0, 1)")


@dataclass(frozen=True)
class GWResult:
    value: float  # the GW discrepancy (square loss)
    init_used: str  # "product" or "identity": the start that gave `value`
    iterations: int

    @property
    def metric_distance(self) -> float:
        return 0.5 * math.sqrt(max(self.value, 0.0))


def cost_matrix(
    x: np.ndarray, metric: str = "euclidean", normalization: str = "mean"
) -> np.ndarray:
    """Pairwise distances between the rows of x, normalised; float64 [n, n], zero diagonal."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("cosine distance needs non-zero samples")
        u = x / norms
        c = np.clip(1.0 - u @ u.T, 0.0, 2.0)
    else:
        sq = np.sum(x * x, axis=1)
        c = np.clip(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0, None)
        if metric == "euclidean":
            c = np.sqrt(c)
    np.fill_diagonal(c, 0.0)
    if normalization != "none":
        n = c.shape[0]
        scale = c.max() if normalization == "max" else c.sum() / max(n * (n - 1), 1)
        if scale <= 0:
            raise ValueError("all samples coincide: the distance matrix is zero")
        c = c / scale
    return c


def gw_from_costs(ca: np.ndarray, cb: np.ndarray, params: GWParams) -> GWResult:
    """GW between two cost matrices with uniform weights; the starts given by params.init."""
    n, m = ca.shape[0], cb.shape[0]
    p, q = ot.unif(n), ot.unif(m)
    starts: list[tuple[str, np.ndarray | None]] = []
    if params.init in ("product", "best_of_both"):
        starts.append(("product", None))
    if params.init in ("identity", "best_of_both") and n == m:
        starts.append(("identity", np.eye(n) / n))
    if not starts:
        raise ValueError("init IDENTITY needs the same number of samples in both sets")
    best: GWResult | None = None
    for name, g0 in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT warns when max_iter is reached; we report it
            value, log = ot.gromov.gromov_wasserstein2(
                ca, cb, p, q, loss_fun="square_loss", symmetric=True, log=True, G0=g0,
                max_iter=params.max_iter, tol_rel=params.tol, tol_abs=params.tol,
            )  # fmt: skip
        iterations = len(log.get("loss", [])) if isinstance(log.get("loss"), list) else 0
        result = GWResult(max(float(value), 0.0), name, iterations)
        if best is None or result.value < best.value:
            best = result
    assert best is not None
    return best


def gromov_wasserstein(x: np.ndarray, y: np.ndarray, params: GWParams) -> GWResult:
    """GW distance between samples x [n, p] and y [m, q] (already subsampled by the caller)."""
    params.validate()
    ca = cost_matrix(x, params.metric, params.normalization)
    cb = cost_matrix(y, params.metric, params.normalization)
    return gw_from_costs(ca, cb, params)
