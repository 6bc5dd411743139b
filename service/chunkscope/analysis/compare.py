"""One entry point per use: compare two sets of states, or every pair of layers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from chunkscope.analysis import dsa, geometry, gw
from chunkscope.analysis.states import ProgressFn, States, no_progress, subsample_rows

MEASURES = ("linear_cka", "procrustes", "gromov_wasserstein", "dsa", "dsa_eigenvalues")

DEFINITIONS = {
    "linear_cka": "linear CKA of column-centred states, ||Yc'Xc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F); "
    "similarity in [0, 1]",
    "procrustes": "Procrustes shape distance: centred, unit-Frobenius-norm states, min over "
    "orthogonal Q of ||X - YQ||_F = sqrt(2 - 2 cos(angle)), in [0, sqrt(2)]; angle = "
    "arccos(||Xc'Yc||_* / (|Xc||Yc|)) in [0, pi/2]",
    "gromov_wasserstein": "Gromov-Wasserstein discrepancy (POT gromov_wasserstein2, square loss, "
    "uniform weights) between the {metric} distance matrices, each divided by its {norm}; "
    "gw_metric = 0.5*sqrt(value)",
    "dsa": "DSA angle (radians, [0, pi]): arccos max over orthogonal C of tr(A'CBC') between the "
    "unit-norm rank-{rank} delay-embedded DMD operators (n_delays {n_delays}, delay_interval "
    "{interval})",
    "dsa_eigenvalues": "2-Wasserstein distance between the eigenvalues (complex plane, uniform "
    "weights) of the rank-{rank} delay-embedded DMD operators (n_delays {n_delays}, "
    "delay_interval {interval})",
}


@dataclass(frozen=True)
class Params:
    gw: gw.GWParams = field(default_factory=gw.GWParams)
    dsa: dsa.DSAParams = field(default_factory=dsa.DSAParams)


@dataclass
class Outcome:
    measure: str
    value: float
    definition: str
    angle: float = 0.0
    normalized_angle: float = 0.0
    samples_used: int = 0
    samples_total: int = 0
    subsampled: bool = False
    seed: int = 0
    seconds: float = 0.0
    diagnostics: dict[str, float] = field(default_factory=dict)
    eigenvalues: list[complex] = field(default_factory=list)


def definition(measure: str, params: Params, rank: int = 0) -> str:
    text = DEFINITIONS[measure]
    if measure == "gromov_wasserstein":
        norm = {"mean": "mean off-diagonal entry", "max": "largest entry", "none": "1 (unscaled)"}
        return text.format(metric=params.gw.metric, norm=norm[params.gw.normalization])
    if measure.startswith("dsa"):
        d = params.dsa
        return text.format(rank=rank or d.rank, n_delays=d.n_delays, interval=d.delay_interval)
    return text


def _gw_samples(
    a: np.ndarray, b: np.ndarray, p: gw.GWParams
) -> tuple[np.ndarray, np.ndarray, bool]:
    if a.shape[0] == b.shape[0]:
        idx = subsample_rows(a.shape[0], p.max_samples, p.seed)
        return (a, b, False) if idx is None else (a[idx], b[idx], True)
    ia = subsample_rows(a.shape[0], p.max_samples, p.seed)
    ib = subsample_rows(b.shape[0], p.max_samples, p.seed)
    return (a if ia is None else a[ia], b if ib is None else b[ib],
            ia is not None or ib is not None)  # fmt: skip


def compare(
    measure: str, a: States, b: States, params: Params, progress: ProgressFn = no_progress
) -> Outcome:
    """One measure between two sets; ValueError (with the reason) when it cannot be computed."""
    started = time.perf_counter()
    total = max(a.n_samples, b.n_samples)
    if measure in ("linear_cka", "procrustes"):
        x, y = a.samples(), b.samples()
        if measure == "linear_cka":
            value = geometry.linear_cka(x, y)
            angle = math.acos(value)
            out = Outcome(measure, value, definition(measure, params), angle, angle / (math.pi / 2))
        else:
            r = geometry.procrustes(x, y)
            out = Outcome(measure, r.distance, definition(measure, params), r.angle,
                          r.normalized_angle)  # fmt: skip
        out.samples_used = out.samples_total = x.shape[0]
    elif measure == "gromov_wasserstein":
        gp = params.gw
        gp.validate()
        x, y, cut = _gw_samples(a.samples(), b.samples(), gp)
        g = gw.gromov_wasserstein(x, y, gp)
        out = Outcome(measure, g.value, definition(measure, params), samples_used=x.shape[0],
                      samples_total=total, subsampled=cut, seed=gp.seed)  # fmt: skip
        out.diagnostics = {"gw_metric": g.metric_distance, "iterations": float(g.iterations),
                           "init_identity": float(g.init_used == "identity")}  # fmt: skip
    elif measure in ("dsa", "dsa_eigenvalues"):
        dp = params.dsa
        dp.validate()
        sa, cut_a = dsa.subsample_trajectories(a, dp.max_samples, dp.seed)
        sb, cut_b = dsa.subsample_trajectories(b, dp.max_samples, dp.seed)
        rank = dsa.default_rank(a.width, b.width, dp)
        oa, ob = dsa.fit_operator(sa, dp, rank), dsa.fit_operator(sb, dp, rank)
        out = Outcome(measure, 0.0, definition(measure, params, rank),
                      samples_used=min(sa.n_samples, sb.n_samples), samples_total=total,
                      subsampled=cut_a or cut_b, seed=dp.seed)  # fmt: skip
        out.diagnostics = {"rank": float(rank), "explained_variance_a": oa.explained_variance,
                           "explained_variance_b": ob.explained_variance}  # fmt: skip
        out.eigenvalues = [*oa.eigenvalues.tolist(), *ob.eigenvalues.tolist()]
        if measure == "dsa":
            r2 = dsa.procrustes_vector_fields(oa.matrix, ob.matrix, dp, progress)
            out.value, out.angle, out.normalized_angle = r2.angle, r2.angle, r2.angle / math.pi
            out.diagnostics["loss"] = r2.loss
            out.diagnostics["eigenvalue_wasserstein"] = dsa.eigenvalue_wasserstein(
                oa.matrix, ob.matrix
            )
        else:
            out.value = dsa.eigenvalue_wasserstein(oa.matrix, ob.matrix)
    else:
        raise ValueError(f"unknown measure {measure!r}; known: {MEASURES}")
    out.seconds = time.perf_counter() - started
    return out


@dataclass
class LayerMatrix:
    matrix: np.ndarray
    definition: str
    samples_used: int
    samples_total: int
    subsampled: bool
    seed: int


def layer_matrix(
    measure: str, layers: list[States], params: Params, progress: ProgressFn = no_progress
) -> LayerMatrix:
    """The symmetric matrix of `measure` between every pair of layers (same inputs in each)."""
    n = len(layers)
    total = layers[0].n_samples
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    m = np.eye(n) if measure == "linear_cka" else np.zeros((n, n))
    used, cut, seed = total, False, 0
    text = definition(measure, params)
    if measure == "gromov_wasserstein":
        gp = params.gw
        gp.validate()
        idx = subsample_rows(total, gp.max_samples, gp.seed)
        cut, seed = idx is not None, gp.seed
        costs = []
        for layer in layers:
            x = layer.samples()
            costs.append(gw.cost_matrix(x if idx is None else x[idx], gp.metric, gp.normalization))
        used = costs[0].shape[0]
        for done, (i, j) in enumerate(pairs, 1):
            m[i, j] = m[j, i] = gw.gw_from_costs(costs[i], costs[j], gp).value
            progress(done, len(pairs))
    elif measure in ("dsa", "dsa_eigenvalues"):
        dp = params.dsa
        dp.validate()
        rank = dp.rank or min(dsa.default_rank(x.width, x.width, dp) for x in layers)
        text = definition(measure, params, rank)
        fitted = []
        for layer in layers:
            sub, c = dsa.subsample_trajectories(layer, dp.max_samples, dp.seed)
            cut = cut or c
            used = min(used, sub.n_samples)
            fitted.append(dsa.fit_operator(sub, dp, rank).matrix)
        seed = dp.seed
        for done, (i, j) in enumerate(pairs, 1):
            if measure == "dsa":
                value = dsa.procrustes_vector_fields(fitted[i], fitted[j], dp).angle
            else:
                value = dsa.eigenvalue_wasserstein(fitted[i], fitted[j])
            m[i, j] = m[j, i] = value
            progress(done, len(pairs))
    else:
        samples = [layer.samples() for layer in layers]
        for done, (i, j) in enumerate(pairs, 1):
            if measure == "linear_cka":
                m[i, j] = m[j, i] = geometry.linear_cka(samples[i], samples[j])
            else:
                m[i, j] = m[j, i] = geometry.procrustes(samples[i], samples[j]).distance
            progress(done, len(pairs))
    return LayerMatrix(m, text, used, total, cut, seed)
