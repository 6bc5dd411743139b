"""Population Averaging (PA): a chunk detector for one labelled concept at one hook point.

What this is for: given the hidden states of one hook point over a training text ([T, d]) and the
token positions where a concept occurs, find the neurons whose activity barely varies across a few
sampled occurrences (the subpopulation C), the prototype values of those neurons, and the radius
of the ball around the prototype that contains every sample. A position then "contains the chunk"
when its states restricted to C fall inside that ball (docs/METHODS.md §1; paper §3).

Corrections relative to the published code, on purpose:
- sampling is seeded (``np.random.default_rng(seed)``), so a fit is reproducible;
- an empty neuron subset is skipped instead of dividing by zero;
- labels are a boolean mask, never list membership;
- besides the authors' "best accuracy" criterion there is "best TPR subject to FPR <= max_fpr";
- besides the in-sample training scores (which count the very samples that set the radius, so
  they flatter) there are two honest ones: the stored chunk on the training occurrences it was
  not fitted on (out of sample), and k-fold cross-validation of the whole fit; :func:`recommend`
  picks a hook point per concept by them;
- besides the authors' radius (the largest distance of a sample) there is a radius calibrated on
  the training negatives (``radius_rule="negatives"``, with ``radius_scale`` and
  ``sample_all``): the preset RECOMMENDED, measured in docs/PA_STUDY.md; AUTHORS keeps the
  paper's settings.

This module is pure: numpy only. It must not import gRPC, torch, the config, the store, or do any
file IO; the service owns those and passes arrays in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AUTHORS",
    "CRITERIA",
    "DEFAULT_TAUS",
    "RADIUS_RULES",
    "RECOMMENDED",
    "HonestScores",
    "NoValidTolerance",
    "PAChunk",
    "PAParams",
    "Scores",
    "SweepPoint",
    "TooFewOccurrences",
    "auc_from_sweep",
    "cross_validate",
    "cv_folds_for",
    "distances",
    "fit_concept",
    "matches",
    "radius_from_negatives",
    "recommend",
    "score",
]

# The authors' grid: a few coarse tolerances, then 1.0 down to 0.8**34 (about 5.1e-4).
DEFAULT_TAUS: tuple[float, ...] = (100.0, 30.0, 20.0, 10.0, 3.0, *(0.8**i for i in range(35)))

CRITERIA: tuple[str, ...] = ("accuracy", "tpr_at_fpr")
# How the radius of a chunk is set: "samples" (the authors'): the largest distance of any sample
# from the prototype; "negatives": the largest radius that holds at most ``radius_negatives`` of
# the training positions outside the concept (docs/PA_STUDY.md).
RADIUS_RULES: tuple[str, ...] = ("samples", "negatives")
MAX_CV_FOLDS = 100

# Rows are processed in blocks so that no [T, d] temporary is ever made: a block holds at most
# this many gathered elements (float32: 8 MiB, cache-friendly; larger blocks measured no faster),
# and never more than _MAX_BLOCK_ROWS rows.
_BLOCK_ELEMENTS = 1 << 21
_MAX_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class PAParams:
    """Hyperparameters of one PA fit (defaults are the authors')."""

    n_samples: int = 5
    min_occurrences: int = 10
    taus: tuple[float, ...] = DEFAULT_TAUS
    criterion: str = "accuracy"
    max_fpr: float = 0.001
    seed: int = 0
    # Folds of the cross-validated scores (0: none). More folds than the occurrences allow are
    # raised to what they allow (see cv_folds_for).
    cv_folds: int = 5
    # Sparse entries (not in the authors' method; 0 = off for both). ``sparsity_margin``: among
    # the tolerances whose score (accuracy, or TPR for tpr_at_fpr, FPR bound still met) is within
    # this much of the best one, take the one with the fewest neurons. ``max_neurons``: only
    # tolerances whose neuron set has at most this many neurons are candidates.
    sparsity_margin: float = 0.0
    max_neurons: int = 0
    # Radius rule (RADIUS_RULES; "samples" is the authors'). With "negatives" the prototype and
    # the neuron subsets still come from the samples, but each subset's radius is calibrated on
    # the training negatives: the largest one that lets at most ``radius_negatives`` of them in
    # (0: the ball stops just short of the nearest negative). ``radius_scale`` multiplies the
    # radius of either rule (1.0: as is; below 1 leaves a margin to the nearest negative, so
    # that unseen negatives near the boundary stay out). RECOMMENDED below: on the demo model
    # it raised the mean held-out TPR over all 30 blocks from 0.66 (n_samples 10, TPR at FPR
    # <= 0.001, the authors' radius) to 0.84, with no cell above FPR 0.001 (docs/PA_STUDY.md).
    radius_rule: str = "samples"
    radius_negatives: int = 0
    radius_scale: float = 1.0
    # Sample every training occurrence instead of n_samples of them (n_samples is then only the
    # fewest occurrences a fit needs): the prototype and the neuron subsets come from all of
    # the data, and the draw no longer depends on the seed. Meant for radius_rule "negatives";
    # with "samples" the radius then covers every training occurrence.
    sample_all: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed range."""
        if not _is_int(self.n_samples) or self.n_samples < 2:
            # One sample makes every deviation zero: C would be all neurons and the radius 0.
            raise ValueError(f"n_samples must be an integer >= 2, got {self.n_samples!r}")
        if not _is_int(self.min_occurrences) or self.min_occurrences < 1:
            raise ValueError(
                f"min_occurrences must be an integer >= 1, got {self.min_occurrences!r}"
            )
        if len(self.taus) == 0:
            raise ValueError("taus must hold at least one tolerance > 0")
        for tau in self.taus:
            if isinstance(tau, bool) or not isinstance(tau, (int, float)):
                raise ValueError(f"taus must be finite numbers > 0, got {tau!r}")
            if not math.isfinite(tau) or tau <= 0:
                raise ValueError(f"taus must be finite numbers > 0, got {tau!r}")
        if len(set(self.taus)) != len(self.taus):
            raise ValueError("taus must not contain duplicates")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if (
            isinstance(self.max_fpr, bool)
            or not isinstance(self.max_fpr, (int, float))
            or not 0.0 <= self.max_fpr <= 1.0
        ):
            raise ValueError(f"max_fpr must be a number in [0, 1], got {self.max_fpr!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if (
            isinstance(self.sparsity_margin, bool)
            or not isinstance(self.sparsity_margin, (int, float))
            or not 0.0 <= self.sparsity_margin <= 1.0
        ):
            raise ValueError(
                f"sparsity_margin must be a number in [0, 1], got {self.sparsity_margin!r}"
            )
        if not _is_int(self.max_neurons) or self.max_neurons < 0:
            raise ValueError(
                f"max_neurons must be an integer >= 0 (0: no bound), got {self.max_neurons!r}"
            )
        if self.radius_rule not in RADIUS_RULES:
            raise ValueError(f"radius_rule must be one of {RADIUS_RULES}, got {self.radius_rule!r}")
        if not _is_int(self.radius_negatives) or self.radius_negatives < 0:
            raise ValueError(
                f"radius_negatives must be an integer >= 0, got {self.radius_negatives!r}"
            )
        if (
            isinstance(self.radius_scale, bool)
            or not isinstance(self.radius_scale, (int, float))
            or not math.isfinite(self.radius_scale)
            or self.radius_scale <= 0
        ):
            raise ValueError(f"radius_scale must be a finite number > 0, got {self.radius_scale!r}")
        if not isinstance(self.sample_all, (bool, np.bool_)):
            raise ValueError(f"sample_all must be true or false, got {self.sample_all!r}")
        if not _is_int(self.cv_folds) or not (
            self.cv_folds == 0 or 2 <= self.cv_folds <= MAX_CV_FOLDS
        ):
            raise ValueError(
                f"cv_folds must be 0 (no cross-validation) or an integer in 2..{MAX_CV_FOLDS}, "
                f"got {self.cv_folds!r}"
            )


# Named presets. AUTHORS: the paper's settings (n_samples 5, the accuracy rule, the radius of
# the samples), today's defaults. RECOMMENDED: what docs/PA_STUDY.md measured best on held-out
# text: every occurrence a sample, TPR at FPR <= 0.001, the radius calibrated on the training
# negatives with a 10 % margin.
AUTHORS = PAParams()
RECOMMENDED = PAParams(
    criterion="tpr_at_fpr", radius_rule="negatives", radius_scale=0.9, sample_all=True
)


@dataclass(frozen=True)
class Scores:
    """Detection quality on one set of positions.

    A rate whose denominator is zero (no positives, or no negatives) is reported as 0.0; the
    counts ``positives`` and ``negatives`` tell the caller whether a rate means anything.
    """

    tpr: float
    fpr: float
    accuracy: float
    positives: int
    negatives: int


@dataclass(frozen=True)
class SweepPoint:
    """One tolerance of the sweep, scored on the training states."""

    tau: float
    n_neurons: int
    radius: float
    tpr: float
    fpr: float
    accuracy: float


@dataclass(frozen=True)
class PAChunk:
    """A fitted PA chunk: the ball B(prototype, radius) in the subspace of ``neurons``."""

    neurons: np.ndarray  # int64 [|C|], sorted neuron indices
    prototype: np.ndarray  # float32 [|C|], the sample mean restricted to C
    mean: np.ndarray  # float32 [d], the sample mean over all neurons
    radius: float  # Δ, exactly representable in float32 (see fit_concept)
    tau: float
    train: Scores
    heldout: Scores | None
    auc: float
    sweep: tuple[SweepPoint, ...]
    sample_positions: np.ndarray  # int64 [n_samples, or every occurrence], sorted
    # The stored chunk on the training positions other than its samples (None when every
    # occurrence was sampled): honest about the radius, which only the samples set.
    out_of_sample: Scores | None = None
    # k-fold cross-validation over the training positions (None when not asked for, or when the
    # occurrences are too few to leave n_samples in every training fold); cv_folds: k used.
    cross_validated: Scores | None = None
    cv_folds: int = 0

    @property
    def honest(self) -> HonestScores:
        return HonestScores(self.out_of_sample, self.cross_validated)


@dataclass(frozen=True)
class HonestScores:
    """The scores of a chunk that no fitted occurrence counts in, and what they rank by.

    ``tpr`` is the mean of the out-of-sample TPR (how this very chunk does on occurrences it was
    not fitted on) and the cross-validated TPR (how the fit does at this hook point on another
    draw of samples): each alone was measured to choose worse blocks than both together
    (scripts/check_recommendation.py). ``fpr`` is the cross-validated FPR when there is one: the
    stored chunk's FPR was the very thing its tolerance was chosen to keep low.
    """

    out_of_sample: Scores | None
    cross_validated: Scores | None

    @property
    def tpr(self) -> float | None:
        rates = [s.tpr for s in (self.out_of_sample, self.cross_validated) if s and s.positives]
        return float(np.mean(rates)) if rates else None

    @property
    def fpr(self) -> float | None:
        chosen = self.cross_validated or self.out_of_sample
        return chosen.fpr if chosen is not None else None


class TooFewOccurrences(ValueError):
    """The concept has fewer labelled positions than the fit needs."""

    def __init__(self, found: int, needed: int, reason: str = "min_occurrences") -> None:
        self.found = found
        self.needed = needed
        super().__init__(f"concept has {found} occurrence(s) but {needed} are needed ({reason})")


class NoValidTolerance(ValueError):
    """No tolerance produced a usable chunk (every subset empty, or none met max_fpr).

    ``sweep`` holds the scored tolerances (empty when every subset was empty), so that a caller
    can show why; ``cross_validated`` the cross-validated scores when they were computed.
    """

    def __init__(
        self,
        message: str,
        sweep: Sequence[SweepPoint] = (),
        cross_validated: Scores | None = None,
        cv_folds: int = 0,
    ) -> None:
        super().__init__(message)
        self.sweep = tuple(sweep)
        self.cross_validated = cross_validated
        self.cv_folds = cv_folds


def fit_concept(
    states: np.ndarray,
    positives: np.ndarray,
    params: PAParams,
    *,
    heldout_states: np.ndarray | None = None,
    heldout_positives: np.ndarray | None = None,
) -> PAChunk:
    """Fit one PA chunk on ``states`` [T, d] with concept positions ``positives``.

    Every tolerance is scored on all T training positions; the chosen one is re-scored with
    :func:`matches` so that ``train`` is exactly what a later ``matches`` call on the same states
    reproduces. Held-out scores use the stored chunk unchanged.
    """
    params.validate()
    states = _check_states(states, "states")
    n_rows, dim = states.shape
    pos = _check_positions(positives, n_rows, "positives")
    if pos.size < params.min_occurrences:
        raise TooFewOccurrences(int(pos.size), params.min_occurrences)
    if params.n_samples > pos.size:
        raise TooFewOccurrences(int(pos.size), params.n_samples, "n_samples")
    heldout = _check_heldout(heldout_states, heldout_positives, dim)

    n_draw = int(pos.size) if params.sample_all else params.n_samples
    sample, max_dev, mean32 = _draw(states, pos, n_draw, params.seed)
    pos_mask = np.zeros(n_rows, dtype=bool)
    pos_mask[pos] = True
    sweep, _ = _sweep(states, pos_mask, sample, max_dev, mean32, params.taus, radius=params)
    cv, folds = (None, 0)
    if params.cv_folds:
        cv, folds = cross_validate(states, pos, params)
    if not sweep:
        raise NoValidTolerance(
            f"every tau gave an empty neuron subset: the smallest per-neuron deviation over the "
            f"{n_draw} samples is {float(max_dev.min()):.6g}, the largest tau is "
            f"{max(params.taus):.6g}",
            (), cv, folds,
        )  # fmt: skip
    try:
        best = _choose(sweep, params, n_rows - int(pos.size))
    except NoValidTolerance as exc:
        raise NoValidTolerance(str(exc), sweep, cv, folds) from None

    neurons = np.flatnonzero(max_dev < best.tau).astype(np.int64)
    prototype = mean32[neurons]
    train_dist = distances(states, neurons, prototype)
    if params.radius_rule == "negatives":
        radius = radius_from_negatives(train_dist[~pos_mask], params.radius_negatives)
    else:
        # Δ is taken from the very float32 values a later matches() call computes (row results
        # do not depend on blocking), so every sample is guaranteed to match its own chunk.
        radius = float(train_dist[sample].max())
    if params.radius_scale != 1.0:
        radius = float(np.float32(radius * params.radius_scale))
    matched = train_dist <= np.float32(radius)
    train = score(matched, pos, n_rows)
    # Leaving the samples out takes them off positives, and those that match off TP.
    unsampled = int(pos.size) - int(sample.size)
    out_of_sample = (
        _scores(
            int(np.count_nonzero(matched[pos])) - int(np.count_nonzero(matched[sample])),
            int(np.count_nonzero(matched)) - int(np.count_nonzero(matched[pos])),
            unsampled,
            n_rows - int(pos.size),
        )
        if unsampled
        else None
    )
    heldout_scores = None
    if heldout is not None:
        h_states, h_pos = heldout
        heldout_scores = score(
            matches(h_states, neurons, prototype, radius), h_pos, h_states.shape[0]
        )
    return PAChunk(
        neurons=neurons,
        prototype=prototype,
        mean=mean32,
        radius=radius,
        tau=best.tau,
        train=train,
        heldout=heldout_scores,
        auc=auc_from_sweep(sweep),
        sweep=tuple(sweep),
        sample_positions=sample,
        out_of_sample=out_of_sample,
        cross_validated=cv,
        cv_folds=folds,
    )


def cv_folds_for(n_positives: int, n_samples: int, wanted: int) -> int:
    """The fold count cross-validation uses: the least k >= ``wanted`` whose every training part
    (the positives outside one fold, at least n - ceil(n / k) of them) still holds ``n_samples``
    occurrences; 0 when not even leave-one-out does (or when ``wanted`` is 0)."""
    if wanted < 2:
        return 0
    for k in range(wanted, n_positives + 1):
        if n_positives - math.ceil(n_positives / k) >= n_samples:
            return k
    return 0


def cross_validate(
    states: np.ndarray, positives: np.ndarray, params: PAParams
) -> tuple[Scores | None, int]:
    """k-fold cross-validated scores of the whole fit (sampling, sweep, choice of τ).

    Positions are split into k folds, positives and negatives each spread evenly (seeded). For
    each fold, samples are drawn from the positives outside it, the sweep is scored and τ chosen
    on the rows outside it, and the fold's own rows are then matched against that chunk; the
    counts over all folds give one TPR/FPR/accuracy that no fitted occurrence has counted in. A
    fold whose training rows admit no τ (the FPR bound) detects nothing, as the request would.
    Returns (None, 0) when ``params.cv_folds`` is 0 or the occurrences are too few.
    """
    states = _check_states(states, "states")
    n_rows = states.shape[0]
    pos = np.sort(_check_positions(positives, n_rows, "positives"))
    folds = cv_folds_for(int(pos.size), params.n_samples, params.cv_folds)
    if folds == 0:
        return None, 0
    pos_mask = np.zeros(n_rows, dtype=bool)
    pos_mask[pos] = True
    neg = np.flatnonzero(~pos_mask)
    # A generator of its own, so the final fit's draw stays what it was without CV.
    rng = np.random.default_rng([params.seed, 0x5CF0])
    fold_of = np.empty(n_rows, dtype=np.int64)
    fold_of[pos] = rng.permutation(pos.size) % folds
    fold_of[neg] = rng.permutation(neg.size) % folds
    tp = fp = 0
    for fold in range(folds):
        test = fold_of == fold
        train_pos = pos[~test[pos]]
        n_draw = int(train_pos.size) if params.sample_all else params.n_samples
        sample, max_dev, mean32 = _draw(states, train_pos, n_draw, params.seed + fold)
        sweep, held = _sweep(
            states, pos_mask, sample, max_dev, mean32, params.taus, test, radius=params
        )
        if not sweep:
            continue
        n_neg_train = int(np.count_nonzero(~test)) - int(train_pos.size)
        try:
            best = _choose(sweep, params, n_neg_train)
        except NoValidTolerance:
            continue
        fold_tp, fold_matched = held[sweep.index(best)]
        tp += fold_tp
        fp += fold_matched - fold_tp
    return _scores(tp, fp, int(pos.size), n_rows - int(pos.size)), folds


def recommend(candidates: Sequence[HonestScores | None], max_fpr: float) -> int | None:
    """Index of the candidate (one concept's honest scores at several hook points) to recommend.

    The highest honest TPR among candidates whose honest FPR is <= max_fpr; when none is, the
    highest TPR - FPR. Ties go to the higher out-of-sample TPR, then to the earlier candidate.
    Candidates without an honest TPR (None, or no scores) are skipped; None if all are.
    """
    scored = []
    for i, c in enumerate(candidates):
        if c is None or c.tpr is None or c.fpr is None:
            continue
        oos = c.out_of_sample.tpr if c.out_of_sample is not None else 0.0
        scored.append((i, c.tpr, c.fpr, oos))
    if not scored:
        return None
    admissible = [c for c in scored if c[2] <= max_fpr]
    if admissible:
        return max(admissible, key=lambda c: (c[1], c[3]))[0]
    return max(scored, key=lambda c: (c[1] - c[2], c[3]))[0]


def radius_from_negatives(negative_distances: np.ndarray, allowed: int) -> float:
    """The largest radius whose ball holds at most ``allowed`` of the given negative distances.

    ``negative_distances`` are float32 distances (as :func:`distances` gives them) of positions
    that are not the concept. The radius is the float32 value just below the (allowed+1)-th
    smallest of them, so ``distance <= radius`` admits exactly the ``allowed`` nearest ones (fewer
    when some tie with the next). With no more than ``allowed`` negatives at all, every one of
    them fits: the radius is the largest distance (0.0 when there are none). Never negative: when
    the (allowed+1)-th distance is 0 the radius is 0, which lets the tied zeros in.
    """
    d = np.asarray(negative_distances, dtype=np.float32).ravel()
    if not _is_int(allowed) or allowed < 0:
        raise ValueError(f"allowed must be an integer >= 0, got {allowed!r}")
    if d.size == 0:
        return 0.0
    if not np.all(np.isfinite(d)) or float(d.min()) < 0:
        raise ValueError("negative_distances must be finite and >= 0")
    if d.size <= allowed:
        return float(d.max())
    kth = np.partition(d, allowed)[allowed]
    below = np.nextafter(kth, np.float32(-np.inf), dtype=np.float32)
    return float(max(below, np.float32(0.0)))


def distances(states: np.ndarray, neurons: np.ndarray, prototype: np.ndarray) -> np.ndarray:
    """float32 [T]: the mean over C of (h[t, C] - prototype)², computed block by block."""
    states = _check_states(states, "states")
    cols, proto = _check_chunk(neurons, prototype, states.shape[1])
    n_rows = states.shape[0]
    out = np.empty(n_rows, dtype=np.float32)
    step = _block_rows(cols.size)
    for start in range(0, n_rows, step):
        block = np.take(states[start : start + step], cols, axis=1).astype(np.float32, copy=False)
        block -= proto
        np.square(block, out=block)
        # A float32 sum along the contiguous last axis is one pairwise sum per row (no casting
        # buffer), so a row's value never depends on which block or slice it came in.
        out[start : start + step] = block.sum(axis=1) / np.float32(cols.size)
    return out


def matches(
    states: np.ndarray, neurons: np.ndarray, prototype: np.ndarray, radius: float
) -> np.ndarray:
    """bool [T]: whether each position falls inside the chunk's ball (distance <= radius)."""
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    return distances(states, neurons, prototype) <= np.float32(radius)


def score(matched: np.ndarray, positives: np.ndarray, n: int) -> Scores:
    """Score a match mask over ``n`` positions against the labelled ``positives``."""
    matched = np.asarray(matched)
    if matched.dtype != np.bool_ or matched.shape != (n,):
        raise ValueError(
            f"matched must be a bool array of shape ({n},), got {matched.dtype} {matched.shape}"
        )
    pos = _check_positions(positives, n, "positives")
    n_pos = int(pos.size)
    n_neg = n - n_pos
    tp = int(np.count_nonzero(matched[pos]))
    fp = int(np.count_nonzero(matched)) - tp
    return _scores(tp, fp, n_pos, n_neg)


def auc_from_sweep(sweep: Sequence[SweepPoint]) -> float:
    """Trapezoid ROC-AUC over the sweep's (FPR, TPR) points plus (0, 0) and (1, 1).

    Points are sorted by FPR, then TPR, so vertical segments are walked upwards; the sweep need
    not be monotone (C and Δ both change with τ), but every point lies in the unit square, so the
    area is in [0, 1].
    """
    fpr = np.array([0.0, *(p.fpr for p in sweep), 1.0])
    tpr = np.array([0.0, *(p.tpr for p in sweep), 1.0])
    order = np.lexsort((tpr, fpr))
    return float(np.trapezoid(tpr[order], fpr[order]))


# --- internals ---------------------------------------------------------------------------------


def _draw(
    states: np.ndarray, pos: np.ndarray, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled rows (sorted), each neuron's largest deviation over them, the float32 mean."""
    # Sample from the sorted positions so the draw depends only on the set and the seed.
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(np.sort(pos), size=n_samples, replace=False)).astype(np.int64)
    sampled = np.asarray(states[sample], dtype=np.float64)
    mean64 = sampled.mean(axis=0)
    # The largest deviation of any sample, per neuron: C(τ) is simply {j : max_dev[j] < τ}.
    max_dev = np.abs(sampled - mean64).max(axis=0)
    # The stored prototype is float32, so every distance (sweep and final) is measured from it.
    return sample, max_dev, mean64.astype(np.float32)


def _sweep(
    states: np.ndarray,
    pos_mask: np.ndarray,
    sample: np.ndarray,
    max_dev: np.ndarray,
    mean32: np.ndarray,
    taus: Sequence[float],
    test: np.ndarray | None = None,
    *,
    radius: PAParams | None = None,
) -> tuple[list[SweepPoint], list[tuple[int, int]]]:
    """Score every tolerance with a non-empty subset in one pass over the states.

    With a bool mask ``test``, the points are scored on the other rows only, and the second list
    holds, per point, (matched positives, matched rows) among the ``test`` rows (else it is empty).

    The subsets are nested (a threshold on ``max_dev``), so with the neurons sorted by deviation,
    C(τ) is a prefix of that order. Per block we gather the largest subset in that order, sum the
    squared deviations within the segments between consecutive subset sizes, and a cumulative sum
    over the (at most len(taus)) segments gives every subset's sum: O(T·|C_max|) in total instead
    of O(T·|C_max|·len(taus)).
    """
    n_rows = states.shape[0]
    taus_desc = sorted((float(t) for t in taus), reverse=True)
    order = np.argsort(max_dev, kind="stable")
    sorted_dev = max_dev[order]
    # |C(τ)| = number of neurons with deviation strictly below τ.
    sizes_per_tau = np.searchsorted(sorted_dev, np.array(taus_desc), side="left")
    kept = [(tau, int(size)) for tau, size in zip(taus_desc, sizes_per_tau, strict=True) if size]
    if not kept:
        return [], []
    sizes = np.unique(np.array([size for _, size in kept], dtype=np.int64))  # ascending
    cols = order[: sizes[-1]]
    proto = mean32[cols]
    seg_starts = np.concatenate(([0], sizes[:-1]))

    def mean_sq(block: np.ndarray) -> np.ndarray:
        # float64 [rows, len(sizes)]: mean squared deviation over each nested subset.
        gathered = np.take(block, cols, axis=1).astype(np.float32, copy=False)
        gathered -= proto
        np.square(gathered, out=gathered)
        # No dtype cast inside the reduction: casting goes through buffers whose boundaries
        # would make a row's sum depend on its block. The few segment sums are widened instead.
        seg = np.add.reduceat(gathered, seg_starts, axis=1).astype(np.float64)
        return np.cumsum(seg, axis=1) / sizes

    train_mask = ~test if test is not None else None
    step = _block_rows(int(cols.size))
    if radius is not None and radius.radius_rule == "negatives":
        # One extra pass: per subset, keep the (k+1) smallest distances of the negatives that
        # the fit may see (not the concept, not a held-out fold), then stop just below the last.
        keep = radius.radius_negatives + 1
        calib = ~pos_mask if train_mask is None else ~pos_mask & train_mask
        nearest = np.empty((0, sizes.size), dtype=np.float32)
        for start in range(0, n_rows, step):
            rows = calib[start : start + step]
            if not rows.any():
                continue
            block = mean_sq(states[start : start + step][rows]).astype(np.float32)
            both = np.concatenate([nearest, block])
            nearest = np.partition(both, keep - 1, axis=0)[:keep] if both.shape[0] > keep else both
        radii = np.array(
            [radius_from_negatives(nearest[:, i], keep - 1) for i in range(sizes.size)],
            dtype=np.float64,
        )
    else:
        # Δ per subset from the same function the positions go through, so samples match
        # themselves.
        radii = mean_sq(np.asarray(states[sample])).max(axis=0)
    if radius is not None and radius.radius_scale != 1.0:
        radii = radii * radius.radius_scale
    n_pos = int(np.count_nonzero(pos_mask if train_mask is None else pos_mask & train_mask))
    n_scored = n_rows if train_mask is None else int(np.count_nonzero(train_mask))
    matched_all = np.zeros(sizes.size, dtype=np.int64)
    matched_pos = np.zeros(sizes.size, dtype=np.int64)
    test_all = np.zeros(sizes.size, dtype=np.int64)
    test_pos = np.zeros(sizes.size, dtype=np.int64)
    for start in range(0, n_rows, step):
        inside = mean_sq(states[start : start + step]) <= radii
        block_pos = pos_mask[start : start + step]
        if test is None:
            matched_all += np.count_nonzero(inside, axis=0)
            matched_pos += np.count_nonzero(inside[block_pos], axis=0)
            continue
        block_test = test[start : start + step]
        matched_all += np.count_nonzero(inside[~block_test], axis=0)
        matched_pos += np.count_nonzero(inside[block_pos & ~block_test], axis=0)
        test_all += np.count_nonzero(inside[block_test], axis=0)
        test_pos += np.count_nonzero(inside[block_pos & block_test], axis=0)

    index = {int(size): i for i, size in enumerate(sizes)}
    points = []
    held = []
    for tau, size in kept:
        i = index[size]
        tp = int(matched_pos[i])
        s = _scores(tp, int(matched_all[i]) - tp, n_pos, n_scored - n_pos)
        points.append(SweepPoint(tau, size, float(radii[i]), s.tpr, s.fpr, s.accuracy))
        if test is not None:
            held.append((int(test_pos[i]), int(test_all[i])))
    return points, held


def _choose(sweep: Sequence[SweepPoint], params: PAParams, n_neg: int) -> SweepPoint:
    """Pick the sweep point by criterion; ``sweep`` is in descending τ order.

    With ``max_neurons`` only points with at most that many neurons compete; with
    ``sparsity_margin`` the winner is the point with the fewest neurons among those whose score
    is within the margin of the best (ties: the higher score, then the earlier point).
    """
    candidates = list(sweep)
    if params.max_neurons:
        candidates = [p for p in candidates if p.n_neurons <= params.max_neurons]
        if not candidates:
            raise NoValidTolerance(
                f"no tau gave at most max_neurons={params.max_neurons} neurons: the smallest "
                f"neuron set in the sweep has {min(p.n_neurons for p in sweep)}; raise "
                "max_neurons or add smaller taus"
            )
    if params.criterion == "accuracy":

        def key(p: SweepPoint) -> tuple[float, ...]:
            return (p.accuracy,)

        admissible = candidates
    else:

        def key(p: SweepPoint) -> tuple[float, ...]:
            return (p.tpr, -p.fpr)

        admissible = [p for p in candidates if p.fpr <= params.max_fpr]
        if not admissible:
            lowest = min(p.fpr for p in candidates)
            bound = f" with at most {params.max_neurons} neurons" if params.max_neurons else ""
            raise NoValidTolerance(
                f"no tau{bound} satisfied FPR <= max_fpr={params.max_fpr:g}: the lowest FPR in "
                f"the sweep is {lowest:.6g} over {n_neg} negatives"
            )
    # Accuracy: max() keeps the first of equal keys, i.e. the larger τ, as the authors do.
    # TPR at FPR: highest TPR, then lowest FPR, then (first in the list) the larger τ.
    best = max(admissible, key=key)
    if not params.sparsity_margin:
        return best
    floor = key(best)[0] - params.sparsity_margin - 1e-12  # a point exactly at the margin counts
    near = [p for p in admissible if key(p)[0] >= floor]
    return min(near, key=lambda p: (p.n_neurons, tuple(-v for v in key(p))))


def _scores(tp: int, fp: int, n_pos: int, n_neg: int) -> Scores:
    tn = n_neg - fp
    total = n_pos + n_neg
    return Scores(
        tpr=tp / n_pos if n_pos else 0.0,
        fpr=fp / n_neg if n_neg else 0.0,
        accuracy=(tp + tn) / total if total else 0.0,
        positives=n_pos,
        negatives=n_neg,
    )


def _block_rows(n_cols: int) -> int:
    return max(1, min(_MAX_BLOCK_ROWS, _BLOCK_ELEMENTS // max(1, n_cols)))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_states(states: np.ndarray, name: str) -> np.ndarray:
    # np.asarray keeps memmaps and views as they are: no copy of the whole array.
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[0] < 1 or states.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty [T, d] array, got shape {states.shape}")
    if states.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"{name} must be float16, float32 or float64, got {states.dtype}")
    return states


def _check_positions(positions: np.ndarray, n: int, name: str) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of indices, got shape {pos.shape}")
    if pos.size == 0:
        return pos.astype(np.int64)
    if not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got {pos.dtype}")
    pos = pos.astype(np.int64, copy=False)
    if int(pos.min()) < 0 or int(pos.max()) >= n:
        raise ValueError(f"{name} must lie in [0, {n}), got range [{pos.min()}, {pos.max()}]")
    if np.unique(pos).size != pos.size:
        raise ValueError(f"{name} must not contain duplicate indices")
    return pos


def _check_chunk(
    neurons: np.ndarray, prototype: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    cols = np.asarray(neurons)
    proto = np.asarray(prototype)
    if cols.ndim != 1 or cols.size == 0:
        # An empty subset is not a chunk; refusing it avoids the authors' division by zero.
        raise ValueError("neurons must be a non-empty 1-D array of indices")
    if not np.issubdtype(cols.dtype, np.integer):
        raise ValueError(f"neurons must hold integer indices, got {cols.dtype}")
    if int(cols.min()) < 0 or int(cols.max()) >= dim:
        raise ValueError(f"neurons must lie in [0, {dim})")
    if proto.shape != cols.shape:
        raise ValueError(f"prototype must have one value per neuron: {proto.shape} vs {cols.shape}")
    return cols.astype(np.intp, copy=False), proto.astype(np.float32, copy=False)


def _check_heldout(
    states: np.ndarray | None, positives: np.ndarray | None, dim: int
) -> tuple[np.ndarray, np.ndarray] | None:
    if states is None and positives is None:
        return None
    if states is None or positives is None:
        raise ValueError("heldout_states and heldout_positives must be given together")
    states = _check_states(states, "heldout_states")
    if states.shape[1] != dim:
        raise ValueError(
            f"heldout_states has {states.shape[1]} neurons, the training states have {dim}"
        )
    return states, _check_positions(positives, states.shape[0], "heldout_positives")
