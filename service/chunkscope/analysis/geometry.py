"""Linear CKA and the Procrustes shape distance between two paired sets of samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected [samples, units], got shape {x.shape}")
    return x - x.mean(axis=0, keepdims=True)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"the two sets must have the same number of samples (paired rows): "
            f"{x.shape[0]} vs {y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError("need at least 2 samples")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of column-centred X [n, p] and Y [n, q]: ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F).

    1 when Y = c·X·Q + b (Q orthogonal, c ≠ 0); 0 when the centred columns are orthogonal.
    Constant sets (zero variance) have no defined CKA: ValueError.
    """
    xc, yc = _centred(x), _centred(y)
    _check_pair(xc, yc)
    n = xc.shape[0]
    if max(xc.shape[1], yc.shape[1]) > n:  # Gram form is cheaper when features exceed samples
        kx, ky = xc @ xc.T, yc @ yc.T
        cross, nx, ny = float(np.sum(kx * ky)), float(np.linalg.norm(kx)), float(np.linalg.norm(ky))
    else:
        cross = float(np.linalg.norm(yc.T @ xc) ** 2)
        nx, ny = float(np.linalg.norm(xc.T @ xc)), float(np.linalg.norm(yc.T @ yc))
    if nx == 0.0 or ny == 0.0:
        raise ValueError("a set of states is constant (zero variance): CKA is undefined")
    return min(max(cross / (nx * ny), 0.0), 1.0)


@dataclass(frozen=True)
class ProcrustesResult:
    distance: float  # sqrt(2 - 2 cos θ) between unit-norm centred sets, in [0, sqrt 2]
    angle: float  # θ = arccos(||XᵀY||_* / (|X||Y|)) in [0, π/2]

    @property
    def normalized_angle(self) -> float:
        return self.angle / (math.pi / 2)


def procrustes(x: np.ndarray, y: np.ndarray) -> ProcrustesResult:
    """Procrustes shape distance with centering (Williams et al. 2021's angular shape metric).

    Columns are centred and each set scaled to unit Frobenius norm; the narrower set is (in effect)
    zero-padded; min over orthogonal Q of ||X̃ − ỸQ||_F = sqrt(2 − 2·||X̃ᵀỸ||_*).
    """
    xc, yc = _centred(x), _centred(y)
    _check_pair(xc, yc)
    nx, ny = float(np.linalg.norm(xc)), float(np.linalg.norm(yc))
    if nx == 0.0 or ny == 0.0:
        raise ValueError("a set of states is constant (zero variance): Procrustes is undefined")
    xs, ys = xc / nx, yc / ny
    small = xs.T @ ys if xs.shape[1] * ys.shape[1] <= xs.shape[0] ** 2 else None
    if small is not None:
        nuclear = float(np.linalg.svd(small, compute_uv=False).sum())
    else:  # ||XᵀY||_* = sum sqrt(eig(XᵀY YᵀX)); via the n×n form when widths exceed samples
        m = (xs @ xs.T) @ (ys @ ys.T)
        ev = np.linalg.eigvals(m).real
        nuclear = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    cos = min(max(nuclear, -1.0), 1.0)
    return ProcrustesResult(math.sqrt(max(2.0 - 2.0 * cos, 0.0)), math.acos(cos))
