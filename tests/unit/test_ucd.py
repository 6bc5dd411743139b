"""Unsupervised chunk discovery on planted structure: cosine dictionary and density chunks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from chunkscope.chunking import ucd
from chunkscope.chunking.ucd import (
    CosineParams,
    DensityParams,
    assign_cosine,
    assign_density,
    fit_cosine,
    fit_density,
    top_examples,
)

F32 = npt.NDArray[np.float32]
AUTHORS = ucd.AUTHORS_COSINE  # init N(0, 1), no re-seeding
I64 = npt.NDArray[np.int64]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # The cosine fits here are hundreds of tiny matmuls; with two OpenMP threads on a shared,
    # loaded 2-CPU runner every step waits on a barrier and a 0.4 s fit took 10-18 s.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _directions(
    n_dirs: int = 4, d: int = 32, per_dir: int = 200, seed: int = 0, noise: float = 0.05
) -> tuple[F32, npt.NDArray[np.float64], I64]:
    """States along a few unit directions, each times a random positive scale, plus noise."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_dirs, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_dirs), per_dir)
    scale = rng.uniform(0.5, 2.0, size=(labels.size, 1))
    states = dirs[labels] * scale + noise * rng.normal(size=(labels.size, d))
    return states.astype(np.float32), dirs, labels


def _blobs(
    k: int = 6, d: int = 64, per_blob: int = 300, n_noise: int = 200, seed: int = 0
) -> tuple[F32, npt.NDArray[np.float64], I64]:
    """k unit-variance Gaussian blobs with means of norm 20, plus uniform background noise (-1)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    means *= 20.0 / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), per_blob)
    points = means[labels] + rng.normal(size=(labels.size, d))
    background = rng.uniform(-15.0, 15.0, size=(n_noise, d))
    states = np.vstack([points, background]).astype(np.float32)
    return states, means, np.concatenate([labels, np.full(n_noise, -1)])


def _match(prototypes: F32, means: npt.NDArray[np.float64]) -> I64:
    """For each planted mean, its nearest prototype; asserts the matching is one-to-one."""
    dist = np.linalg.norm(prototypes[None, :, :] - means[:, None, :], axis=2)
    nearest = dist.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(means)
    return nearest


# ---------------------------------------------------------------------------------------------
# Density chunks
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs() -> tuple[F32, npt.NDArray[np.float64], I64]:
    return _blobs()


@pytest.fixture(scope="module")
def density(blobs: tuple[F32, npt.NDArray[np.float64], I64]) -> ucd.DensityResult:
    return fit_density(blobs[0], DensityParams())


def test_density_recovers_planted_blobs(
    blobs: tuple[F32, npt.NDArray[np.float64], I64], density: ucd.DensityResult
) -> None:
    states, means, planted = blobs
    r = density
    assert r.prototypes.shape == (6, 64) and r.prototypes.dtype == np.float32
    assert not r.subsampled and r.fit_states == len(states)
    # Prototypes are member means in the original space: within sampling error (about
    # sqrt(64 / 300) = 0.46) of the planted means, which are 20 from the origin and ~28 apart.
    nearest = _match(r.prototypes, means)
    assert np.linalg.norm(r.prototypes[nearest] - means, axis=1).max() < 1.0
    # Members of a unit Gaussian in d=64 lie ~8 from the centre; the 95% quantile is ~9.3.
    assert np.all((r.radii > 8.0) & (r.radii < 10.5))
    # The background is rejected and the blobs are kept: 200 / 2000 = 10% planted noise.
    assert np.mean(r.labels[planted < 0] == -1) > 0.9
    assert 0.09 <= r.noise_fraction <= 0.13
    assert r.noise_fraction == pytest.approx(np.mean(r.labels == -1))
    blob = planted >= 0
    assert np.mean(r.labels[blob] == nearest[planted[blob]]) > 0.97
    assert adjusted_rand_score(planted, r.labels) > 0.95
    # Contiguous ids, largest first, counts consistent with the labels.
    assert r.labels.dtype == np.int64 and set(np.unique(r.labels)) == {-1, 0, 1, 2, 3, 4, 5}
    assert np.array_equal(r.counts, np.bincount(r.labels[r.labels >= 0], minlength=6))
    assert np.all(np.diff(r.counts) <= 0)
    # The distances are to the own prototype for members.
    members = np.flatnonzero(r.labels >= 0)
    expected = np.linalg.norm(states[members] - r.prototypes[r.labels[members]], axis=1)
    np.testing.assert_allclose(r.distances[members], expected, rtol=1e-5)


def test_assign_density_new_draws_and_far_points(
    blobs: tuple[F32, npt.NDArray[np.float64], I64], density: ucd.DensityResult
) -> None:
    _, means, _ = blobs
    r = density
    nearest = _match(r.prototypes, means)
    rng = np.random.default_rng(123)
    truth = np.repeat(np.arange(6), 100)
    draws = (means[truth] + rng.normal(size=(truth.size, 64))).astype(np.float32)
    index, distance = assign_density(draws, r.prototypes, r.radii)
    assert index.dtype == np.int64 and distance.dtype == np.float32
    # Inside the 95% radius for ~95% of the draws, and never in the wrong chunk.
    assert np.mean(index == nearest[truth]) > 0.9
    assert np.all((index == nearest[truth]) | (index == -1))
    expected = np.linalg.norm(draws[:, None, :] - r.prototypes[None], axis=2).min(axis=1)
    np.testing.assert_allclose(distance, expected, rtol=1e-5)
    # Far from every blob: the origin (20 from each mean) and points far out.
    far = np.vstack([np.zeros(64), 100.0 * rng.normal(size=(20, 64))]).astype(np.float32)
    far_index, far_distance = assign_density(far, r.prototypes, r.radii)
    assert np.all(far_index == -1)
    assert np.all(far_distance > r.radii.max())


def test_density_subsample_path(blobs: tuple[F32, npt.NDArray[np.float64], I64]) -> None:
    states, means, planted = blobs
    r = fit_density(states, DensityParams(max_fit_states=1000, seed=3))
    assert r.subsampled and r.fit_states == 1000
    assert r.labels.shape == (len(states),)
    assert len(r.radii) == 6
    nearest = _match(r.prototypes, means)
    # Means of ~150 members: error about sqrt(64 / 150) = 0.65.
    assert np.linalg.norm(r.prototypes[nearest] - means, axis=1).max() < 1.5
    assert adjusted_rand_score(planted, r.labels) > 0.9
    assert np.mean(r.labels[planted < 0] == -1) > 0.9
    # States left out of the subsample are kept when inside a 95% radius: ~5% of them are lost.
    assert 0.09 <= r.noise_fraction <= 0.16
    assert r.counts.sum() == np.sum(r.labels >= 0)
    again = fit_density(states, DensityParams(max_fit_states=1000, seed=3))
    assert np.array_equal(r.labels, again.labels)
    assert np.array_equal(r.prototypes, again.prototypes)


def test_density_without_pca_and_with_no_cluster() -> None:
    states, _, planted = _blobs(k=3, per_blob=100, n_noise=0, seed=1)
    r = fit_density(states, DensityParams(pca_dim=0, min_cluster_size=10))
    assert len(r.radii) == 3
    assert adjusted_rand_score(planted, r.labels) > 0.95
    # As many states as min_cluster_size: HDBSCAN cannot split them, so everything is noise.
    lonely = fit_density(states[:25], DensityParams(min_cluster_size=25))
    assert lonely.prototypes.shape == (0, 64) and lonely.radii.shape == (0,)
    assert np.all(lonely.labels == -1) and lonely.noise_fraction == 1.0
    assert np.all(np.isinf(lonely.distances))
    index, distance = assign_density(states[:5], lonely.prototypes, lonely.radii)
    assert np.all(index == -1) and np.all(np.isinf(distance))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (DensityParams(pca_dim=-1), "pca_dim"),
        (DensityParams(min_cluster_size=1), "min_cluster_size"),
        (DensityParams(min_samples=0), "min_samples"),
        (DensityParams(radius_quantile=0.0), "radius_quantile"),
        (DensityParams(radius_quantile=1.5), "radius_quantile"),
        (DensityParams(max_fit_states=10), "max_fit_states"),
        (DensityParams(seed=-1), "seed"),
    ],
)
def test_density_params_validation(params: DensityParams, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        params.validate()


def test_density_refuses_fewer_states_than_min_cluster_size() -> None:
    with pytest.raises(ValueError, match=r"min_cluster_size=25 .* N=10"):
        fit_density(np.ones((10, 4), dtype=np.float32), DensityParams())
    with pytest.raises(ValueError, match="NaN"):
        fit_density(np.full((30, 4), np.nan, dtype=np.float32), DensityParams())


# ---------------------------------------------------------------------------------------------
# Cosine dictionary
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_recovers_planted_directions(seed: int) -> None:
    states, dirs, _ = _directions(seed=seed)
    # Online spherical k-means from a random N(0, 1) start can put one atom between two
    # directions and leave the rest dead; with 3x as many atoms as directions it does not.
    r = fit_cosine(states, CosineParams(k=12, epochs=20, seed=seed, **AUTHORS))
    assert r.atoms.shape == (12, 32) and r.atoms.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.atoms, axis=1), 1.0, rtol=1e-5)
    assert (dirs @ r.atoms.T).max(axis=1).min() > 0.95
    # The objective climbs from near 0 (random atoms) to the states' own spread (~0.96).
    assert len(r.losses) == 20
    assert r.losses[0] > -0.5 and r.losses[-1] < -0.9
    assert sum(b < a for a, b in zip(r.losses, r.losses[1:], strict=False)) >= 18
    assert r.mean_max_cos == pytest.approx(-r.losses[-1], abs=0.02)
    assert r.counts.sum() == len(states)


def test_cosine_reports_dead_atoms() -> None:
    states, _, _ = _directions()
    r = fit_cosine(states, CosineParams(k=64, epochs=10, **AUTHORS))
    # Four directions can keep only a handful of atoms alive.
    assert r.dead.dtype == np.int64 and 40 <= r.dead.size <= 60
    assert np.all(r.counts[r.dead] == 0)
    assert np.all(np.delete(r.counts, r.dead) > 0)
    assert r.counts.sum() == len(states)


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_reseed_dead_rescues_atoms(seed: int) -> None:
    # 6 atoms for 4 directions: for these seeds the authors' method leaves atoms dead and a
    # direction poorly covered; re-seeding dead atoms onto training states fixes both.
    states, dirs, _ = _directions(seed=seed)
    plain = fit_cosine(states, CosineParams(k=6, seed=seed, **AUTHORS))
    reseeded = fit_cosine(states, CosineParams(k=6, seed=seed, init="gaussian", reseed_dead=True))
    assert plain.dead.size > 0 and (dirs @ plain.atoms.T).max(axis=1).min() < 0.9
    assert reseeded.dead.size == 0 and (dirs @ reseeded.atoms.T).max(axis=1).min() > 0.95
    assert reseeded.mean_max_cos > plain.mean_max_cos + 0.05


def _cone(n_dirs: int = 24, d: int = 48, per_dir: int = 60, seed: int = 0) -> tuple[F32, I64]:
    """An anisotropic cloud like a residual stream's: every state is a shared offset of norm 4
    plus one of n_dirs unit directions plus noise, so all states lie in a narrow cone (pairwise
    cosine about 0.93) and the directions are the structure to find."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=d)
    offset *= 4.0 / np.linalg.norm(offset)
    dirs = rng.normal(size=(n_dirs, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_dirs), per_dir)
    states = offset + dirs[labels] + 0.1 * rng.normal(size=(labels.size, d))
    return states.astype(np.float32), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_start_leaves_no_dead_atoms_in_a_cone(seed: int) -> None:
    # K = number of planted directions. From N(0, 1) the one atom nearest the cone wins every
    # state and the other 23 never move; the default (k-means++ on the states, re-seeding) keeps
    # at most 10 % dead and gives each planted direction its own atom.
    states, labels = _cone(seed=seed)
    authors = fit_cosine(states, CosineParams(k=24, epochs=10, seed=seed, **AUTHORS))
    default = fit_cosine(states, CosineParams(k=24, epochs=10, seed=seed))
    assert authors.dead.size >= 20
    assert default.dead.size <= 2
    found, _ = assign_cosine(states, default.atoms, None)
    assert adjusted_rand_score(labels, found) > 0.7
    lumped, _ = assign_cosine(states, authors.atoms, None)
    assert adjusted_rand_score(labels, lumped) < 0.2
    assert default.mean_max_cos > authors.mean_max_cos + 0.01


@pytest.mark.parametrize("init", ["kmeans++", "random_states"])
def test_starts_on_states_without_reseeding(init: str) -> None:
    # Either start on training states alone (no re-seeding) already keeps the cone's atoms alive.
    states, _ = _cone(seed=3)
    r = fit_cosine(states, CosineParams(k=24, epochs=10, seed=3, init=init, reseed_dead=False))
    assert r.dead.size <= 2
    assert r.counts.sum() == len(states)


def test_kmeans_pp_picks_distinct_directions() -> None:
    # 3 distinct directions, each repeated, for K = 3: k-means++ gives weight 0 to a repeat of a
    # pick, so the three starting atoms are the three directions (one each) and none is dead,
    # even with training too short to move them (1 epoch, tiny lr).
    rng = np.random.default_rng(0)
    dirs = np.linalg.qr(rng.normal(size=(8, 3)))[0].T.astype(np.float32)
    states = np.repeat(dirs, 50, axis=0) * rng.uniform(0.5, 2.0, size=(150, 1)).astype(np.float32)
    for seed in range(5):
        r = fit_cosine(states, CosineParams(k=3, epochs=1, lr=1e-6, seed=seed))
        assert r.dead.size == 0 and sorted(r.counts.tolist()) == [50, 50, 50]
    # More atoms than distinct directions: the rest are drawn uniformly, still without a crash.
    r = fit_cosine(states, CosineParams(k=5, epochs=1, lr=1e-6, reseed_dead=False))
    assert r.atoms.shape == (5, 8) and r.counts.sum() == 150


def test_cosine_is_deterministic_for_a_seed() -> None:
    states, _, _ = _directions()
    a = fit_cosine(states, CosineParams(k=8, epochs=3, seed=5))
    b = fit_cosine(states, CosineParams(k=8, epochs=3, seed=5))
    c = fit_cosine(states, CosineParams(k=8, epochs=3, seed=6))
    assert np.array_equal(a.atoms, b.atoms) and a.losses == b.losses
    assert not np.array_equal(a.atoms, c.atoms)


def test_assign_cosine_rejects_orthogonal_states() -> None:
    states, _, _ = _directions()
    r = fit_cosine(states, CosineParams(k=12))
    index, best = assign_cosine(states, r.atoms, reject_below=None)
    assert index.dtype == np.int64 and best.dtype == np.float32
    assert np.array_equal(np.bincount(index, minlength=12), r.counts)
    assert best.mean() == pytest.approx(r.mean_max_cos, abs=1e-5)
    # Planted states are all accepted at 0.5; states orthogonal to every atom are rejected.
    kept, _ = assign_cosine(states, r.atoms, reject_below=0.5)
    assert np.array_equal(kept, index)
    # An orthonormal basis of the complement of the 12 atoms' span (d = 32).
    basis = np.linalg.qr(r.atoms.T.astype(np.float64), mode="complete")[0][:, 12:]
    orthogonal = (np.random.default_rng(9).normal(size=(10, 20)) @ basis.T).astype(np.float32)
    rejected, cos = assign_cosine(orthogonal, r.atoms, reject_below=0.5)
    assert np.all(rejected == -1)
    assert np.abs(cos).max() < 1e-4
    # Same states without rejection still get an atom.
    assert np.all(assign_cosine(orthogonal, r.atoms, reject_below=None)[0] >= 0)


def test_assignment_is_the_same_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    states, dirs, _ = _directions()
    atoms = dirs.astype(np.float32)
    radii = np.full(4, 1.0, dtype=np.float32)
    whole_c = assign_cosine(states, atoms, 0.9)
    whole_d = assign_density(states, atoms, radii)
    monkeypatch.setattr(ucd, "_BLOCK_ELEMENTS", 37)
    blocked_c = assign_cosine(states, atoms, 0.9)
    blocked_d = assign_density(states, atoms, radii)
    np.testing.assert_array_equal(blocked_c[0], whole_c[0])
    np.testing.assert_array_equal(blocked_d[0], whole_d[0])
    # BLAS may round a matmul differently for another block shape (1 ulp), hence allclose.
    np.testing.assert_allclose(blocked_c[1], whole_c[1], rtol=1e-6)
    np.testing.assert_allclose(blocked_d[1], whole_d[1], rtol=1e-6)


def test_fits_leave_the_callers_states_untouched() -> None:
    states, _, _ = _directions(per_dir=50)
    before = states.copy()
    fit_cosine(states, CosineParams(k=4, epochs=1))
    fit_density(states, DensityParams(min_cluster_size=10))
    np.testing.assert_array_equal(states, before)


def test_k_larger_than_n_is_refused() -> None:
    with pytest.raises(ValueError, match=r"K=10 is larger than the number of states N=5"):
        fit_cosine(np.ones((5, 3), dtype=np.float32), CosineParams(k=10))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (CosineParams(k=0), "k"),
        (CosineParams(epochs=0), "epochs"),
        (CosineParams(lr=0.0), "lr"),
        (CosineParams(lr=float("nan")), "lr"),
        (CosineParams(batch_size=0), "batch_size"),
        (CosineParams(seed=-1), "seed"),
        (CosineParams(reject_below=1.5), "reject_below"),
        (CosineParams(init="normal"), "init"),
    ],
)
def test_cosine_params_validation(params: CosineParams, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        params.validate()


def test_progress_once_per_epoch_and_cancellation_propagates() -> None:
    states, _, _ = _directions()
    calls: list[tuple[int, int]] = []
    fit_cosine(states, CosineParams(k=4, epochs=3), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]

    class Cancelled(Exception):
        pass

    seen: list[int] = []

    def cancel(done: int, total: int) -> None:
        seen.append(done)
        raise Cancelled

    with pytest.raises(Cancelled):
        fit_cosine(states, CosineParams(k=4, epochs=5), progress=cancel)
    assert seen == [1]


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def test_top_examples_orders_best_first() -> None:
    labels = np.array([0, 1, 0, -1, 0, 1, 2, 0])
    scores = np.array([0.5, 0.9, 0.8, 1.0, 0.1, 0.3, 0.7, 0.8])
    high = top_examples(labels, scores, 3, higher_is_better=True)
    assert set(high) == {0, 1, 2}  # noise (-1) is never a chunk
    # Ties (indices 2 and 7, both 0.8) keep index order.
    assert high[0].tolist() == [2, 7, 0]
    assert high[1].tolist() == [1, 5]  # fewer members than k
    assert high[2].tolist() == [6]
    assert high[0].dtype == np.int64
    low = top_examples(labels, scores, 2, higher_is_better=False)
    assert low[0].tolist() == [4, 0] and low[1].tolist() == [5, 1]
    with pytest.raises(ValueError, match="k must"):
        top_examples(labels, scores, 0, higher_is_better=True)
