"""Population Averaging (chunking/pa.py): planted concepts, hand-computed cases, criteria."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chunkscope.chunking.pa import (
    AUTHORS,
    DEFAULT_TAUS,
    RECOMMENDED,
    HonestScores,
    NoValidTolerance,
    PAParams,
    Scores,
    SweepPoint,
    TooFewOccurrences,
    auc_from_sweep,
    cross_validate,
    cv_folds_for,
    distances,
    fit_concept,
    matches,
    radius_from_negatives,
    recommend,
    score,
)

PLANTED = np.arange(8) * 7  # neurons 0, 7, ..., 49 of 64
PLANTED_VALUES = np.linspace(-2.0, 2.0, 8)


def _planted(
    seed: int, noise: float, *, t: int = 5000, d: int = 64, n: int = 60, planted: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Background N(0, 1); at n concept positions the planted neurons hold fixed values + noise."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((t, d)).astype(np.float32)
    positives = np.sort(rng.choice(t, n, replace=False))
    if planted:
        values = PLANTED_VALUES + noise * rng.standard_normal((n, PLANTED.size))
        states[np.ix_(positives, PLANTED)] = values.astype(np.float32)
    return states, positives


# --- constants and parameters ------------------------------------------------------------------


def test_default_taus_are_the_authors_grid() -> None:
    assert len(DEFAULT_TAUS) == 40
    assert DEFAULT_TAUS[:6] == (100.0, 30.0, 20.0, 10.0, 3.0, 1.0)
    assert DEFAULT_TAUS[-1] == pytest.approx(0.8**34)
    assert list(DEFAULT_TAUS) == sorted(set(DEFAULT_TAUS), reverse=True)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"min_occurrences": 0}, "min_occurrences"),
        ({"taus": ()}, "taus"),
        ({"taus": (1.0, -0.5)}, "taus"),
        ({"taus": (1.0, float("nan"))}, "taus"),
        ({"taus": (1.0, 1.0)}, "taus"),
        ({"criterion": "f1"}, "criterion"),
        ({"max_fpr": 1.5}, "max_fpr"),
        ({"seed": -1}, "seed"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"cv_folds": 101}, "cv_folds"),
        ({"sparsity_margin": -0.1}, "sparsity_margin"),
        ({"sparsity_margin": float("nan")}, "sparsity_margin"),
        ({"max_neurons": -1}, "max_neurons"),
        ({"radius_rule": "quantile"}, "radius_rule"),
        ({"radius_negatives": -1}, "radius_negatives"),
        ({"radius_negatives": 1.5}, "radius_negatives"),
        ({"radius_scale": 0.0}, "radius_scale"),
        ({"radius_scale": float("inf")}, "radius_scale"),
        ({"sample_all": "yes"}, "sample_all"),
    ],
)
def test_params_validate_names_the_field(change: dict[str, object], field: str) -> None:
    params = dataclasses.replace(PAParams(), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        params.validate()
    with pytest.raises(ValueError, match=field):
        fit_concept(np.zeros((20, 3), np.float32), np.arange(10), params)


# --- planted concepts --------------------------------------------------------------------------


def test_exact_planted_concept_is_recovered_perfectly() -> None:
    states, positives = _planted(0, noise=0.0)
    heldout_states, heldout_positives = _planted(1, noise=0.0)
    chunk = fit_concept(
        states,
        positives,
        PAParams(),
        heldout_states=heldout_states,
        heldout_positives=heldout_positives,
    )
    np.testing.assert_array_equal(chunk.neurons, PLANTED)
    np.testing.assert_allclose(chunk.prototype, PLANTED_VALUES, rtol=1e-6)
    assert chunk.radius == 0.0
    assert (chunk.train.tpr, chunk.train.fpr) == (1.0, 0.0)
    assert (chunk.train.positives, chunk.train.negatives) == (60, 4940)
    assert chunk.heldout is not None
    assert (chunk.heldout.tpr, chunk.heldout.fpr) == (1.0, 0.0)
    # The planted neurons have zero deviation, so every tau below the first background neuron's
    # deviation ties; the authors' rule keeps the largest of them.
    tied = [p.tau for p in chunk.sweep if p.n_neurons == PLANTED.size]
    assert chunk.tau == max(tied)


def test_noisy_planted_concept_recovers_the_neurons_and_generalises() -> None:
    states, positives = _planted(0, noise=0.01)
    heldout_states, heldout_positives = _planted(1, noise=0.01)
    chunk = fit_concept(
        states,
        positives,
        PAParams(n_samples=20),
        heldout_states=heldout_states,
        heldout_positives=heldout_positives,
    )
    np.testing.assert_array_equal(chunk.neurons, PLANTED)
    assert chunk.train.fpr == 0.0
    assert chunk.train.tpr >= 0.9
    assert chunk.heldout is not None
    assert chunk.heldout.fpr == 0.0
    assert chunk.heldout.tpr >= 0.9
    assert chunk.auc > 0.95


def test_five_samples_give_a_tight_radius() -> None:
    # The radius is the worst of only 5 in-sample deviations, so with continuous noise roughly
    # half of the occurrences fall outside it: the neurons are right, the TPR is modest.
    states, positives = _planted(0, noise=0.01)
    chunk = fit_concept(states, positives, PAParams())
    np.testing.assert_array_equal(chunk.neurons, PLANTED)
    assert chunk.train.fpr == 0.0
    assert 0.2 <= chunk.train.tpr <= 0.9


def test_concept_without_consistent_neurons_does_poorly() -> None:
    states, positives = _planted(0, noise=0.0, planted=False)
    heldout_states, heldout_positives = _planted(1, noise=0.0, planted=False)
    chunk = fit_concept(
        states,
        positives,
        PAParams(),
        heldout_states=heldout_states,
        heldout_positives=heldout_positives,
    )
    assert chunk.heldout is not None
    assert chunk.train.tpr < 0.3
    assert chunk.heldout.tpr < 0.1
    assert chunk.auc < 0.7


def test_float16_states_give_the_same_neurons() -> None:
    states, positives = _planted(0, noise=0.01)
    chunk = fit_concept(states.astype(np.float16), positives, PAParams(n_samples=20))
    np.testing.assert_array_equal(chunk.neurons, PLANTED)
    assert chunk.prototype.dtype == np.float32
    assert chunk.mean.dtype == np.float32 and chunk.mean.shape == (64,)


def test_samples_always_match_their_own_chunk() -> None:
    # Δ is the largest sample distance: every sample must match at every tau and in the result.
    states, positives = _planted(3, noise=0.3)
    params = PAParams(n_samples=7)
    chunk = fit_concept(states, positives, params)
    inside = matches(states, chunk.neurons, chunk.prototype, chunk.radius)
    assert inside[chunk.sample_positions].all()
    assert all(p.tpr >= params.n_samples / positives.size for p in chunk.sweep)


def test_result_arrays_and_train_scores_are_consistent() -> None:
    states, positives = _planted(0, noise=0.01)
    chunk = fit_concept(states, positives, PAParams())
    assert chunk.neurons.dtype == np.int64
    assert chunk.sample_positions.dtype == np.int64
    assert np.all(np.diff(chunk.neurons) > 0)
    np.testing.assert_array_equal(chunk.prototype, chunk.mean[chunk.neurons])
    assert np.isin(chunk.sample_positions, positives).all()
    recomputed = score(
        matches(states, chunk.neurons, chunk.prototype, chunk.radius), positives, len(states)
    )
    assert recomputed == chunk.train
    chosen = next(p for p in chunk.sweep if p.tau == chunk.tau)
    assert (chosen.tpr, chosen.fpr, chosen.n_neurons) == (
        chunk.train.tpr,
        chunk.train.fpr,
        chunk.neurons.size,
    )


# --- a hand-computed case ----------------------------------------------------------------------

# Rows 0-2 are the concept (and, with n_samples = 3, exactly the samples); rows 3-5 are not.
# Mean of the samples: [1, 2, 5]; per-neuron max deviation: [0, 2, 0.5].
HAND = np.array(
    [
        [1.0, 0.0, 5.0],
        [1.0, 2.0, 5.5],
        [1.0, 4.0, 4.5],
        [1.0, 2.0, 5.3],
        [2.0, 2.0, 5.0],
        [1.0, 9.0, 5.0],
    ],
    dtype=np.float32,
)


def test_hand_computed_subsets_radii_and_distances() -> None:
    params = PAParams(n_samples=3, min_occurrences=3, taus=(0.1, 3.0, 1.0, 0.5))
    chunk = fit_concept(HAND, np.array([0, 1, 2]), params)
    # τ=3: C={0,1,2}, Δ=max(4/3, 0.25/3, 4.25/3); τ=1: C={0,2}, Δ=0.25/2; τ<=0.5: C={0}, Δ=0.
    assert [p.tau for p in chunk.sweep] == [3.0, 1.0, 0.5, 0.1]  # descending, whatever the input
    assert [p.n_neurons for p in chunk.sweep] == [3, 2, 1, 1]
    np.testing.assert_allclose([p.radius for p in chunk.sweep], [17 / 12, 0.125, 0, 0], atol=1e-6)
    # Negatives: row 3 always matches; row 4 only with all neurons; row 5 only without neuron 1.
    assert [p.fpr for p in chunk.sweep] == pytest.approx([2 / 3] * 4)
    assert all(p.tpr == 1.0 for p in chunk.sweep)
    # All accuracies tie, so the authors' rule keeps the largest tau.
    assert chunk.tau == 3.0
    np.testing.assert_array_equal(chunk.neurons, [0, 1, 2])
    np.testing.assert_allclose(chunk.prototype, [1, 2, 5])
    assert chunk.radius == pytest.approx(17 / 12, rel=1e-6)

    subset = np.array([0, 2])
    proto = np.array([1.0, 5.0], np.float32)
    got = distances(HAND, subset, proto)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [0, 0.125, 0.125, 0.045, 0.5, 0], atol=1e-6)
    np.testing.assert_array_equal(
        matches(HAND, subset, proto, 0.125), [True, True, True, True, False, True]
    )


def test_score_counts() -> None:
    matched = np.array([True, False, True, True, False, False])
    s = score(matched, np.array([0, 1]), 6)
    assert (s.tpr, s.fpr, s.accuracy, s.positives, s.negatives) == (0.5, 0.5, 0.5, 2, 4)
    empty = score(matched, np.array([], dtype=np.int64), 6)
    assert (empty.tpr, empty.fpr, empty.positives) == (0.0, 0.5, 0)
    with pytest.raises(ValueError, match="bool"):
        score(matched.astype(int), np.array([0]), 6)


def test_distances_refuses_an_empty_subset() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        distances(HAND, np.array([], dtype=np.int64), np.array([], dtype=np.float32))
    with pytest.raises(ValueError, match="prototype"):
        distances(HAND, np.array([0, 1]), np.array([1.0], np.float32))


# --- empty subsets -----------------------------------------------------------------------------


def test_every_subset_empty_raises() -> None:
    states, positives = _planted(0, noise=0.0, planted=False)
    with pytest.raises(NoValidTolerance, match="empty"):
        fit_concept(states, positives, PAParams(taus=(1e-6, 1e-7)))


def test_empty_subsets_are_skipped_from_the_sweep() -> None:
    states, positives = _planted(0, noise=0.0, planted=False)
    chunk = fit_concept(states, positives, PAParams(taus=(3.0, 1e-6, 1e-7)))
    assert [p.tau for p in chunk.sweep] == [3.0]
    assert chunk.tau == 3.0
    assert all(np.isfinite([p.radius, p.tpr, p.fpr, p.accuracy]).all() for p in chunk.sweep)


# --- selection criteria ------------------------------------------------------------------------


def _criteria_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neuron A is exactly 5 on the concept; neuron B varies by 0.2 across the samples.

    C={A} (tau <= 0.2) catches all 20 positives but also 3 negatives that share A=5 (FPR 3/980).
    C={A,B} (tau > 0.2) rejects those 3 negatives but also the 5 positives with B far away.
    Accuracy prefers C={A} (3 errors vs 5); "TPR at FPR <= 0.001" must take C={A,B}.
    """
    rng = np.random.default_rng(0)
    t = 1000
    states = np.stack([rng.uniform(-3, 3, t), rng.standard_normal(t)], axis=1).astype(np.float32)
    positives = np.arange(0, 1000, 50)
    states[positives, 0] = 5.0
    states[positives, 1] = 0.0
    base = PAParams(n_samples=5)
    drawn = fit_concept(states, positives, base).sample_positions
    states[drawn, 1] = [-0.2, -0.1, 0.0, 0.1, 0.2]
    outliers = [p for p in positives if p not in drawn][:5]
    states[outliers, 1] = 10.0
    fakes = np.array([7, 8, 9])
    states[fakes] = [5.0, 10.0]
    return states, positives, np.array(outliers)


def test_accuracy_and_tpr_at_fpr_pick_different_taus() -> None:
    states, positives, _ = _criteria_case()
    by_accuracy = fit_concept(states, positives, PAParams())
    np.testing.assert_array_equal(by_accuracy.neurons, [0])
    assert (by_accuracy.train.tpr, by_accuracy.train.fpr) == (1.0, pytest.approx(3 / 980))
    assert by_accuracy.tau == pytest.approx(0.8**8)  # the largest tau not above 0.2

    strict = fit_concept(states, positives, PAParams(criterion="tpr_at_fpr", max_fpr=0.001))
    np.testing.assert_array_equal(strict.neurons, [0, 1])
    assert (strict.train.tpr, strict.train.fpr) == (0.75, 0.0)
    assert strict.train.fpr <= 0.001
    assert strict.tau == 100.0  # TPR and FPR tie over tau > 0.2: the largest wins

    loose = fit_concept(states, positives, PAParams(criterion="tpr_at_fpr", max_fpr=0.01))
    assert loose.tau == by_accuracy.tau
    assert loose.train.fpr <= 0.01


def test_tpr_at_fpr_with_no_admissible_tau_raises() -> None:
    states, positives, _ = _criteria_case()
    # A negative identical to a sample matches at every tau, so FPR > 0 everywhere.
    drawn = fit_concept(states, positives, PAParams()).sample_positions
    states[500 + 1] = states[drawn[0]]
    with pytest.raises(NoValidTolerance, match="max_fpr") as info:
        fit_concept(states, positives, PAParams(criterion="tpr_at_fpr", max_fpr=0.0))
    # The refusal carries the sweep, so a caller can show why no tolerance qualified.
    assert len(info.value.sweep) == len(DEFAULT_TAUS)
    assert min(p.fpr for p in info.value.sweep) > 0.0
    assert info.value.cv_folds == 5 and info.value.cross_validated is not None


# --- cross-validated scores and the recommendation ---------------------------------------------


def test_cross_validated_tpr_is_lower_than_in_sample_when_the_samples_flatter() -> None:
    # No consistent neurons: the radius is set by the samples, which always match themselves, so
    # the in-sample TPR counts them; occurrences no fit has seen are matched far less often.
    states, positives = _planted(0, noise=0.0, n=20, planted=False)
    chunk = fit_concept(states, positives, PAParams())
    assert chunk.cv_folds == 5 and chunk.cross_validated is not None
    cv = chunk.cross_validated
    assert chunk.train.tpr >= 5 / 20  # the five samples at least
    assert cv.tpr <= 0.1 < chunk.train.tpr
    assert (cv.positives, cv.negatives) == (20, 4980)


def test_cross_validated_scores_of_an_exact_concept_are_perfect() -> None:
    states, positives = _planted(0, noise=0.0)
    chunk = fit_concept(states, positives, PAParams(criterion="tpr_at_fpr"))
    assert chunk.cross_validated == Scores(1.0, 0.0, 1.0, 60, 4940)


def test_cross_validation_never_counts_a_fitted_sample() -> None:
    # One sampled occurrence per fold would match itself; with states that share nothing, the
    # held-out folds match none of the occurrences, so TP must be 0 whatever the folds are.
    rng = np.random.default_rng(3)
    states = (rng.standard_normal((400, 16)) * 100).astype(np.float32)
    positives = np.arange(0, 400, 20)
    cv, folds = cross_validate(states, positives, PAParams(n_samples=2, cv_folds=4))
    assert folds == 4 and cv is not None and cv.tpr == 0.0


@pytest.mark.parametrize(
    ("n_positives", "n_samples", "wanted", "folds"),
    [(10, 5, 5, 5), (10, 8, 5, 5), (12, 10, 5, 6), (10, 9, 5, 10), (10, 10, 5, 0), (30, 5, 0, 0)],
)
def test_fold_count_leaves_n_samples_in_every_training_part(
    n_positives: int, n_samples: int, wanted: int, folds: int
) -> None:
    assert cv_folds_for(n_positives, n_samples, wanted) == folds


def test_cross_validation_is_off_with_zero_folds_and_absent_when_too_few() -> None:
    states, positives = _planted(0, noise=0.0, n=10)
    assert fit_concept(states, positives, PAParams(cv_folds=0)).cross_validated is None
    chunk = fit_concept(states, positives, PAParams(n_samples=10))
    assert (chunk.cross_validated, chunk.cv_folds) == (None, 0)


def test_out_of_sample_scores_leave_the_samples_out() -> None:
    # Planted exactly: every occurrence matches, so TPR 1 in and out of sample, over n - 5.
    states, positives = _planted(0, noise=0.0)
    chunk = fit_concept(states, positives, PAParams())
    assert chunk.out_of_sample == Scores(1.0, 0.0, 1.0, 55, 4940)
    # Nothing consistent: the five samples are the only matched occurrences, so in sample the
    # TPR is at least 5/20 and out of sample it is what the other 15 manage (here none).
    states, positives = _planted(0, noise=0.0, n=20, planted=False)
    chunk = fit_concept(states, positives, PAParams())
    assert chunk.out_of_sample is not None
    tp = round(chunk.train.tpr * 20) - 5
    assert chunk.out_of_sample.tpr == tp / 15 < chunk.train.tpr
    assert chunk.out_of_sample.fpr == chunk.train.fpr
    # Every occurrence sampled: nothing is out of sample.
    states, positives = _planted(0, noise=0.0, n=10)
    assert fit_concept(states, positives, PAParams(n_samples=10)).out_of_sample is None


def _honest(oos: float, cv: float, cv_fpr: float = 0.0) -> HonestScores:
    return HonestScores(Scores(oos, 0.0, 0.99, 10, 990), Scores(cv, cv_fpr, 0.99, 10, 990))


def test_recommend_ranks_by_the_mean_honest_tpr_under_the_fpr_bound() -> None:
    a = _honest(1.0, 0.9, cv_fpr=0.01)  # the highest TPR, but breaks the FPR bound
    b = _honest(0.6, 0.8)  # mean 0.7
    c = _honest(0.9, 0.6)  # mean 0.75
    assert _honest(0.6, 0.8).tpr == pytest.approx(0.7) and a.fpr == 0.01
    assert recommend([a, b, c], 0.001) == 2
    assert recommend([a, b, None], 0.001) == 1
    assert recommend([a, None], 0.001) == 0  # none admissible: the best TPR - FPR
    assert recommend([_honest(0.6, 0.8), _honest(0.8, 0.6)], 0.001) == 1  # tie: out of sample
    assert recommend([b, b], 0.001) == 0  # full tie: the earlier hook point
    assert recommend([None, HonestScores(None, None)], 0.001) is None
    # Without cross-validation the out-of-sample scores decide alone.
    only = HonestScores(Scores(0.5, 0.0, 0.99, 10, 990), None)
    assert only.tpr == 0.5 and recommend([only, HonestScores(None, None)], 0.001) == 0


# --- sampling ----------------------------------------------------------------------------------


def test_sampling_is_seeded() -> None:
    states, positives = _planted(0, noise=0.5)
    a = fit_concept(states, positives, PAParams(seed=7))
    b = fit_concept(states, positives, PAParams(seed=7))
    c = fit_concept(states, positives, PAParams(seed=8))
    np.testing.assert_array_equal(a.sample_positions, b.sample_positions)
    np.testing.assert_array_equal(a.neurons, b.neurons)
    assert a.radius == b.radius and a.sweep == b.sweep
    assert not np.array_equal(a.sample_positions, c.sample_positions)
    # The draw depends on the set of positions, not on the order the caller listed them in.
    shuffled = np.random.default_rng(1).permutation(positives)
    d = fit_concept(states, shuffled, PAParams(seed=7))
    np.testing.assert_array_equal(a.sample_positions, d.sample_positions)
    assert len(set(a.sample_positions.tolist())) == 5  # without replacement


# --- errors ------------------------------------------------------------------------------------


def test_too_few_occurrences_reports_counts() -> None:
    states, positives = _planted(0, noise=0.0)
    with pytest.raises(TooFewOccurrences, match=r"9 occurrence.*10") as info:
        fit_concept(states, positives[:9], PAParams())
    assert (info.value.found, info.value.needed) == (9, 10)
    assert isinstance(info.value, ValueError)
    with pytest.raises(TooFewOccurrences, match=r"4 occurrence.*5") as info:
        fit_concept(states, positives[:4], PAParams(min_occurrences=3))
    assert (info.value.found, info.value.needed) == (4, 5)


@pytest.mark.parametrize(
    ("positives", "message"),
    [
        (np.array([0, 1, 1, 2, 3, 4, 5, 6, 7, 8]), "duplicate"),
        (np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 5000]), "lie in"),
        (np.array([-1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "lie in"),
        (np.arange(10.0), "integer"),
        (np.arange(10).reshape(2, 5), "1-D"),
    ],
)
def test_bad_positives_raise(positives: np.ndarray, message: str) -> None:
    states, _ = _planted(0, noise=0.0)
    with pytest.raises(ValueError, match=message):
        fit_concept(states, positives, PAParams())


def test_bad_states_and_heldout_raise() -> None:
    states, positives = _planted(0, noise=0.0)
    with pytest.raises(ValueError, match="float"):
        fit_concept(states.astype(np.int32), positives, PAParams())
    with pytest.raises(ValueError, match="together"):
        fit_concept(states, positives, PAParams(), heldout_states=states)
    with pytest.raises(ValueError, match="neurons"):
        fit_concept(
            states,
            positives,
            PAParams(),
            heldout_states=states[:, :10],
            heldout_positives=np.array([0]),
        )


# --- AUC ---------------------------------------------------------------------------------------


def _point(fpr: float, tpr: float) -> SweepPoint:
    return SweepPoint(tau=1.0, n_neurons=1, radius=0.0, tpr=tpr, fpr=fpr, accuracy=0.0)


def test_auc_is_the_trapezoid_over_sorted_points() -> None:
    # (0,0) (0.1,0.5) (0.5,0.8) (1,1): 0.1*0.25 + 0.4*0.65 + 0.5*0.9 = 0.735
    assert auc_from_sweep([_point(0.5, 0.8), _point(0.1, 0.5)]) == pytest.approx(0.735)
    assert auc_from_sweep([]) == pytest.approx(0.5)
    assert auc_from_sweep([_point(0.0, 1.0)]) == pytest.approx(1.0)
    # Equal FPRs are walked upwards, so the area is the upper envelope's.
    assert auc_from_sweep([_point(0.0, 0.9), _point(0.0, 0.3)]) == pytest.approx(0.95)


def test_fitted_auc_is_the_sweep_auc() -> None:
    states, positives = _planted(2, noise=0.2)
    chunk = fit_concept(states, positives, PAParams())
    assert 0.0 <= chunk.auc <= 1.0
    assert chunk.auc == auc_from_sweep(chunk.sweep)


# --- sparse selection --------------------------------------------------------------------------


def _wide_and_planted(seed: int, t: int = 5000, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """The concept lives on PLANTED (fixed values, noise 0.05), but at concept positions every
    other neuron also sits near 3 (noise 0.3), so the full-width chunk separates best: the case
    where the authors' rule picks all 64 neurons."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((t, 64)).astype(np.float32)
    positives = np.sort(rng.choice(t, n, replace=False))
    others = np.setdiff1d(np.arange(64), PLANTED)
    noise = rng.standard_normal((n, 64))
    states[np.ix_(positives, PLANTED)] = PLANTED_VALUES + 0.05 * noise[:, : PLANTED.size]
    states[np.ix_(positives, others)] = 3.0 + 0.3 * noise[:, PLANTED.size :]
    return states, positives


def test_sparsity_margin_takes_the_fewest_neurons_within_the_margin() -> None:
    states, positives = _wide_and_planted(0)
    base = PAParams(criterion="tpr_at_fpr", n_samples=20, cv_folds=0)
    full = fit_concept(states, positives, base)
    assert full.neurons.size == 64  # the best TPR under the FPR bound is the full width
    best = full.train.tpr
    for margin in (0.05, 0.15):
        sparse = fit_concept(states, positives, dataclasses.replace(base, sparsity_margin=margin))
        # The sweep does not depend on the rule, so the expected point can be read off it.
        near = [p for p in full.sweep if p.fpr <= base.max_fpr and p.tpr >= best - margin]
        assert sparse.neurons.size == min(p.n_neurons for p in near) < 64
        assert sparse.train.tpr >= best - margin and sparse.train.fpr <= base.max_fpr
    # With a margin of 0.15 the chunk is a handful of the planted neurons and nothing else.
    assert sparse.neurons.size <= 8 and set(sparse.neurons.tolist()) <= set(PLANTED.tolist())


def test_max_neurons_bounds_the_chunk_and_refuses_when_nothing_fits() -> None:
    states, positives = _wide_and_planted(0)
    base = PAParams(criterion="tpr_at_fpr", n_samples=20, cv_folds=0)
    bounded = fit_concept(states, positives, dataclasses.replace(base, max_neurons=8))
    assert 1 <= bounded.neurons.size <= 8
    assert set(bounded.neurons.tolist()) <= set(PLANTED.tolist())
    allowed = [p for p in bounded.sweep if p.n_neurons <= 8 and p.fpr <= base.max_fpr]
    assert bounded.train.tpr == pytest.approx(max(p.tpr for p in allowed))
    # With tau 100 alone every neuron is in the set, so no tau gives at most 1 neuron.
    with pytest.raises(NoValidTolerance, match="max_neurons=1"):
        fit_concept(states, positives, dataclasses.replace(base, max_neurons=1, taus=(100.0,)))


# --- radius rules (docs/PA_STUDY.md) -----------------------------------------------------------


def test_defaults_keep_the_authors_radius() -> None:
    params = PAParams()
    assert (params.radius_rule, params.radius_negatives, params.radius_scale) == ("samples", 0, 1.0)


def _below(value: float) -> float:
    return float(np.nextafter(np.float32(value), np.float32(-np.inf)))


def test_radius_from_negatives_stops_just_short_of_the_next_negative() -> None:
    d = np.array([3.0, 1.0, 2.0, 2.0], dtype=np.float32)
    assert radius_from_negatives(d, 0) == _below(1.0)
    assert radius_from_negatives(d, 1) == _below(2.0)
    # Two negatives tie at 2.0: a ball that admits at most two admits only the one at 1.0.
    assert radius_from_negatives(d, 2) == _below(2.0)
    assert radius_from_negatives(d, 3) == _below(3.0)
    assert radius_from_negatives(d, 4) == 3.0  # every negative fits
    assert radius_from_negatives(np.zeros(0, np.float32), 0) == 0.0
    assert radius_from_negatives(np.array([0.0, 5.0], np.float32), 0) == 0.0
    for allowed in range(5):
        assert np.count_nonzero(d <= np.float32(radius_from_negatives(d, allowed))) <= allowed
    with pytest.raises(ValueError, match="allowed"):
        radius_from_negatives(d, -1)
    with pytest.raises(ValueError, match="finite"):
        radius_from_negatives(np.array([1.0, np.nan], np.float32), 0)


def _blob(seed: int, t: int = 3000, d: int = 16, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Background N(0, 1); the concept is N(6, 1) in every neuron, far from every negative."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((t, d)).astype(np.float32)
    positives = np.sort(rng.choice(t, n, replace=False))
    states[positives] += np.float32(6.0)
    return states, positives


def test_negatives_rule_calibrates_the_radius_on_the_training_negatives() -> None:
    states, positives = _blob(0)
    held_states, held_positives = _blob(1)
    # One tolerance that keeps every neuron, so C is the whole state for both rules.
    base = PAParams(n_samples=3, taus=(100.0,), criterion="tpr_at_fpr", cv_folds=0)
    samples = fit_concept(
        states, positives, base, heldout_states=held_states, heldout_positives=held_positives
    )
    negatives = fit_concept(
        states, positives, dataclasses.replace(base, radius_rule="negatives"),
        heldout_states=held_states, heldout_positives=held_positives,
    )  # fmt: skip
    # Three samples of a spread-out concept: the authors' ball misses many occurrences.
    assert samples.heldout is not None and samples.heldout.tpr < 0.9
    # The calibrated ball ends just short of the nearest training negative ...
    mask = np.zeros(states.shape[0], dtype=bool)
    mask[positives] = True
    d = distances(states, negatives.neurons, negatives.prototype)
    assert negatives.radius == _below(float(d[~mask].min()))
    assert negatives.train.fpr == 0.0 and negatives.train.tpr == 1.0
    # ... and, the concept lying far from every negative, finds every held-out occurrence.
    assert negatives.heldout is not None
    assert negatives.heldout.tpr == 1.0 and negatives.heldout.fpr == 0.0
    assert negatives.radius > samples.radius


def test_radius_negatives_lets_exactly_that_many_training_negatives_in() -> None:
    states, positives = _blob(2)
    for allowed in (0, 1, 5):
        params = PAParams(
            n_samples=5, taus=(100.0,), criterion="accuracy", cv_folds=0,
            radius_rule="negatives", radius_negatives=allowed,
        )  # fmt: skip
        chunk = fit_concept(states, positives, params)
        # Distances of continuous random states do not tie, so the count is exact.
        assert round(chunk.train.fpr * chunk.train.negatives) == allowed


def test_radius_scale_multiplies_the_radius_of_either_rule() -> None:
    states, positives = _blob(3)
    for rule in ("samples", "negatives"):
        base = PAParams(n_samples=5, taus=(100.0,), cv_folds=0, radius_rule=rule)
        full = fit_concept(states, positives, base)
        half = fit_concept(states, positives, dataclasses.replace(base, radius_scale=0.5))
        assert np.array_equal(full.neurons, half.neurons)
        assert half.radius == float(np.float32(full.radius * 0.5))
        # The stored radius is what matches() uses, and train scores are exactly reproduced.
        reproduced = score(
            matches(states, half.neurons, half.prototype, half.radius), positives, len(states)
        )
        assert reproduced == half.train


def test_negatives_rule_cross_validation_never_calibrates_on_the_held_out_fold() -> None:
    states, positives = _blob(4)
    params = PAParams(
        n_samples=5, taus=(100.0,), criterion="tpr_at_fpr", cv_folds=5, radius_rule="negatives"
    )
    chunk = fit_concept(states, positives, params)
    assert chunk.cross_validated is not None and chunk.cv_folds == 5
    # Well separated: every held-out fold's occurrences are found; a fold's own negatives never
    # set its radius, so a few of them may fall inside, but never more than a handful.
    assert chunk.cross_validated.tpr == 1.0
    assert chunk.cross_validated.fpr <= 5 / chunk.cross_validated.negatives


def test_sample_all_samples_every_occurrence_whatever_the_seed() -> None:
    states, positives = _blob(5)
    params = PAParams(
        n_samples=5, taus=(100.0,), criterion="tpr_at_fpr", cv_folds=0,
        radius_rule="negatives", sample_all=True,
    )  # fmt: skip
    chunks = [fit_concept(states, positives, dataclasses.replace(params, seed=s)) for s in (0, 7)]
    for chunk in chunks:
        assert np.array_equal(chunk.sample_positions, positives)
        expected = states[positives].astype(np.float64).mean(axis=0).astype(np.float32)
        assert np.array_equal(chunk.mean, expected)
        assert chunk.out_of_sample is None  # no occurrence was left out of the fit
    assert chunks[0].radius == chunks[1].radius
    assert np.array_equal(chunks[0].prototype, chunks[1].prototype)
    # n_samples is still the fewest occurrences a fit needs.
    with pytest.raises(TooFewOccurrences, match="n_samples"):
        fit_concept(states, positives[:4], dataclasses.replace(params, min_occurrences=1))


def test_sample_all_cross_validation_samples_every_training_occurrence() -> None:
    states, positives = _blob(6)
    params = PAParams(
        n_samples=5, taus=(100.0,), criterion="tpr_at_fpr", cv_folds=5,
        radius_rule="negatives", sample_all=True,
    )  # fmt: skip
    scores, folds = cross_validate(states, positives, params)
    assert folds == 5 and scores is not None
    assert scores.tpr == 1.0 and scores.positives == positives.size


def test_presets() -> None:
    assert PAParams() == AUTHORS  # today's defaults are the authors' settings
    assert (AUTHORS.n_samples, AUTHORS.criterion, AUTHORS.radius_rule) == (5, "accuracy", "samples")
    RECOMMENDED.validate()
    assert (RECOMMENDED.radius_rule, RECOMMENDED.radius_scale, RECOMMENDED.sample_all) == (
        "negatives", 0.9, True,
    )  # fmt: skip
    assert RECOMMENDED.criterion == "tpr_at_fpr"
