"""Unsupervised Chunk Discovery (UCD): chunks found in one hook point's states without labels.

Two variants, both pure functions over arrays (docs/METHODS.md section 3):

* *Cosine dictionary* (the authors'): K atoms D, trained with Adam to maximise the mean over states
  of max_k cos(D_k, x). Only the winning atom of each state receives gradient, so this is online
  spherical k-means; atoms that never win are "dead" and are reported. The authors used K = 2000,
  100 epochs, Adam lr 1e-2, batch 64 on LLaMA-3-8B; our defaults are smaller (K = 256, 20 epochs)
  so that a request on a laptop finishes. Assignment is the argmax cosine; chunkscope adds an
  optional rejection threshold so that "no chunk" (-1) is possible.
  The authors start the atoms from N(0, 1). A residual stream is strongly anisotropic (its states
  fill a narrow cone), so almost every random atom is farther from every state than the few atoms
  that happen to point into the cone, wins nothing, gets no gradient and stays dead: 125 of 128 at
  blocks.14 of the demo model. chunkscope's default therefore starts the atoms on training states
  chosen by k-means++ (cosine distance) and moves atoms that won nothing in an epoch onto random
  training states (`init="kmeans++"`, `reseed_dead=True`); `AUTHORS_COSINE` names the authors'
  exact choice (`init="gaussian"`, `reseed_dead=False`).
* *Density chunks* (chunkscope's own): L2-normalise, optionally PCA, HDBSCAN picks the number of
  chunks and marks noise. Each cluster becomes a prototype (member mean in the original space) with
  a radius (a quantile of its members' distances); new states go to the nearest prototype within
  its radius, or to none.

This module may import numpy, torch, scikit-learn and hdbscan. It must not import gRPC, the api
package, configuration or anything that touches files: the service feeds it arrays and stores what
it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import hdbscan
import numpy as np
import numpy.typing as npt
import torch
from sklearn.decomposition import PCA
from torch.nn import functional

ProgressFn = Callable[[int, int], None]
"""Called as (done, total), once per epoch. It may raise to cancel; the exception propagates."""

# Blocked assignment keeps every temporary (a block of scores or of differences) near this many
# elements, i.e. 16 MiB of float32, whatever N is.
_BLOCK_ELEMENTS = 1 << 22
_NORM_EPS = 1e-12


def _as_states(states: npt.ArrayLike, name: str = "states") -> npt.NDArray[np.float32]:
    array = np.asarray(states)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, d], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    # One non-finite value would turn the atoms (cosine) or every distance (density) into NaN.
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _unit_rows(array: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    # A zero row stays zero (cosine 0 with everything) instead of becoming NaN.
    return (array / np.maximum(norms, _NORM_EPS)).astype(np.float32, copy=False)


def _seeds(seed: int, count: int) -> list[int]:
    """Independent 32-bit seeds derived from one user seed, one per random stream."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(count)]


# --------------------------------------------------------------------------------------------
# Cosine dictionary (the authors' variant)
# --------------------------------------------------------------------------------------------


COSINE_INITS = ("kmeans++", "random_states", "gaussian")
"""How the atoms start: k-means++ over the training states with cosine distance (the default),
distinct training states drawn uniformly, or N(0, 1) (the authors')."""

AUTHORS_COSINE: Mapping[str, Any] = MappingProxyType({"init": "gaussian", "reseed_dead": False})
"""`CosineParams` fields that give the authors' exact method: `CosineParams(**AUTHORS_COSINE)`."""

# k-means++ looks at a seeded sample of at most this many training states (or 4 K, if more):
# every pick costs a pass over the sample, so the whole start costs K passes over it.
_KMEANSPP_SAMPLE = 20000


@dataclass(frozen=True)
class CosineParams:
    """Training parameters of the cosine dictionary. Defaults are chunkscope's (see module doc)."""

    k: int = 256
    epochs: int = 20
    lr: float = 1e-2
    batch_size: int = 64
    seed: int = 0
    reject_below: float | None = None
    """Cosine threshold: a state whose best cosine is below it gets "no chunk" (-1). Used when
    assigning (`assign_cosine`); training and the reported counts ignore it."""
    init: str = "kmeans++"
    """One of `COSINE_INITS`. A start on training states has every atom win at least the state it
    sits on; the authors' N(0, 1) start leaves most atoms dead on anisotropic states."""
    reseed_dead: bool = True
    """After each epoch but the last, move atoms that won no state in that epoch onto random
    training states. Not in the authors' method: it rescues atoms that the start or the
    training left dead."""

    def validate(self, n_states: int | None = None) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.reject_below is not None and not -1.0 <= self.reject_below <= 1.0:
            raise ValueError(f"reject_below must be a cosine in [-1, 1], got {self.reject_below!r}")
        if self.init not in COSINE_INITS:
            raise ValueError(f"init must be one of {', '.join(COSINE_INITS)}, got {self.init!r}")
        if not isinstance(self.reseed_dead, bool):
            raise ValueError(f"reseed_dead must be a bool, got {self.reseed_dead!r}")
        if n_states is not None and self.k > n_states:
            raise ValueError(
                f"K={self.k} is larger than the number of states N={n_states}; "
                "lower k or give more text"
            )


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is ambiguous, compare fields instead
class CosineResult:
    atoms: npt.NDArray[np.float32]
    """[K, d] unit rows."""
    counts: npt.NDArray[np.int64]
    """[K] training states whose argmax is this atom (before any rejection)."""
    dead: npt.NDArray[np.int64]
    """Indices of atoms that won no training state."""
    mean_max_cos: float
    """The objective with the final atoms: mean over training states of max_k cos."""
    losses: tuple[float, ...]
    """Per epoch, the mean training loss (-max cos) over that epoch's minibatches."""


def fit_cosine(
    states: npt.ArrayLike,
    params: CosineParams,
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> CosineResult:
    """Train the authors' cosine dictionary on `states` [N, d]. Deterministic on CPU for a seed.

    On CPU each step is a small matmul, so the run is bound by torch's thread pool: on a shared,
    busy 2-CPU machine two OpenMP threads made it 3-10x slower than one (barrier waits). This
    function does not touch the process-wide thread setting; the caller sizes it.
    """
    raw = np.asarray(states)
    x_np = _as_states(raw)
    n = x_np.shape[0]
    params.validate(n)
    init_seed, shuffle_seed = _seeds(params.seed, 2)
    dev = torch.device(device)

    # Every random draw is made on the CPU with its own generator, so the atoms and the batch
    # order are the same whichever device does the arithmetic.
    init_gen = torch.Generator().manual_seed(init_seed)
    shuffle_gen = torch.Generator().manual_seed(shuffle_seed)

    # Inputs are normalised once (the loss only sees directions), in place on a private copy so
    # that at most one extra [N, d] float32 array exists: at the authors' scale (215k x 4096)
    # each copy is 3.5 GB. The caller's array is never written to.
    x = torch.from_numpy(x_np).to(dev)
    if dev.type == "cpu" and np.may_share_memory(x_np, raw):
        x = x.clone()
    x.div_(x.norm(dim=1, keepdim=True).clamp_min_(_NORM_EPS))
    atoms = _initial_atoms(x, params, init_gen).requires_grad_(True)
    optimiser = torch.optim.Adam([atoms], lr=params.lr)

    losses: list[float] = []
    for epoch in range(params.epochs):
        order = torch.randperm(n, generator=shuffle_gen).to(dev)
        # Accumulated on the device: one host sync per epoch, not one per minibatch.
        total = torch.zeros((), device=dev)
        wins = torch.zeros(params.k, dtype=torch.int64, device=dev)
        for start in range(0, n, params.batch_size):
            batch = x[order[start : start + params.batch_size]]
            # [B, K] cosines in one matmul; the atoms are re-normalised every step because the
            # optimiser moves the raw rows.
            cos = batch @ functional.normalize(atoms, dim=1, eps=_NORM_EPS).T
            best, winner = cos.max(dim=1)
            loss = -best.mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += best.detach().sum()
            if params.reseed_dead:
                wins += torch.bincount(winner, minlength=params.k)
        losses.append(-float(total.item()) / n)
        # Not after the last epoch: the result must be a dictionary that was trained, with its
        # dead atoms reported, not fresh copies of training states.
        if params.reseed_dead and epoch + 1 < params.epochs:
            _reseed_dead_atoms(atoms, optimiser, x, wins, shuffle_gen)
        if progress is not None:
            progress(epoch + 1, params.epochs)

    final = functional.normalize(atoms.detach(), dim=1, eps=_NORM_EPS)
    index, best_cos = _argmax_cos_torch(x, final)
    counts = np.bincount(index, minlength=params.k).astype(np.int64)
    return CosineResult(
        atoms=final.cpu().numpy().astype(np.float32, copy=False),
        counts=counts,
        dead=np.flatnonzero(counts == 0).astype(np.int64),
        mean_max_cos=float(best_cos.mean(dtype=np.float64)),
        losses=tuple(losses),
    )


def _initial_atoms(x: torch.Tensor, params: CosineParams, gen: torch.Generator) -> torch.Tensor:
    """[K, d] starting rows for the atoms, on x's device. `x` holds unit rows.

    Rows taken from training states are scaled to norm sqrt(d), the norm of an N(0, 1) row, so
    that Adam's steps (about lr per coordinate whatever the scale) move them as much, relative
    to their length, as they move the authors' atoms.
    """
    n, d = x.shape
    if params.init == "gaussian":
        return torch.randn(params.k, d, generator=gen).to(x.device)
    if params.init == "random_states":
        picks = torch.randperm(n, generator=gen)[: params.k].to(x.device)
    else:
        picks = _kmeans_pp(x, params.k, gen)
    return x[picks] * math.sqrt(d)


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Indices into `x` (unit rows) of k distinct rows chosen by k-means++ with cosine distance.

    Each pick after the first is drawn with probability proportional to 1 - (best cosine to the
    picks so far), which on the unit sphere is half the squared distance: plain D^2 sampling.
    The candidates are a seeded sample of the rows (see `_KMEANSPP_SAMPLE`). Rows identical in
    direction to a pick have weight 0 and are never picked twice; when every weight is 0 (fewer
    distinct directions than k) the rest are drawn uniformly from the rows not yet picked.
    """
    n = x.shape[0]
    size = min(n, max(_KMEANSPP_SAMPLE, 4 * k))
    pool = torch.randperm(n, generator=gen)[:size]
    cand = x[pool.to(x.device)]
    chosen = torch.empty(k, dtype=torch.int64)
    free = torch.ones(size, dtype=torch.bool)
    first = int(torch.randint(size, (1,), generator=gen).item())
    chosen[0], free[first] = first, False
    best = cand @ cand[first]
    with torch.no_grad():
        for i in range(1, k):
            weight = (1.0 - best).clamp_min(0.0).double().cpu()
            weight[~free] = 0.0
            if float(weight.sum()) <= 0.0:
                weight = free.double()
            pick = int(torch.multinomial(weight, 1, generator=gen).item())
            chosen[i], free[pick] = pick, False
            best = torch.maximum(best, cand @ cand[pick])
    return pool[chosen].to(x.device)


def _reseed_dead_atoms(
    atoms: torch.Tensor,
    optimiser: torch.optim.Adam,
    x: torch.Tensor,
    wins: torch.Tensor,
    gen: torch.Generator,
) -> None:
    """Put atoms that won nothing this epoch onto distinct random training states.

    The wins counted during the epoch are free (they come from the minibatches) whereas an exact
    count would cost a full extra pass over N x K.
    """
    dead = torch.nonzero(wins == 0).flatten()
    alive = torch.nonzero(wins > 0).flatten()
    if dead.numel() == 0 or alive.numel() == 0:
        return
    picks = torch.randperm(x.shape[0], generator=gen)[: dead.numel()].to(x.device)
    with torch.no_grad():
        # Adam's step is about lr per coordinate whatever the row's scale, so a re-seeded row must
        # have the norm of the live rows (about sqrt(d) from the N(0, 1) start), not norm 1, or it
        # would be thrown around by the first update.
        scale = atoms[alive].norm(dim=1).mean()
        atoms[dead] = x[picks] * scale
    state = optimiser.state.get(atoms)
    if state:
        # Forget the moments of the moved rows so that they start like fresh parameters.
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][dead] = 0.0


def _argmax_cos_torch(
    x_unit: torch.Tensor, atoms_unit: torch.Tensor
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    n = x_unit.shape[0]
    index = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=np.float32)
    step = _block_rows(atoms_unit.shape[0])
    with torch.no_grad():
        for start in range(0, n, step):
            values, winners = (x_unit[start : start + step] @ atoms_unit.T).max(dim=1)
            index[start : start + step] = winners.cpu().numpy()
            best[start : start + step] = values.float().cpu().numpy()
    return index, best


def assign_cosine(
    states: npt.ArrayLike, atoms: npt.ArrayLike, reject_below: float | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(atom index [N], -1 where the best cosine is below `reject_below`; best cosine [N])."""
    x = _as_states(states)
    d_atoms = _as_states(atoms, "atoms")
    if x.shape[1] != d_atoms.shape[1]:
        raise ValueError(f"states have d={x.shape[1]} but atoms have d={d_atoms.shape[1]}")
    if reject_below is not None and not -1.0 <= reject_below <= 1.0:
        raise ValueError(f"reject_below must be a cosine in [-1, 1], got {reject_below!r}")
    unit_atoms_t = _unit_rows(d_atoms).T
    n = x.shape[0]
    index = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=np.float32)
    step = _block_rows(d_atoms.shape[0])
    for start in range(0, n, step):
        cos = _unit_rows(x[start : start + step]) @ unit_atoms_t
        winners = cos.argmax(axis=1)
        index[start : start + step] = winners
        best[start : start + step] = cos[np.arange(cos.shape[0]), winners]
    if reject_below is not None:
        index[best < reject_below] = -1
    return index, best


# --------------------------------------------------------------------------------------------
# Density chunks (chunkscope's variant)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityParams:
    pca_dim: int = 32
    """PCA dimension for clustering (on L2-normalised states); 0 = no PCA. Skipped when it would
    not reduce anything (pca_dim >= d)."""
    min_cluster_size: int = 25
    min_samples: int | None = None
    """HDBSCAN's neighbourhood size; None = min_cluster_size (HDBSCAN's own default)."""
    radius_quantile: float = 0.95
    """Radius = this quantile of the members' distances to their prototype (original space)."""
    max_fit_states: int = 20000
    """HDBSCAN sees at most this many states (a seeded subsample); the rest are assigned."""
    seed: int = 0

    def validate(self, n_states: int | None = None) -> None:
        if isinstance(self.pca_dim, bool) or not isinstance(self.pca_dim, int) or self.pca_dim < 0:
            raise ValueError(f"pca_dim must be an integer >= 0, got {self.pca_dim!r}")
        mcs = self.min_cluster_size
        if isinstance(mcs, bool) or not isinstance(mcs, int) or mcs < 2:
            raise ValueError(f"min_cluster_size must be an integer >= 2, got {mcs!r}")
        ms = self.min_samples
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 1):
            raise ValueError(f"min_samples must be None or an integer >= 1, got {ms!r}")
        if not 0.0 < self.radius_quantile <= 1.0:
            raise ValueError(f"radius_quantile must be in (0, 1], got {self.radius_quantile!r}")
        mfs = self.max_fit_states
        if isinstance(mfs, bool) or not isinstance(mfs, int) or mfs < mcs:
            raise ValueError(
                f"max_fit_states must be an integer >= min_cluster_size={mcs}, got {mfs!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if n_states is not None and n_states < mcs:
            raise ValueError(
                f"min_cluster_size={mcs} is larger than the number of states N={n_states}; "
                "lower min_cluster_size or give more text"
            )


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is ambiguous, compare fields instead
class DensityResult:
    prototypes: npt.NDArray[np.float32]
    """[K, d] member means in the original (un-normalised, un-projected) space."""
    radii: npt.NDArray[np.float32]
    """[K] Euclidean, original space."""
    counts: npt.NDArray[np.int64]
    """[K] members among all N states, after assignment."""
    labels: npt.NDArray[np.int64]
    """[N] chunk id, or -1 for HDBSCAN noise / outside every radius."""
    noise_fraction: float
    fit_states: int
    """How many states HDBSCAN itself saw (== N unless subsampled)."""
    subsampled: bool
    distances: npt.NDArray[np.float32]
    """[N] distance to the own chunk's prototype (for -1: to the nearest prototype, inf if K=0);
    the score that `top_examples(labels, distances, k, higher_is_better=False)` wants."""


def fit_density(states: npt.ArrayLike, params: DensityParams) -> DensityResult:
    """Cluster `states` [N, d] with HDBSCAN; chunk ids are ordered by their size among the
    states HDBSCAN saw (0 = largest).

    States that HDBSCAN saw keep its verdict (a member stays a member even beyond the radius, noise
    stays noise even inside one); the states left out of a subsample are assigned with the
    nearest-prototype-within-radius rule of `assign_density`, so about 1 - radius_quantile of
    their true members come out as -1.

    Caveat, measured on synthetic data: states with no structure in the top principal components
    (isotropic background) all project near the PCA origin, look dense there and can form one
    diffuse chunk whose prototype is near the origin and whose radius is huge; the assignment of
    a subsample's remainder then pours most of the background into it.
    """
    x = _as_states(states)
    n, d = x.shape
    params.validate(n)
    subsample_seed, pca_seed = _seeds(params.seed, 2)

    subsampled = n > params.max_fit_states
    if subsampled:
        rng = np.random.default_rng(subsample_seed)
        fit_idx = np.sort(rng.choice(n, size=params.max_fit_states, replace=False))
    else:
        fit_idx = np.arange(n)

    # Cluster directions, not magnitudes: a few tokens (the first, separators) have norms many
    # times the rest and would otherwise dominate every distance.
    space = x[fit_idx]  # fancy indexing copies, so normalising in place spares another copy
    space /= np.maximum(np.linalg.norm(space, axis=1, keepdims=True), _NORM_EPS)
    if 0 < params.pca_dim < min(d, fit_idx.size):
        space = PCA(n_components=params.pca_dim, random_state=pca_seed).fit_transform(space)

    # The `hdbscan` package rather than sklearn.cluster.HDBSCAN: it has the dual-tree Boruvka
    # spanning tree (sklearn only has Prim's, O(N^2) time) and lets core distances run on one
    # thread, so a fit does not fight the server's other work for CPUs. At d = 32 the two were
    # measured about equal (10k states: 3.2 s vs 2.3 s; 20k: 12.7 s vs 14.8 s) because KD-trees
    # lose most of their pruning in 32 dimensions; either way the cost grows faster than N, which
    # is why `max_fit_states` exists.
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        core_dist_n_jobs=1,
    )
    raw = np.asarray(clusterer.fit_predict(np.asarray(space, dtype=np.float64)), dtype=np.int64)
    fit_labels = _relabel_by_size(raw)
    n_chunks = int(fit_labels.max()) + 1 if fit_labels.size else 0

    prototypes = np.zeros((n_chunks, d), dtype=np.float32)
    radii = np.zeros(n_chunks, dtype=np.float32)
    for chunk in range(n_chunks):
        members = fit_idx[fit_labels == chunk]
        prototypes[chunk] = x[members].mean(axis=0, dtype=np.float64)
        member_distances = _distances(x, members, prototypes, np.full(members.size, chunk))
        radii[chunk] = np.quantile(member_distances.astype(np.float64), params.radius_quantile)

    labels = np.full(n, -1, dtype=np.int64)
    distances = np.empty(n, dtype=np.float32)
    labels[fit_idx] = fit_labels
    member = fit_labels >= 0
    distances[fit_idx[member]] = _distances(x, fit_idx[member], prototypes, fit_labels[member])
    noise = fit_idx[~member]
    _, distances[noise] = _nearest_within_radius(x, noise, prototypes, radii)
    if subsampled:
        rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
        labels[rest], distances[rest] = _nearest_within_radius(x, rest, prototypes, radii)

    counts = np.bincount(labels[labels >= 0], minlength=n_chunks).astype(np.int64)
    return DensityResult(
        prototypes=prototypes,
        radii=radii,
        counts=counts,
        labels=labels,
        noise_fraction=float(np.mean(labels < 0)),
        fit_states=int(fit_idx.size),
        subsampled=subsampled,
        distances=distances,
    )


def _relabel_by_size(raw: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Contiguous ids from 0, largest cluster first (ties: HDBSCAN's order); noise stays -1."""
    ids, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    mapping = np.full(int(ids.max()) + 1 if ids.size else 0, -1, dtype=np.int64)
    mapping[ids[order]] = np.arange(ids.size, dtype=np.int64)
    out = np.full(raw.shape, -1, dtype=np.int64)
    out[raw >= 0] = mapping[raw[raw >= 0]]
    return out


def _distances(
    x: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    prototypes: npt.NDArray[np.float32],
    which: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Exact ||x[rows[i]] - prototypes[which[i]]||, computed in blocks.

    The radii and the assignment both use this one formula, so a training member compared with
    its radius gets bit-for-bit the distance the radius was computed from. Rows and prototypes
    are gathered one block at a time: gathering them all would cost two [N, d] copies.
    """
    out = np.empty(rows.size, dtype=np.float32)
    step = _block_rows(x.shape[1])
    for start in range(0, rows.size, step):
        stop = start + step
        diff = x[rows[start:stop]].astype(np.float64) - prototypes[which[start:stop]]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _nearest_within_radius(
    x: npt.NDArray[np.float32],
    rows: npt.NDArray[np.int64],
    prototypes: npt.NDArray[np.float32],
    radii: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """`assign_density` for the rows `rows` of `x`, without copying them out first."""
    if prototypes.shape[0] == 0:
        return np.full(rows.size, -1, dtype=np.int64), np.full(rows.size, np.inf, np.float32)
    nearest = np.empty(rows.size, dtype=np.int64)
    proto_sq = np.einsum("ij,ij->i", prototypes, prototypes)
    step = _block_rows(max(prototypes.shape[0], x.shape[1]))
    for start in range(0, rows.size, step):
        block = x[rows[start : start + step]]
        # ||x||^2 is the same for every prototype of a row, so it can be left out of the argmin.
        nearest[start : start + step] = (proto_sq - 2.0 * (block @ prototypes.T)).argmin(axis=1)
    # The expansion above loses precision when x is near p; the reported distance is exact.
    distance = _distances(x, rows, prototypes, nearest)
    index = np.where(distance <= radii[nearest], nearest, -1).astype(np.int64)
    return index, distance


def assign_density(
    states: npt.ArrayLike, prototypes: npt.ArrayLike, radii: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(nearest prototype [N], -1 when it is farther than its radius; distance to it [N]).

    With no prototypes every state is -1 at distance inf.
    """
    x = _as_states(states)
    protos = np.ascontiguousarray(np.asarray(prototypes, dtype=np.float32))
    r = np.asarray(radii, dtype=np.float32).reshape(-1)
    if protos.ndim != 2 or protos.shape[0] != r.size:
        raise ValueError(
            f"prototypes must be [K, d] with one radius each, got {protos.shape} and {r.size} radii"
        )
    if protos.shape[0] and protos.shape[1] != x.shape[1]:
        raise ValueError(f"states have d={x.shape[1]} but prototypes have d={protos.shape[1]}")
    return _nearest_within_radius(x, np.arange(x.shape[0]), protos, r)


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------


def top_examples(
    labels: npt.ArrayLike, scores: npt.ArrayLike, k: int, *, higher_is_better: bool
) -> dict[int, npt.NDArray[np.int64]]:
    """Per chunk id >= 0, the indices of its `k` best-scoring members, best first.

    Cosine: scores = best cosine, higher_is_better=True; density: scores = distance, False.
    Ties keep index order.
    """
    lab = np.asarray(labels).reshape(-1).astype(np.int64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    if lab.shape != sc.shape:
        raise ValueError(f"labels ({lab.size}) and scores ({sc.size}) must have the same length")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    members = np.flatnonzero(lab >= 0)
    key = -sc[members] if higher_is_better else sc[members]
    # One sort for all chunks: by chunk, then score, then index (lexsort's last key is primary).
    order = members[np.lexsort((members, key, lab[members]))]
    chunk_ids, starts, sizes = np.unique(lab[order], return_index=True, return_counts=True)
    return {
        int(chunk): order[start : start + min(k, size)].astype(np.int64)
        for chunk, start, size in zip(chunk_ids, starts, sizes, strict=True)
    }
